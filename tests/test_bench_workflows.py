"""``make bench-workflows`` in small: benchmarks/bench_workflows.py on SQLite with a few hundred
jobs, in a subprocess with ``--no-docs``; only that the table has its rows of numbers is
checked, nothing asserts on timings."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "bench_workflows.py"


def test_a_small_run_fills_the_table() -> None:
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    command = [sys.executable, str(SCRIPT), "--db", "sqlite", "--jobs", "200", "--rounds", "2", "--no-docs"]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(r"^\| single jobs \(`enqueue_many`\) \| [\d,]+/s \| [\d,]+/s \| - \|$", done.stdout, re.M)
    assert re.search(r"^\| one group, with a `then` \| [\d,]+/s \| [\d,]+/s \| [+-][\d.]+% \|$", done.stdout, re.M)
