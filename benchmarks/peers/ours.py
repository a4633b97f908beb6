"""django-asyncjobs on SQLite or PostgreSQL: ``asyncjobs_worker`` with ``benchmarks.settings``.

The parent sets ``ASYNCJOBS_BENCH_DB`` and the SQLite path or the PostgreSQL URL, as
``bench_core.py`` does; the job is ``benchmarks.benchapp.jobs.peer_noop``.
"""

from __future__ import annotations

import sys

from benchmarks.peers.harness import Adapter, django_setup, truncate_django_table


class Ours(Adapter):
    bulk = True

    def prepare(self) -> None:
        django_setup("benchmarks.settings")

    def reset(self) -> None:
        from django_asyncjobs.models import Job

        truncate_django_table(Job)

    def enqueue(self, mark: bool) -> None:
        from benchmarks.benchapp.jobs import peer_noop

        peer_noop.enqueue(mark)

    def enqueue_bulk(self, count: int) -> None:
        from benchmarks.benchapp.jobs import peer_noop

        peer_noop.enqueue_many([(False,) for _ in range(count)])

    def worker_command(self) -> list[str]:
        return [sys.executable, "-m", "django", "asyncjobs_worker", "default", "--verbosity", "0"]

    def close(self) -> None:
        from django.db import connections

        connections.close_all()


def make(system: str) -> Adapter:
    return Ours()
