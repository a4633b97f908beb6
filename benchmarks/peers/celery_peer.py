"""Celery with a Redis broker: one ``worker --pool solo``, results ignored; ``celery-acks-late``
also sets ``task_acks_late`` (a job is acknowledged after it ran: at-least-once, like us)."""

from __future__ import annotations

import os
import sys

from celery import Celery

from benchmarks.peers.harness import Adapter
from benchmarks.peers.marks import mark as report_start
from benchmarks.peers.marks import redis_url

ACKS_LATE_ENV = "ASYNCJOBS_PEERS_CELERY_ACKS_LATE"

app = Celery("asyncjobs_peers", broker=redis_url())
app.conf.update(
    task_ignore_result=True,
    task_acks_late=os.environ.get(ACKS_LATE_ENV) == "1",
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="peers.noop")
def noop(mark: bool = False) -> None:
    if mark:
        report_start()


class CeleryPeer(Adapter):
    def enqueue(self, mark: bool) -> None:
        noop.delay(mark)

    def worker_command(self) -> list[str]:
        command = [sys.executable, "-m", "celery", "-A", "benchmarks.peers.celery_peer", "worker", "--pool", "solo"]
        return [*command, "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "WARNING"]


def make(system: str) -> Adapter:
    acks_late = system == "celery-acks-late"
    os.environ[ACKS_LATE_ENV] = "1" if acks_late else "0"  # for the worker subprocess
    app.conf.task_acks_late = acks_late
    return CeleryPeer()
