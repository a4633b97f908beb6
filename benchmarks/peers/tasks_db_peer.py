"""django-tasks-db on PostgreSQL: ``Task.enqueue`` (an INSERT), one ``db_worker`` (polls every 1 s when idle,
its default)."""

from __future__ import annotations

import os
import sys

from benchmarks.peers.harness import Adapter, django_setup, truncate_django_table

SETTINGS = "benchmarks.peers.django_settings"


class TasksDB(Adapter):
    def prepare(self) -> None:
        os.environ["ASYNCJOBS_PEERS_DJANGO"] = "django_tasks_db"
        django_setup(SETTINGS)

    def reset(self) -> None:
        from django_tasks_db.models import DBTaskResult

        truncate_django_table(DBTaskResult)

    def enqueue(self, mark: bool) -> None:
        from benchmarks.peers.tasks_db_jobs import noop

        noop.enqueue(mark)

    def worker_command(self) -> list[str]:
        return [sys.executable, "-m", "django", "db_worker", "--no-startup-delay", "--no-reload", "--verbosity", "0"]

    def close(self) -> None:
        from django.db import connections

        connections.close_all()


def make(system: str) -> Adapter:
    return TasksDB()
