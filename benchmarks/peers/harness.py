"""Measures one system in a child process of ``bench_peers.py``, the same way for every system.

``python -m benchmarks.peers.harness SYSTEM --out FILE ...`` (the parent passes the environment:
the private Redis, the system's database). In order, with the queue emptied before each step:

1. bulk enqueue (batches of 100) when the system has it;
2. single enqueue: warm-up jobs, then ``--jobs`` jobs one call each, timed; the first and the
   last of them are marked (their function pushes its start time to Redis);
3. drain: ONE worker process started on that full queue; the warm-up jobs run first, then the
   rate is the jobs between the two marks over the time between them (start-up excluded);
4. latency: the worker now idle, one marked job at a time, 20 ms apart: enqueue call → the job
   function's start, until ``--latency-samples`` or ``--latency-budget`` seconds.

The worker runs in its own process group, stopped with SIGTERM (then SIGKILL) on the way out,
Ctrl-C included; its group id sits in ``--pids-dir`` meanwhile, so the parent can kill it if
this process dies first.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.peers.marks import MARK_KEY, redis_url

BULK_BATCH = 100
WARMUP = 50
ROOT = Path(__file__).resolve().parent.parent.parent


class Adapter:
    """What a system module provides. Django systems configure Django in ``prepare``."""

    bulk = False

    def prepare(self) -> None:
        """Connect, create the schema (untimed)."""

    def reset(self) -> None:
        """Empty the system's own tables (the harness flushes Redis)."""

    def enqueue(self, mark: bool) -> None:
        raise NotImplementedError

    def enqueue_bulk(self, count: int) -> None:
        raise NotImplementedError

    def worker_command(self) -> list[str]:
        raise NotImplementedError

    def close(self) -> None:
        """Close connections."""


def django_setup(settings: str, migrate: bool = True) -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", settings)
    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)


def truncate_django_table(model: Any) -> None:
    from django.db import connection

    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {table} CASCADE" if connection.vendor == "postgresql" else f"DELETE FROM {table}")


class WorkerProcess:
    """A worker subprocess in its own process group, logging to a file, always stopped."""

    def __init__(self, command: list[str], log_path: Path, pids_dir: Path | None) -> None:
        self.command = command
        self.log_path = log_path
        self.pids_dir = pids_dir
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> WorkerProcess:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        if self.pids_dir is not None:
            (self.pids_dir / str(self.process.pid)).touch()
        return self

    def check(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the worker exited with status {self.process.returncode}:\n{tail}")

    def __exit__(self, *exc: object) -> None:
        process = self.process
        if process is None:
            return
        for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            if self._group_gone(process, wait):
                break
        process.wait()
        if self.pids_dir is not None:
            (self.pids_dir / str(process.pid)).unlink(missing_ok=True)

    @staticmethod
    def _group_gone(process: subprocess.Popen[bytes], wait: float) -> bool:
        """Wait for the whole group (a cluster's children too, not just its leader) to end."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            process.poll()  # reaps the leader, whose zombie would keep the group alive
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.05)
        return False


def wait_mark(client: Any, worker: WorkerProcess, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = client.blpop([MARK_KEY], timeout=1)
        if reply is not None:
            return float(reply[1])
        worker.check()
    worker.check()
    raise RuntimeError(f"no mark within {timeout:.0f} s (see the worker's log {worker.log_path})")


def measure(adapter: Adapter, args: argparse.Namespace) -> dict[str, Any]:
    from redis import Redis

    client = Redis.from_url(redis_url())
    result: dict[str, Any] = {}
    adapter.prepare()

    def reset() -> None:
        client.flushdb()
        adapter.reset()

    reset()
    if adapter.bulk:
        for _ in range(3):
            adapter.enqueue_bulk(BULK_BATCH)
        batches = max(2, args.jobs // BULK_BATCH)
        start = time.perf_counter()
        for _ in range(batches):
            adapter.enqueue_bulk(BULK_BATCH)
        result["bulk"] = batches * BULK_BATCH / (time.perf_counter() - start)
        reset()

    for _ in range(WARMUP):  # also warms the worker up: these run before the first mark
        adapter.enqueue(False)
    start = time.perf_counter()
    adapter.enqueue(True)
    for _ in range(args.jobs - 2):
        adapter.enqueue(False)
    adapter.enqueue(True)
    result["single"] = args.jobs / (time.perf_counter() - start)

    log_path = Path(args.log)
    with WorkerProcess(adapter.worker_command(), log_path, Path(args.pids_dir) if args.pids_dir else None) as worker:
        first = wait_mark(client, worker, 120)
        last = wait_mark(client, worker, 60 + args.jobs / 50)
        result["drain"] = (args.jobs - 1) / (last - first)

        samples: list[float] = []
        deadline = time.monotonic() + args.latency_budget
        while len(samples) < args.latency_samples and (len(samples) < 3 or time.monotonic() < deadline):
            time.sleep(0.02)  # the worker goes back to waiting on an empty queue: idle
            before = time.time()
            adapter.enqueue(True)
            samples.append((wait_mark(client, worker, 30) - before) * 1000)
        result["latency_ms"] = samples
    reset()
    adapter.close()
    client.close()
    return result


def main() -> None:
    from benchmarks.peers import BY_NAME

    parser = argparse.ArgumentParser(description="one system, one round (a child of bench_peers.py)")
    parser.add_argument("system", choices=sorted(BY_NAME))
    parser.add_argument("--out", required=True)
    parser.add_argument("--log", required=True, help="the worker's output")
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--latency-samples", type=int, default=50)
    parser.add_argument("--latency-budget", type=float, default=5.0)
    parser.add_argument("--pids-dir")
    args = parser.parse_args()
    # SIGTERM from the parent: unwind, so that the worker's group is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    module = importlib.import_module(f"benchmarks.peers.{BY_NAME[args.system].module}")
    adapter: Adapter = module.make(args.system)
    Path(args.out).write_text(json.dumps(measure(adapter, args)))


if __name__ == "__main__":
    main()
