"""django-q2 with the private Redis as broker: ``async_task``, one ``qcluster`` with 1 worker
(plus its pusher and monitor processes), results saved as it does by default."""

from __future__ import annotations

import os
import sys

from benchmarks.peers.harness import Adapter, django_setup
from benchmarks.peers.marks import mark as report_start

SETTINGS = "benchmarks.peers.django_settings"


def noop(mark: bool = False) -> None:
    if mark:
        report_start()


class DjangoQ2(Adapter):
    def prepare(self) -> None:
        os.environ["ASYNCJOBS_PEERS_DJANGO"] = "django_q"
        django_setup(SETTINGS)

    def reset(self) -> None:
        from django_q.models import OrmQ, Task

        Task.objects.all().delete()
        OrmQ.objects.all().delete()

    def enqueue(self, mark: bool) -> None:
        from django_q.tasks import async_task

        async_task("benchmarks.peers.q2_peer.noop", mark)

    def worker_command(self) -> list[str]:
        return [sys.executable, "-m", "django", "qcluster"]

    def close(self) -> None:
        from django.db import connections

        connections.close_all()


def make(system: str) -> Adapter:
    return DjangoQ2()
