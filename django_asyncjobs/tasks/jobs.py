"""Tasks of Django's Tasks framework (``django.tasks``) as jobs, and their rows as ``TaskResult``s.

A ``Task`` whose backend is an :class:`~django_asyncjobs.backends.AsyncJobsBackend` is the
job named after its module path (``Task.module_path``). It is registered when the backend
validates it (at ``@task``, and at every enqueue), or, in a process that has not imported
its module, when a row names it: the module is imported (only if it is already imported or
belongs to an installed app) and its attribute must *be* such a ``Task``. Nothing else is
looked up, so a row (or a Redis message) still cannot make a worker run arbitrary code.

Django's task signals are receivers of the package's job signals (``django_asyncjobs.signals``),
connected at start-up when ``TASKS`` names an ``AsyncJobsBackend`` (and when a Task of one is
registered), and answering for ``TaskJobFunction`` jobs only (the ``job_function`` argument): ``job_created`` sends
``task_enqueued``, ``job_started`` ``task_started`` and ``job_finished`` ``task_finished``.

Needs Django 6.0 or later; ``django_asyncjobs.engine.registry`` only imports it where
``django.tasks`` exists.
"""

from __future__ import annotations

import importlib
import logging
import re
import sys
from dataclasses import fields
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.conf import settings
from django.dispatch import Signal
from django.tasks import TaskContext, TaskResult, TaskResultStatus, task_backends
from django.tasks.base import Task, TaskError
from django.tasks.signals import task_enqueued, task_finished, task_started
from django.utils.json import normalize_json
from django.utils.module_loading import import_string

from ..engine.functions import JobFunction, JobOptions
from ..engine.registry import add_finder, register_job_function, registered
from ..exceptions import ConfigurationError, JobInterrupted
from ..logs import log_event, tasks_logger
from ..signals import job_created, job_finished, job_started

if TYPE_CHECKING:
    from django.tasks.backends.base import BaseTaskBackend

    from ..models import Job


#: Job statuses as Django's task result statuses.
STATUSES = {
    "queued": TaskResultStatus.READY,
    "scheduled": TaskResultStatus.READY,  # delayed (run_after), or waiting to be retried
    "running": TaskResultStatus.RUNNING,
    "succeeded": TaskResultStatus.SUCCESSFUL,
    "failed": TaskResultStatus.FAILED,
    "cancelled": TaskResultStatus.FAILED,
}
FINISHED = (TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED)

#: The last of ``TaskResult.errors`` of a cancelled job (``execution.CANCELLED_ERROR`` of a running one).
CANCELLED = TaskError(
    exception_class_path=f"{JobInterrupted.__module__}.{JobInterrupted.__qualname__}",
    traceback=f"{JobInterrupted.__module__}.{JobInterrupted.__qualname__}: the job was cancelled.\n",
)


class TaskJobFunction(JobFunction[..., Any]):
    """The job of a ``django.tasks`` Task: runs it the way Django's backends do (with a
    ``TaskContext`` if it takes one). Django's task signals are sent by this module's
    receivers of the job signals."""

    def __init__(self, task: Task[Any, Any]) -> None:
        # ``options`` (read by schedules and checks) are the backend's at registration;
        # a worker reads them afresh for each job (options_for).
        try:
            options = backend_options(task.backend, task.queue_name)
        except ConfigurationError:  # asyncjobs.E012 reports it, and enqueue() raises it
            options = JobOptions(queue=task.queue_name)
        super().__init__(task.func, task.module_path, options)
        self.task = task
        self.priority = task.priority

    def __repr__(self) -> str:
        return f"<TaskJobFunction {self.name}>"

    def options_for(self, job: Job) -> JobOptions:
        """The ``OPTIONS`` of the backend that enqueued ``job`` (the defaults if they became invalid)."""
        try:
            return backend_options(self.alias_of(job), job.queue)
        except ConfigurationError as exc:
            fields = {"job": job.pk, "name": job.name, "queue": job.queue, "reason": str(exc)}
            log_event(tasks_logger, logging.ERROR, "task.default_options", **fields)
            return JobOptions(queue=job.queue)

    def alias_of(self, job: Job) -> str:
        """The alias of the backend that enqueued ``job`` (the task's own for other rows)."""
        return str((job.django_task or {}).get("backend") or self.task.backend)

    def task_for(self, job: Job) -> Task[Any, Any]:
        """The Task as ``job`` was enqueued: its priority, queue, ``run_after`` and backend.

        Not validated again: a result stored earlier stays readable when ``QUEUES`` changed.
        """
        run_after = (job.django_task or {}).get("run_after")
        changes = {
            "priority": job.priority,
            "queue_name": job.queue,
            "run_after": datetime.fromisoformat(run_after) if run_after else None,
            "backend": self.alias_of(job),
        }
        if all(getattr(self.task, name) == value for name, value in changes.items()):
            return self.task
        copy = object.__new__(type(self.task))
        for field in fields(self.task):
            object.__setattr__(copy, field.name, changes.get(field.name, getattr(self.task, field.name)))
        return copy

    def result_for(self, job: Job, backend: str | None = None) -> TaskResult[Any, Any]:
        task = self.task_for(job)
        return build_result(job, task, backend or task.backend)

    def invoke(self, job: Job) -> Any:
        task = self.task_for(job)
        if task.takes_context:
            context: TaskContext[Any, Any] = TaskContext(task_result=build_result(job, task, task.backend))
            return task.call(context, *job.args, **job.kwargs)
        return task.call(*job.args, **job.kwargs)

    def prepare_result(self, value: Any) -> Any:
        # What Django's backends store: tuples as lists, bytes decoded; other types are a TypeError.
        return normalize_json(value)


def _send_task_enqueued(sender: type[Job], job: Job, job_function: Any = None, **kwargs: Any) -> None:
    # Every way a task's row is created (the backend, a schedule, enqueue() by name) sends it.
    # Sent robustly by the core: an exception here is logged and the committed row stays.
    if isinstance(job_function, TaskJobFunction):
        announce(task_enqueued, job_function.result_for(job))


def _send_task_started(sender: type[Job], job: Job, job_function: Any = None, **kwargs: Any) -> None:
    # Not robust, as job_started is not: a receiver's exception fails the attempt.
    if isinstance(job_function, TaskJobFunction):
        result = job_function.result_for(job)
        task_started.send(sender=_sender(result.backend), task_result=result)


def _send_task_finished(sender: type[Job], job: Job, job_function: Any = None, **kwargs: Any) -> None:
    if isinstance(job_function, TaskJobFunction):
        announce(task_finished, job_function.result_for(job))


def connect_signals() -> None:
    """Connect the receivers that send Django's task signals (once; later calls do nothing).
    Not connected in projects without the backend, so their enqueues add no on-commit callback."""
    job_created.connect(_send_task_enqueued, dispatch_uid="django_asyncjobs.tasks.task_enqueued")
    job_started.connect(_send_task_started, dispatch_uid="django_asyncjobs.tasks.task_started")
    job_finished.connect(_send_task_finished, dispatch_uid="django_asyncjobs.tasks.task_finished")


def connect_signals_if_used() -> None:
    """:func:`connect_signals` if ``TASKS`` names an ``AsyncJobsBackend`` (called at start-up)."""
    if _uses_our_backend():
        connect_signals()


def announce(signal: Signal, result: TaskResult[Any, Any]) -> None:
    """Send Django's task ``signal`` about a state already recorded: a failing receiver is
    logged, not raised. The sender is the class of the result's backend."""
    for receiver, response in signal.send_robust(sender=_sender(result.backend), task_result=result):
        if isinstance(response, Exception):
            fields = {"job": result.id, "name": result.task.module_path, "receiver": repr(receiver)}
            log_event(tasks_logger, logging.ERROR, "signal.receiver_failed", **fields, exc_info=response)


def build_result(job: Job, task: Task[Any, Any], backend: str) -> TaskResult[Any, Any]:
    """``job`` as Django's ``TaskResult`` of ``task`` (see docs/django-tasks.md for the mapping)."""
    status = STATUSES[str(job.status)]
    # Put-backs by workers without the code (outcomes.record_unknown) are not attempts.
    failures = [entry for entry in job.failed_attempts or [] if isinstance(entry, dict) and not entry.get("put_back")]
    errors = [
        TaskError(
            exception_class_path=str(entry.get("exception_class") or "builtins.Exception"),
            traceback=str(entry.get("error") or ""),
        )
        for entry in failures
    ]
    if job.status == "cancelled" and (not errors or errors[-1] != CANCELLED):
        errors.append(CANCELLED)  # cancelled while waiting (a running attempt's cancel is in failed_attempts)
    # One worker per attempt: those of the failed attempts, then the latest attempt's.
    worker_ids = [str(entry.get("worker") or "") for entry in failures][: job.attempts]
    worker_ids += [job.worker] * (job.attempts - len(worker_ids))
    first_start = failures[0].get("started_at") if failures else None
    result: TaskResult[Any, Any] = TaskResult(
        task=task,
        id=str(job.pk),
        status=status,
        enqueued_at=job.created_at,
        started_at=datetime.fromisoformat(first_start) if first_start else job.started_at,
        finished_at=job.finished_at if status in FINISHED else None,
        last_attempted_at=job.started_at,
        args=job.args,
        kwargs=job.kwargs,
        backend=backend,
        errors=errors,
        worker_ids=worker_ids,
    )
    if status == TaskResultStatus.SUCCESSFUL:
        object.__setattr__(result, "_return_value", job.result)
    return result


class JobsBackend:
    """What marks a ``django.tasks`` backend whose tasks run as jobs here: the base of
    :class:`~django_asyncjobs.tasks.backend.AsyncJobsBackend` (this module stays below it)."""

    def job_options(self, queue: str | None = None) -> JobOptions:
        raise NotImplementedError


def backend_options(alias: str, queue: str | None) -> JobOptions:
    """The job options of the backend ``alias`` (its ``OPTIONS``), for ``queue``."""
    backend = _backend(alias)
    if isinstance(backend, JobsBackend):
        return backend.job_options(queue)
    return JobOptions(queue=queue)


def register_task(task: Task[Any, Any]) -> TaskJobFunction:
    """Register ``task`` as the job named ``task.module_path`` (once; later calls return it)."""
    existing = registered(task.module_path)
    if isinstance(existing, TaskJobFunction) and existing.func is task.func:
        return existing
    connect_signals()
    return register_job_function(TaskJobFunction(task))


#: A dotted path of identifiers, the only kind of name looked up as a Django task.
_DOTTED_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")


def find_task(name: str) -> TaskJobFunction | None:
    """The Task of an ``AsyncJobsBackend`` at the module path ``name``, registered now (its
    module had not been imported in this process); ``None`` for anything else. The
    registry's finder (:func:`~django_asyncjobs.engine.registry.add_finder`)."""
    if not _DOTTED_PATH.fullmatch(name):
        return None
    module_name, _, attribute = name.rpartition(".")
    if not _uses_our_backend() or not _may_import(module_name):
        return None
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    except Exception:  # noqa: BLE001 - logged with its traceback
        fields = {"module": module_name, "task": name}
        log_event(tasks_logger, logging.ERROR, "task.import_failed", **fields, exc_info=True)
        return None
    candidate = getattr(module, attribute, None)
    if not isinstance(candidate, Task) or candidate.module_path != name or not _is_ours(candidate.backend):
        return None
    return register_task(candidate)


def _may_import(module_name: str) -> bool:
    """Only modules already imported or inside an installed app are imported for a name."""
    if module_name in sys.modules:
        return True
    return any(
        module_name == config.name or module_name.startswith(f"{config.name}.") for config in apps.get_app_configs()
    )


def _uses_our_backend() -> bool:
    for params in (getattr(settings, "TASKS", None) or {}).values():
        try:
            backend_class = import_string(params["BACKEND"])
        except Exception:  # noqa: BLE001 - Django's own checks report a backend that cannot be imported
            continue
        if isinstance(backend_class, type) and issubclass(backend_class, JobsBackend):
            return True
    return False


def _backend(alias: str) -> BaseTaskBackend | None:
    try:
        return task_backends[alias]
    except Exception:  # noqa: BLE001 - an alias no longer configured (InvalidTaskBackend) or not importable
        return None


def _is_ours(alias: str) -> bool:
    return isinstance(_backend(alias), JobsBackend)


def _sender(alias: str) -> type[Any]:
    """The sender of a task signal: the backend's class (``JobsBackend`` once its alias is gone)."""
    backend = _backend(alias)
    return type(backend) if isinstance(backend, JobsBackend) else JobsBackend


add_finder(find_task)
