"""Huey on Redis (``RedisHuey``, blocking reads, its defaults), one consumer with 1 worker thread."""

from __future__ import annotations

import sys

from huey import RedisHuey

from benchmarks.peers.harness import Adapter
from benchmarks.peers.marks import mark as report_start
from benchmarks.peers.marks import redis_url

huey = RedisHuey("asyncjobs-peers", url=redis_url())


@huey.task()
def noop(mark: bool = False) -> None:
    if mark:
        report_start()


class Huey(Adapter):
    def enqueue(self, mark: bool) -> None:
        noop(mark)

    def worker_command(self) -> list[str]:
        module = "benchmarks.peers.huey_peer.huey"
        return [sys.executable, "-m", "huey.bin.huey_consumer", module, "--workers", "1", "--worker-type", "thread"]


def make(system: str) -> Adapter:
    return Huey()
