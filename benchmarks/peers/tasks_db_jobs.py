"""django-tasks-db's no-op task (imported once Django is set up: ``@task`` needs the settings)."""

from __future__ import annotations

from importlib.util import find_spec

from benchmarks.peers.marks import mark as report_start

if find_spec("django.tasks"):
    from django.tasks import task
else:
    from django_tasks import task


@task()
def noop(mark: bool = False) -> None:
    if mark:
        report_start()
