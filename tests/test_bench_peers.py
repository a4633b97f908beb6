"""``make bench-peers`` in small: benchmarks/bench_peers.py --quick on bare rq and ours on SQLite.

A subprocess, as ``make`` runs it, with ``--no-docs`` (docs/benchmarks.md is left alone). Only
that the table has a row of numbers for each system is checked; nothing asserts on timings.
The peers themselves are optional (the ``peers`` extra): a missing one is "not installed".
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from benchmarks.bench_peers import installed, parse_args, summarize
from benchmarks.peers import System

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "bench_peers.py"
NUMBER = r"[\d,]+(?:\.\d+)?"
TIMES = "\N{MULTIPLICATION SIGN}"


def test_quick_run_has_a_row_of_numbers_for_rq_and_ours() -> None:
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--systems", "rq,ours-sqlite", "--jobs", "100", "--no-docs"],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for label in (r"rq `SimpleWorker`", r"\*\*django-asyncjobs, SQLite\*\*"):
        row = rf"^\| {label} \| {NUMBER} \| {NUMBER} \| {NUMBER}{TIMES} \| {NUMBER} ms \| {NUMBER} \|$"
        assert re.search(row, done.stdout, re.MULTILINE), done.stdout


def test_a_missing_package_is_not_installed_and_options_are_checked() -> None:
    assert installed(System("x", "x", "rq_peer", ("rq",)))
    assert not installed(System("x", "x", "rq_peer", ("no_such_queue_package",)))
    assert installed(System("x", "x", "rq_peer", ("no_such_queue_package.tasks|rq",)))
    args = parse_args(["--quick", "--systems", "rq, huey"])
    assert (args.rounds, args.jobs, args.systems) == (1, 200, ["rq", "huey"])
    assert parse_args([]).rounds == 3
    ((_, row),) = summarize({"huey": []}, {"huey": "not installed"})
    assert row[:2] == ["Huey (Redis, 1 worker thread)", "not installed"]
