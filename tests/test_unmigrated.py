"""The worker and the scheduler started on a database without the app's tables (or with
migrations not applied) stop at once with one line saying to run ``migrate``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

COMMANDS = [["asyncjobs_worker", "--burst"], ["asyncjobs_scheduler", "--once"]]


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "django", *args], env=env, capture_output=True, text=True, timeout=120)


def error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The one line of the error: the last of stderr (the system checks' warnings of the test
    settings come before it), and no traceback, nothing on stdout."""
    lines = done.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("CommandError: "), done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert [line for line in lines if "migrate" in line] == lines[-1:]
    return lines[-1]


@pytest.fixture
def empty_database_env(subprocess_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """A child's environment on a new, empty SQLite database (whatever the suite runs on)."""
    env = {key: value for key, value in subprocess_env.items() if key != "DATABASE_URL"}
    env["ASYNCJOBS_TEST_SQLITE"] = str(tmp_path / "empty.sqlite3")
    return env


@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: command[0])
def test_without_tables_the_command_stops_with_one_line(empty_database_env, command) -> None:
    done = manage(empty_database_env, *command)
    assert done.returncode != 0
    line = error_line(done)
    assert "its tables do not exist" in line
    assert "Run `python manage.py migrate` first." in line


@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: command[0])
def test_with_a_migration_not_applied_the_command_names_it(empty_database_env, command) -> None:
    migrated = manage(empty_database_env, "migrate", "-v", "0")
    assert migrated.returncode == 0, migrated.stderr
    back = manage(empty_database_env, "migrate", "django_asyncjobs", "0006", "-v", "0")
    assert back.returncode == 0, back.stderr
    done = manage(empty_database_env, *command)
    assert done.returncode != 0
    line = error_line(done)
    assert "0007_job_unique_key" in line and "not applied" in line and "manage.py migrate" in line
