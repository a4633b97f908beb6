"""Bare rq: ``Queue.enqueue`` of a plain function, one ``rq worker --worker-class rq.SimpleWorker``.

The same serializer as ours (JSON), rq's defaults otherwise (results kept 500 s).
"""

from __future__ import annotations

import sys
from typing import Any

from benchmarks.peers.harness import Adapter
from benchmarks.peers.marks import mark as report_start
from benchmarks.peers.marks import redis_url

QUEUE = "peers"


def noop(mark: bool = False) -> None:
    if mark:
        report_start()


class BareRQ(Adapter):
    bulk = True

    def prepare(self) -> None:
        from redis import Redis
        from rq import Queue
        from rq.serializers import JSONSerializer

        self.connection = Redis.from_url(redis_url())
        self.queue: Any = Queue(QUEUE, connection=self.connection, serializer=JSONSerializer)

    def enqueue(self, mark: bool) -> None:
        self.queue.enqueue(noop, mark)

    def enqueue_bulk(self, count: int) -> None:
        from rq import Queue

        self.queue.enqueue_many([Queue.prepare_data(noop, (False,)) for _ in range(count)])

    def worker_command(self) -> list[str]:
        command = [sys.executable, "-m", "rq.cli", "worker", "--url", redis_url()]
        return [
            *command,
            "--worker-class",
            "rq.SimpleWorker",
            "--serializer",
            "rq.serializers.JSONSerializer",  # a dotted path: rq < 3 takes no short name
            "--logging_level",
            "WARNING",
            QUEUE,
        ]

    def close(self) -> None:
        self.connection.close()


def make(system: str) -> Adapter:
    return BareRQ()
