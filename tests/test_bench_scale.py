"""``make bench-scale`` in small: benchmarks/bench_scale.py with 1 and 2 worker processes, a few
hundred jobs and a shallow depth test, on a PostgreSQL database of its own (skipped without
PostgreSQL). A subprocess, with ``--no-docs``; only that each table has its rows of numbers is
checked, nothing asserts on timings."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.bench_core import postgres_admin

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "bench_scale.py"
SERVER = os.environ.get("ASYNCJOBS_BENCH_POSTGRES_SERVER", "postgres://postgres@127.0.0.1:5432/")


@pytest.mark.skipif(postgres_admin(SERVER) is None, reason=f"no PostgreSQL at {SERVER}")
def test_a_small_run_fills_both_tables() -> None:
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    command = [sys.executable, str(SCRIPT), "--procs", "1,2", "--jobs", "300", "--depth", "600", "--no-docs"]
    command += ["--postgres-url", SERVER]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for procs in (1, 2):
        assert re.search(rf"^\| {procs} \| [\d,]+ \| [\d.]+\N{{MULTIPLICATION SIGN}} \| [\d,]+ \|$", done.stdout, re.M)
    for figure in ("Redis memory per queued job", "job table and indexes per finished job", "pruning all 600"):
        assert re.search(rf"^\| {figure}[^|]* \| [\d,.]+ (bytes|s) \|$", done.stdout, re.M), done.stdout
