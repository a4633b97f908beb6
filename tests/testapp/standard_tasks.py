"""Tasks written against Django's Tasks framework (``django.tasks``, Django 6.0+).

Deliberately not named ``tasks.py``: ASYNCJOBS autodiscovery imports those on every
Django version, and this module needs ``django.tasks``. Workers find these tasks by
their module path, without a second decorator. Several mirror the tasks of Django's
own test suite (tests/tasks/tasks.py), for the conformance tests.
"""

from __future__ import annotations

import asyncio
from typing import Any

from django.tasks import TaskContext, task

from django_asyncjobs import current_job

from .models import Call


@task
def add(a: int, b: int) -> int:
    return a + b


@task()
def noop_task(*args: Any, **kwargs: Any) -> None:
    return None


@task()
async def noop_task_async(*args: Any, **kwargs: Any) -> None:
    return None


@task()
def calculate_meaning_of_life() -> int:
    return 42


@task()
def failing_task_value_error() -> None:
    raise ValueError("This Task failed due to ValueError")


@task()
def complex_exception() -> None:
    raise ValueError(ValueError("This task failed"))


@task()
def complex_return_value() -> Any:
    return {"value": object()}


@task()
def returns_tuple_and_bytes() -> Any:
    return (1, b"two", {"three": (3,)})


@task(takes_context=True)
def get_task_id(context: TaskContext[Any, Any]) -> str:
    return context.task_result.id


@task(takes_context=True)
def describe_context(context: TaskContext[Any, Any], label: str) -> dict[str, Any]:
    result = context.task_result
    return {
        "label": label,
        "attempt": context.attempt,
        "id": result.id,
        "status": result.status,
        "worker_ids": result.worker_ids,
        "started": result.started_at is not None,
    }


@task(backend="retrying", takes_context=True)
def fails_once(context: TaskContext[Any, Any], label: str) -> int:
    Call.objects.create(label=label)
    if context.attempt < 2:
        raise RuntimeError(f"attempt {context.attempt} fails")
    return context.attempt


@task(backend="retrying")
def always_fails(label: str) -> None:
    Call.objects.create(label=label)
    raise LookupError(f"{label} failed")


@task(queue_name="high")
def record(label: str, **extra: Any) -> str:
    Call.objects.create(label=label, data=extra)
    return label


@task(priority=50)
def urgent(label: str) -> str:
    Call.objects.create(label=label)
    return label


@task()
async def async_record(label: str, queue: str = "") -> dict[str, Any]:
    """An ``async def`` task; ``queue`` is an ordinary argument here (not a job option)."""
    await asyncio.sleep(0)
    await Call.objects.acreate(label=label, data={"queue": queue})
    this = current_job()
    assert this is not None
    await this.aset_progress(50, "half way")
    return {"label": label, "calls": await Call.objects.filter(label=label).acount()}


@task()
def progress(steps: int) -> int:
    this = current_job()
    assert this is not None
    for step in range(1, steps + 1):
        this.set_progress(step * 100 // steps)
    return steps


@task(backend="dummy")
def on_dummy() -> None:
    """A task of Django's DummyBackend: never runs on our workers."""
