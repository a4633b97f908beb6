"""Creating jobs: validate in the caller's process, save the rows, push on commit."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import IntegrityError, router, transaction
from django.utils import timezone
from redis.exceptions import RedisError

from ..conf import app_settings
from ..exceptions import EnqueueError, SerializationError
from ..logs import enqueue_logger, log_event
from ..models import Job, JobStatus
from ..signals import job_created, job_enqueued, notify
from .broker import push, validate_queue
from .capacity import check as check_backpressure
from .payloads import json_problem
from .registry import JobFunction, job_function_by_name

ArgsKwargs = tuple[Sequence[Any], Mapping[str, Any]]


def enqueue(name: str, *args: Any, **kwargs: Any) -> Job:
    """Enqueue the job registered as ``name``; same options as ``JobFunction.enqueue``.

    The package's internal jobs cannot be enqueued by name (:class:`InternalJob`).
    """
    return job_function_by_name(name).enqueue(*args, **kwargs)


def enqueue_calls(
    job_function: JobFunction[Any, Any],
    calls: Sequence[ArgsKwargs],
    *,
    queue: str | None = None,
    max_attempts: int | None = None,
    run_at: datetime | None = None,
    delay: timedelta | float | None = None,
    owner: Any = None,
    idempotency_key: str | None = None,
    strict: bool | None = None,
    schedule: Any = None,
    priority: int | None = None,
    django_task: dict[str, Any] | None = None,
) -> list[Job]:
    """Save one ``Job`` per call and push their messages once the transaction commits.

    ``schedule`` is the ``Schedule`` that creates the jobs, if any. ``priority`` (the job
    function's by default) above 0 pushes them to the front of the queue; ``django_task``
    is stored as it is (see ``django_asyncjobs.backends``).
    """
    options = job_function.options
    queue_name = validate_queue(queue or options.resolved_queue())
    attempts = options.resolved_max_attempts() if max_attempts is None else max_attempts
    if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1:
        raise ValueError(f"max_attempts must be an integer >= 1, got {attempts!r}")
    now = timezone.now()
    due_at = _due_at(now, run_at, delay)
    if idempotency_key is not None and len(calls) != 1:
        raise ValueError("idempotency_key applies to a single enqueue, not enqueue_many()")
    delayed = due_at is not None and due_at > now
    jobs = [
        Job(
            name=job_function.name,
            queue=queue_name,
            status=JobStatus.SCHEDULED if delayed else JobStatus.QUEUED,
            args=list(args),
            kwargs=dict(kwargs),
            max_attempts=attempts,
            owner=owner if getattr(owner, "is_authenticated", owner is not None) else None,
            idempotency_key=idempotency_key,
            schedule=schedule,
            priority=job_function.priority if priority is None else priority,
            django_task=django_task,
            created_at=now,
            run_at=due_at if delayed else None,
            enqueued_at=None if delayed else now,
        )
        for args, kwargs in (_checked_call(job_function.name, call) for call in calls)
    ]
    if idempotency_key is not None:
        existing = Job.objects.filter(name=job_function.name, idempotency_key=idempotency_key).first()
        if existing is not None:
            return [existing]
    if not delayed:
        check_backpressure(queue_name, incoming=len(jobs))
    if idempotency_key is not None:
        existing = _save_idempotent(jobs[0])
        if existing is not None:
            return [existing]
    elif len(jobs) == 1:
        jobs[0].save(force_insert=True)
    else:
        Job.objects.bulk_create(jobs, batch_size=500)
    if not delayed:
        strict_mode = bool(app_settings.STRICT_ENQUEUE) if strict is None else strict
        transaction.on_commit(lambda: ring(jobs, strict=strict_mode), using=router.db_for_write(Job))
    if job_created.receivers and job_created.has_listeners(Job):  # no on-commit callback when nobody listens
        transaction.on_commit(partial(_announce_created, jobs, job_function), using=router.db_for_write(Job))
    return jobs


def _announce_created(jobs: Sequence[Job], job_function: JobFunction[Any, Any]) -> None:
    for job in jobs:
        notify(job_created, job, job_function=job_function)


def ring(jobs: Sequence[Job], *, strict: bool = False) -> bool:
    """Push the messages of committed ``queued`` jobs. Returns whether Redis took them.

    When Redis cannot be reached the rows stay ``queued`` and recovery pushes them
    later; ``strict=True`` raises :class:`EnqueueError` as well.
    """
    try:
        push(jobs)
    except RedisError as exc:
        ids = [str(job.pk) for job in jobs]
        message = f"Could not push {len(ids)} job(s) to Redis ({exc}); the rows stay queued for recovery."
        if strict:
            raise EnqueueError(message, ids) from exc
        # The rows stay queued for recovery.
        fields = {"count": len(ids), "reason": str(exc), "job_ids": ids}
        log_event(enqueue_logger, logging.WARNING, "enqueue.push_failed", **fields, recovery="pushes them")
        return False
    for job in jobs:
        notify(job_enqueued, job)
    return True


def _due_at(now: datetime, run_at: datetime | None, delay: timedelta | float | None) -> datetime | None:
    if run_at is not None and delay is not None:
        raise ValueError("Pass run_at or delay, not both.")
    if delay is not None:
        if isinstance(delay, bool) or not isinstance(delay, timedelta | int | float):
            raise TypeError(f"delay must be a timedelta or a number of seconds, got {delay!r}")
        seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
        if seconds < 0:
            raise ValueError(f"delay must not be negative, got {delay!r}")
        return now + timedelta(seconds=seconds)
    if run_at is not None:
        if not isinstance(run_at, datetime):
            raise TypeError(f"run_at must be a datetime, got {run_at!r}")
        if settings.USE_TZ and timezone.is_naive(run_at):
            raise ValueError(f"run_at must be timezone-aware (USE_TZ is True), got naive {run_at!r}")
        if not settings.USE_TZ and timezone.is_aware(run_at):
            return timezone.make_naive(run_at)
    return run_at


def _checked_call(name: str, call: ArgsKwargs) -> ArgsKwargs:
    args, kwargs = call
    bad_keys = [key for key in kwargs if not isinstance(key, str)]
    if bad_keys:
        raise SerializationError(f"keyword argument names of job {name!r} must be strings, got {bad_keys[0]!r}")
    problem = json_problem([args, kwargs])
    if problem is not None:
        raise SerializationError(
            _describe_unstorable(name, args, kwargs) or f"The arguments of job {name!r} {problem}."
        )
    return args, kwargs


def _describe_unstorable(name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str | None:
    """Which argument cannot be stored, and why."""
    labelled = [(f"positional argument {i}", value) for i, value in enumerate(args)]
    labelled += [(f"keyword argument {key!r}", value) for key, value in kwargs.items()]
    for label, value in labelled:
        problem = json_problem(value)
        if problem is None:
            continue
        message = f"{label} of job {name!r} {problem}."
        if problem.startswith("cannot be stored as JSON"):
            message += " Pass plain JSON values (str, int, float, bool, None, list, dict), e.g. an id, not an object."
        return message
    return None


def _save_idempotent(job: Job) -> Job | None:
    """Insert ``job``; if a concurrent call inserted the same name and key first, return that one."""
    try:
        with transaction.atomic(using=router.db_for_write(Job)):
            job.save(force_insert=True)
    except IntegrityError:
        existing = Job.objects.filter(name=job.name, idempotency_key=job.idempotency_key).first()
        if existing is None:
            raise
        return existing
    return None
