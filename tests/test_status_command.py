"""``manage.py asyncjobs_status``: the dashboard's queue figures in the terminal, and its exit status."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from datetime import UTC, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from django_asyncjobs import Job, JobStatus
from django_asyncjobs.admin.figures import MINUTE
from django_asyncjobs.admin.status import COLUMNS
from django_asyncjobs.aggregations.stats import NAME as STATS
from django_asyncjobs.aggregations.windows import run_window
from django_asyncjobs.engine.broker import queue_stats
from django_asyncjobs.engine.capacity import forget_states
from django_asyncjobs.management.commands.asyncjobs_status import CLEAR
from django_asyncjobs.worker import build_worker
from tests.conftest import wait_for
from tests.testapp.jobs import always_fails, noop

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_states():
    forget_states()
    yield
    forget_states()


@pytest.fixture
def listening():
    """A worker registered in Redis on default and high that pops nothing (RQ's registration)."""
    worker = build_worker(["default", "high"], name="w-listening")
    worker.register_birth()
    yield worker
    worker.register_death()


def status(*args: str, stdout: StringIO | None = None) -> tuple[int, str]:
    """The command's exit status and output, run in this process."""
    out = stdout or StringIO()
    try:
        call_command("asyncjobs_status", *args, stdout=out)
    except CommandError as exc:
        return exc.returncode, out.getvalue()
    return 0, out.getvalue()


def status_json(*args: str) -> tuple[int, dict[str, Any]]:
    code, out = status("--json", *args)
    return code, json.loads(out)


def only_queue(report: dict[str, Any]) -> dict[str, Any]:
    assert len(report["queues"]) == 1
    return report["queues"][0]


def test_figures_after_jobs_ran_on_a_real_worker_then_no_worker(start_worker) -> None:
    process = start_worker("default", "--name", "w-status")
    jobs = [*noop.enqueue_many([() for _ in range(3)]), always_fails.enqueue()]
    finished = (JobStatus.SUCCEEDED, JobStatus.FAILED)
    wait_for(lambda: Job.objects.filter(status__in=finished).count() == 4, what="the jobs to finish")
    wait_for(lambda: queue_stats("default").throughput > 0, what="the worker to count them in Redis")
    # Move the jobs into a past minute and roll it up, as the scheduler would.
    minute = timezone.now().astimezone(UTC).replace(second=0, microsecond=0) - 5 * MINUTE
    Job.objects.filter(pk__in=[job.pk for job in jobs]).update(
        enqueued_at=minute, started_at=minute + timedelta(seconds=1), finished_at=minute + timedelta(seconds=2)
    )
    run_window(STATS, minute, minute + MINUTE)

    code, report = status_json("--queue", "default")
    assert (code, report["status"], report["exit_status"], report["schema"], report["error"]) == (0, "ok", 0, 1, "")
    queue = only_queue(report)
    assert (queue["name"], queue["healthy"], queue["problems"], queue["saturated"]) == ("default", True, [], False)
    assert (queue["depth"], queue["workers"], queue["running"], queue["oldest_age_seconds"]) == (0, 1, 0, None)
    assert (queue["max_depth"], queue["max_age_seconds"], queue["estimated_wait_seconds"]) == (None, None, 0.0)
    assert queue["throughput_per_minute"] > 0
    assert queue["last_hour"] == {
        "succeeded": 3,
        "failed": 1,
        "cancelled": 0,
        "per_minute": pytest.approx(4 / 60),
        "failure_rate": 0.25,
    }

    code, text = status("--queue", "default")
    lines = text.splitlines()
    assert code == 0
    assert lines[0].startswith("asyncjobs status at ")
    assert lines[1] == "  ".join(COLUMNS).replace("QUEUE", "QUEUE  ")  # the columns as wide as their cells
    cells = lines[2].split()
    assert cells[:5] == ["default", "0/-", "-", "1", "0"]
    assert cells[6:] == ["1/4", "(25%)", "0.0s", "ok"]
    assert lines[3] == "ok: 1 queue"

    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    noop.enqueue_many([() for _ in range(2)])
    code, report = status_json("--queue", "default")
    queue = only_queue(report)
    assert (code, report["status"], queue["problems"], queue["workers"], queue["depth"]) == (
        1,
        "unhealthy",
        ["no live worker"],
        0,
        2,
    )
    assert queue["oldest_age_seconds"] is not None


def test_exit_status_of_the_real_command_without_a_worker(subprocess_env) -> None:
    noop.enqueue()
    done = subprocess.run(
        [sys.executable, "-m", "django", "asyncjobs_status", "--queue", "default", "--queue", "high"],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert "unhealthy: default: no live worker; high: no live worker" in done.stderr
    rows = {line.split()[0]: line for line in done.stdout.splitlines()[2:4]}
    assert set(rows) == {"default", "high"}
    assert rows["default"].split()[1] == "1/-"


def test_a_saturated_queue_is_unhealthy(settings, listening) -> None:
    settings.ASYNCJOBS = {**settings.ASYNCJOBS, "QUEUE_LIMITS": {"default": {"MAX_DEPTH": 2, "MAX_AGE": 600}}}
    noop.enqueue_many([() for _ in range(2)])  # at the limit: the next job would be refused

    code, report = status_json()
    assert (code, report["status"]) == (1, "unhealthy")
    by_name = {queue["name"]: queue for queue in report["queues"]}
    assert set(by_name) == {"default", "high", "low"}
    default = by_name["default"]
    assert (default["saturated"], default["problems"]) == (True, ["saturated (2 waiting, limit 2)"])
    assert (default["depth"], default["max_depth"], default["max_age_seconds"], default["workers"]) == (2, 2, 600, 1)
    assert default["estimated_wait_seconds"] is None
    assert by_name["high"]["problems"] == []
    assert by_name["low"]["problems"] == ["no live worker"]

    code, text = status("--queue", "default")
    assert code == 1
    row = text.splitlines()[2].split()
    assert (row[1], row[2].endswith("s/10m00s"), row[7]) == ("2/2", True, "unknown")  # no throughput yet
    assert text.splitlines()[-1] == "unhealthy: default: saturated (2 waiting, limit 2)"
    assert status("--queue", "high")[0] == 0
    assert status_json("--queue", "high")[1]["status"] == "ok"


def test_redis_not_read_is_exit_status_2(settings, listening) -> None:
    settings.RQ_QUEUES = {**settings.RQ_QUEUES, "low": {"URL": "redis://127.0.0.1:1/0"}}  # nothing listens there
    code, report = status_json("--queue", "low", "--queue", "default")
    assert (code, report["status"]) == (2, "unreadable")
    low, default = report["queues"]
    assert low["name"] == "low" and low["problems"][0].startswith("Redis not read (ConnectionError")
    assert (low["depth"], low["workers"], low["throughput_per_minute"]) == (None, None, None)
    assert default["problems"] == []
    code, text = status("--queue", "low")
    assert code == 2
    assert text.splitlines()[2].split()[:4] == ["low", "?/-", "-", "?"]


def test_watch_refreshes_a_bounded_number_of_times(listening) -> None:
    code, text = status("--queue", "default", "--watch", "0.01", "--count", "3")
    assert code == 0
    blocks = text.split("\n\n")
    assert len(blocks) == 3
    assert all(block.startswith("asyncjobs status at ") and CLEAR not in block for block in blocks)

    code, lines = status("--queue", "high", "--json", "--watch", "0.01", "--count", "2")
    assert [json.loads(line)["status"] for line in lines.splitlines()] == ["ok", "ok"]

    class Terminal(StringIO):
        def isatty(self) -> bool:
            return True

    code, screen = status("--queue", "default", "--watch", "0.01", "--count", "2", stdout=Terminal())
    assert code == 0
    assert screen.count(CLEAR) == 2 and screen.startswith(CLEAR)


def test_bad_arguments() -> None:
    with pytest.raises(CommandError, match="invalid choice: 'nope'"):
        call_command("asyncjobs_status", "--queue", "nope")
    with pytest.raises(CommandError, match="--watch must be above 0"):
        call_command("asyncjobs_status", "--watch", "0")
    with pytest.raises(CommandError, match="--count must be at least 1"):
        call_command("asyncjobs_status", "--watch", "1", "--count", "0")
