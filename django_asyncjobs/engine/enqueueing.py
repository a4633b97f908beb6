"""Creating jobs: check the options and arguments in the caller's process, save the rows,
push their messages once the transaction commits.

:func:`enqueue_calls` does it in steps: :meth:`EnqueueOptions.resolve` (defaults and
checks), :func:`_new_jobs` (one unsaved row per call, its arguments checked), back
pressure, the INSERT (:func:`.states.enqueue`), then :func:`_push_on_commit`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import router, transaction
from django.utils import timezone

from .. import tracing
from ..conf import app_settings
from ..exceptions import SerializationError
from ..logs import jobs_logger, log_event
from ..models import Job
from ..payloads import json_problem
from ..signals import job_created, notify
from ..validators import require_count
from . import states
from .broker import ring, validate_queue
from .capacity import check as check_backpressure
from .dependencies import attach, dependency_ids, settle, waiting_message
from .functions import JobFunction
from .inserts import new_jobs
from .limits import check_concurrency_keys
from .registry import job_function_by_name
from .unique import unique_key

ArgsKwargs = tuple[Sequence[Any], Mapping[str, Any]]


def enqueue(name: str, *args: Any, **kwargs: Any) -> Job:
    """Enqueue the job registered as ``name``; same options as ``JobFunction.enqueue``.

    The package's internal jobs cannot be enqueued by name (:class:`InternalJob`).
    """
    return job_function_by_name(name).enqueue(*args, **kwargs)


async def aenqueue(name: str, *args: Any, **kwargs: Any) -> Job:
    """:func:`enqueue` for async code (see ``JobFunction.aenqueue``)."""
    return await job_function_by_name(name).aenqueue(*args, **kwargs)


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
    after: Any = None,
    after_any: bool = False,
    pass_result: bool = False,
    waiting: str = "",
    group: Any = None,
) -> list[Job]:
    """Save one ``Job`` per call and push their messages once the transaction commits.

    ``schedule`` is the ``Schedule`` that creates the jobs, if any. ``priority`` (the job
    function's by default) above 0 pushes them to the front of the queue; ``django_task``
    is stored as it is (see ``django_asyncjobs.backends``). With ``after`` (jobs or ids), or
    ``waiting`` (why), the jobs wait without a message until released (:mod:`.dependencies`:
    ``after_any``, ``pass_result``); ``group`` is their ``JobGroup`` (:mod:`.groups`).
    """
    options = EnqueueOptions.resolve(
        job_function,
        len(calls),
        queue=queue,
        max_attempts=max_attempts,
        run_at=run_at,
        delay=delay,
        owner=owner,
        idempotency_key=idempotency_key,
        strict=strict,
        schedule=schedule,
        priority=priority,
        django_task=django_task,
        after=after,
        after_any=after_any,
        pass_result=pass_result,
        waiting=waiting,
        group=group,
    )
    if not tracing.active():
        return _enqueue(job_function, calls, options, None)[0]
    with tracing.enqueueing(job_function.name, options.queue, len(calls)) as span:
        jobs, existing = _enqueue(job_function, calls, options, span.context)
        span.created(jobs, existing=existing)
    return jobs


def _enqueue(
    job_function: JobFunction[Any, Any],
    calls: Sequence[ArgsKwargs],
    options: EnqueueOptions,
    trace_context: dict[str, str] | None,
) -> tuple[list[Job], bool]:
    """The jobs created, or the one found by its idempotency key (then ``True``)."""
    if job_function.options.concurrency_key is not None:
        check_concurrency_keys(job_function.name, job_function.options.concurrency_key, calls)
    jobs = _new_jobs(job_function.name, calls, options, trace_context)
    if type(job_function).display_name is not JobFunction.display_name:  # the others name no row
        for job in jobs:
            job.display_name = job_function.display_name(job.args, job.kwargs)
    existing = _existing_job(job_function.name, options.idempotency_key)
    if existing is None:
        if not options.delayed and not options.waiting:
            check_backpressure(options.queue, incoming=len(jobs), name=job_function.name)
        if job_function.options.unique:
            return _enqueue_unique(job_function, jobs, options)
        existing = _insert(jobs, options)
    if existing is not None:
        return [existing], True
    _push_on_commit(job_function, jobs, options)
    return jobs, False


def _enqueue_unique(
    job_function: JobFunction[Any, Any], jobs: list[Job], options: EnqueueOptions
) -> tuple[list[Job], bool]:
    """Each job, or the waiting job with its name and arguments (``@job(unique_for=...)``,
    ``debounce=``); one INSERT per new job. ``True``: none was new."""
    result, new = [], []
    with transaction.atomic(using=router.db_for_write(Job)):
        for job in jobs:
            job.unique_key = unique_key(job.name, job.args, job.kwargs)
            waiting = states.enqueue_unique(job, now=options.now, run_at=options.run_at, options=job_function.options)
            result.append(waiting or job)
            if waiting is None:
                new.append(job)
        if new:
            _push_on_commit(job_function, new, options)
    return result, not new


@dataclass(frozen=True, slots=True)
class EnqueueOptions:
    """The checked options of one enqueue call, the same for every job it creates."""

    queue: str
    max_attempts: int
    now: datetime
    #: Set only when in the future: the jobs start ``scheduled``, else ``queued``.
    run_at: datetime | None
    owner: Any
    idempotency_key: str | None
    #: ``None``: ``STRICT_ENQUEUE`` decides.
    strict: bool | None
    schedule: Any
    priority: int
    django_task: dict[str, Any] | None
    #: The ids of the jobs these wait for (:mod:`.dependencies`).
    after: tuple[uuid.UUID, ...] = ()
    after_any: bool = False
    pass_result: bool = False
    #: Set when the jobs wait for others (their progress message): no message until released.
    waiting: str = ""
    group: Any = None

    @property
    def delayed(self) -> bool:
        return self.run_at is not None

    @classmethod
    def resolve(
        cls,
        job_function: JobFunction[Any, Any],
        count: int,
        *,
        queue: str | None,
        max_attempts: int | None,
        run_at: datetime | None,
        delay: timedelta | float | None,
        owner: Any,
        idempotency_key: str | None,
        strict: bool | None,
        schedule: Any,
        priority: int | None,
        django_task: dict[str, Any] | None,
        after: Any = None,
        after_any: bool = False,
        pass_result: bool = False,
        waiting: str = "",
        group: Any = None,
    ) -> EnqueueOptions:
        """Fill in the job function's defaults and check the options of ``count`` calls.

        Raises ``ValueError`` or ``TypeError`` naming the option that is wrong, and
        ``ConfigurationError`` for a queue missing from ``RQ_QUEUES``.
        """
        defaults = job_function.options
        queue_name = validate_queue(queue or defaults.resolved_queue())
        attempts = require_count(
            defaults.resolved_max_attempts() if max_attempts is None else max_attempts, "max_attempts"
        )
        now = timezone.now()
        due_at = _due_at(now, run_at, delay)
        if idempotency_key is not None and count != 1:
            raise ValueError("idempotency_key applies to a single enqueue, not enqueue_many()")
        if defaults.unique and idempotency_key is not None:
            raise ValueError(
                f"idempotency_key does not apply to {job_function.name}: a unique job's key is its name and arguments"
            )
        if defaults.debounce is not None:
            if due_at is not None:
                raise ValueError(f"{job_function.name} is debounced: its jobs start debounce after the last enqueue")
            due_at = now + defaults.debounce
        after_ids = dependency_ids(after) if after is not None else ()
        if after_ids or waiting:
            if due_at is not None or defaults.unique or idempotency_key is not None:
                raise ValueError(
                    f"a job that waits for others (after=, a chain's step, a group's then) does not combine with "
                    f"run_at, delay, idempotency_key or a unique job ({job_function.name})"
                )
            waiting = waiting or waiting_message(len(after_ids))
        return cls(
            queue=queue_name,
            max_attempts=attempts,
            now=now,
            run_at=due_at if due_at is not None and due_at > now else None,
            owner=owner if getattr(owner, "is_authenticated", owner is not None) else None,
            idempotency_key=idempotency_key,
            strict=strict,
            schedule=schedule,
            priority=job_function.priority if priority is None else priority,
            django_task=django_task,
            after=after_ids,
            after_any=bool(after_any),
            pass_result=pass_result,
            waiting=waiting,
            group=group,
        )


def _new_jobs(
    name: str, calls: Sequence[ArgsKwargs], options: EnqueueOptions, trace_context: dict[str, str] | None
) -> list[Job]:
    """The unsaved rows of ``calls``, their arguments checked (first status: :func:`.states.enqueue`)."""
    checked = []
    for call in calls:
        args, kwargs = _checked_call(name, call)
        checked.append((list(args), dict(kwargs)))
    columns: dict[str, Any] = {}
    if trace_context is not None:
        columns["trace_context"] = trace_context
    if options.group is not None:
        columns["group"] = options.group
    jobs = new_jobs(
        checked,
        name=name,
        queue=options.queue,
        max_attempts=options.max_attempts,
        owner=options.owner,
        idempotency_key=options.idempotency_key,
        schedule=options.schedule,
        priority=options.priority,
        django_task=options.django_task,
        **columns,
    )
    if options.group is not None:
        for index, job in enumerate(jobs):
            job.group_index = index
    return jobs


def _existing_job(name: str, idempotency_key: str | None) -> Job | None:
    if idempotency_key is None:
        return None
    return Job.objects.filter(name=name, idempotency_key=idempotency_key).first()


def _insert(jobs: list[Job], options: EnqueueOptions) -> Job | None:
    """INSERT ``jobs``; the job a concurrent call inserted first with the same idempotency key, if any."""
    if options.idempotency_key is not None:
        return states.enqueue_once(jobs[0], now=options.now, run_at=options.run_at)
    if not options.after:
        states.enqueue(jobs, now=options.now, run_at=options.run_at, waiting=options.waiting)
        return None
    alias = router.db_for_write(Job)
    with transaction.atomic(using=alias):
        states.enqueue(jobs, now=options.now, run_at=None, waiting=options.waiting)
        attach(jobs, options.after, any_outcome=options.after_any, pass_result=options.pass_result)
    # Its dependencies may have finished before this commit: nobody else would settle it.
    transaction.on_commit(partial(settle, [job.pk for job in jobs]), using=alias)
    return None


def _push_on_commit(job_function: JobFunction[Any, Any], jobs: list[Job], options: EnqueueOptions) -> None:
    """Once the transaction commits: push the messages of queued jobs, and announce ``job_created``."""
    using = router.db_for_write(Job)
    if not options.delayed and not options.waiting:
        strict = app_settings.STRICT_ENQUEUE if options.strict is None else options.strict
        transaction.on_commit(lambda: ring(jobs, strict=strict), using=using)
    if job_created.receivers and job_created.has_listeners(Job):  # no on-commit callback when nobody listens
        transaction.on_commit(partial(_announce_created, jobs, job_function), using=using)
    if jobs_logger.isEnabledFor(logging.DEBUG):  # nor when nobody reads the lines
        transaction.on_commit(partial(_log_enqueued, jobs), using=using)


def _announce_created(jobs: Sequence[Job], job_function: JobFunction[Any, Any]) -> None:
    for job in jobs:
        notify(job_created, job, job_function=job_function)


def _log_enqueued(jobs: Sequence[Job]) -> None:
    for job in jobs:
        fields = {"job": job.pk, "name": job.name, "queue": job.queue, "status": job.status, "run_at": job.run_at}
        log_event(jobs_logger, logging.DEBUG, "job.enqueued", **fields, priority=job.priority or None)


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
