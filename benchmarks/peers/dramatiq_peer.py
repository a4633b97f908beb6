"""Dramatiq on Redis (``RedisBroker``, default middleware), one worker process with 8 threads."""

from __future__ import annotations

import sys
import time

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from benchmarks.peers.harness import Adapter
from benchmarks.peers.marks import mark as report_start
from benchmarks.peers.marks import mark_end, redis_url

dramatiq.set_broker(RedisBroker(url=redis_url()))


@dramatiq.actor(max_retries=0)
def noop(mark: bool = False) -> None:
    if mark:
        report_start()


@dramatiq.actor(max_retries=0)
def io_sleep(seconds: float) -> None:
    """``bench_io.py``'s I/O-bound job (ours is ``benchmarks.benchapp.jobs.io_sleep``)."""
    time.sleep(seconds)
    mark_end()


class Dramatiq(Adapter):
    def enqueue(self, mark: bool) -> None:
        noop.send(mark)

    def worker_command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "dramatiq",
            "benchmarks.peers.dramatiq_peer",
            "--processes",
            "1",
            "--threads",
            "8",
        ]


def make(system: str) -> Adapter:
    return Dramatiq()
