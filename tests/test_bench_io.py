"""``make bench-io`` in small: benchmarks/bench_io.py on ours (SQLite, sync and async jobs), and
Dramatiq when the ``peers`` extra is installed. A subprocess, with ``--no-docs``; only that the
table has a row of numbers for each system is checked, nothing asserts on timings."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from benchmarks.bench_io import parse_args

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "bench_io.py"
NUMBER = r"[\d,]+"
TIMES = "\N{MULTIPLICATION SIGN}"


def test_a_small_run_has_a_row_of_numbers_for_ours_and_dramatiq_or_says_it_is_missing() -> None:
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    command = [sys.executable, str(SCRIPT), "--rounds", "1", "--jobs", "40", "--sleep", "0.01", "--threads", "4"]
    command += ["--systems", "dramatiq,ours-sqlite,ours-sqlite-async", "--no-docs"]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=180, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for label in (r"\*\*django-asyncjobs, SQLite\*\*, `--threads 4`", r"django-asyncjobs, SQLite, `async def` jobs"):
        assert re.search(rf"^\| {label}[^|]* \| {NUMBER} \| \d+% \|", done.stdout, re.MULTILINE), done.stdout
    measured = rf"{NUMBER} \| \d+% \| 1\.00{TIMES}"
    dramatiq = rf"^\| Dramatiq \(Redis, 1 process, 4 threads\) \| (not installed|{measured}) \|"
    assert re.search(dramatiq, done.stdout, re.MULTILINE), done.stdout


def test_options_are_checked() -> None:
    args = parse_args([])
    assert (args.rounds, args.jobs, args.sleep, args.threads) == (3, 2000, 0.02, 8)
    assert parse_args(["--systems", "dramatiq, ours-postgres"]).systems == ["dramatiq", "ours-postgres"]
