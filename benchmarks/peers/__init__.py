"""Peers measured by ``benchmarks/bench_peers.py`` (``make bench-peers``): one module per system.

Each system module has a ``make(system)`` returning a :class:`benchmarks.peers.harness.Adapter`
(enqueue one job, a batch where the system has it, empty its queue, the command of one worker
process) and the no-op job its worker runs. ``harness.py`` measures any adapter the same way in a
child process; ``bench_peers.py`` runs the children in rotating order and writes the table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class System:
    name: str  # what --systems takes
    label: str  # the table's first column
    module: str  # benchmarks.peers.<module> has make(name)
    requires: tuple[str, ...]  # importable modules; any missing: "not installed"
    database: str | None = None  # PostgreSQL database suffix: asyncjobs_peers_<database>
    ours: bool = False


SYSTEMS: tuple[System, ...] = (
    System("ours-sqlite", "**django-asyncjobs, SQLite**", "ours", ("django_asyncjobs",), ours=True),
    System("ours-postgres", "**django-asyncjobs, PostgreSQL**", "ours", ("django_asyncjobs",), "ours", ours=True),
    System("rq", "rq `SimpleWorker`", "rq_peer", ("rq",)),
    System("huey", "Huey (Redis, 1 worker thread)", "huey_peer", ("huey",)),
    System("dramatiq", "Dramatiq (Redis, 1 process, 8 threads)", "dramatiq_peer", ("dramatiq",)),
    System("celery", "Celery (Redis, solo pool, ignore results)", "celery_peer", ("celery",)),
    System("celery-acks-late", "Celery, `acks_late` (at-least-once)", "celery_peer", ("celery",)),
    System("procrastinate", "Procrastinate (PostgreSQL)", "procrastinate_peer", ("procrastinate",), "procrastinate"),
    System(
        "django-tasks-db",
        "django-tasks-db (PostgreSQL, `db_worker`)",
        "tasks_db_peer",
        ("django_tasks_db", "django_tasks|django.tasks"),
        "tasks_db",
    ),
    System("django-q2", "django-q2 (Redis broker)", "q2_peer", ("django_q",)),
)

BY_NAME = {system.name: system for system in SYSTEMS}
