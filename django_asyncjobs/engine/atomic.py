"""Atomic jobs (``@job(atomic=True)``): the function and the write of its outcome in one
transaction on the job's database.

The claim is committed on its own first, so the job shows ``running`` while it runs.
Then one transaction holds what the function writes and the ``UPDATE`` that ends the
attempt ``succeeded`` (conditional on the row still holding this attempt, as every
outcome is): both commit, or neither does. A worker killed before the commit leaves no
trace of the attempt's writes, and recovery runs the job again; a job whose success
committed never runs again. What makes the attempt end otherwise (the function raised,
its return value cannot be stored, the row left the attempt) rolls the transaction back;
a failure or a retry is then written in a transaction of its own, as for any job.

While the transaction is open, the job's progress is kept in memory only
(:func:`holds_transaction`): a write of the job's row on its own connection would lock
the row until the commit, and the heartbeat thread, which writes that row on another
connection, would wait behind it. The latest progress is written with the outcome.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError, router, transaction
from django.utils import timezone

from ..conf import app_settings
from ..exceptions import OutcomeRefused
from ..logs import job_fields, jobs_logger, log_event
from ..models import Job, JobStatus
from . import states
from .outcomes import (
    Outcome,
    Unstorable,
    discard_outcome,
    path_of,
    record_unstorable,
    refused_result,
    result_problem,
    succeeded,
)
from .reconnecting import persist

if TYPE_CHECKING:
    from .functions import JobFunction

__all__ = ["holds_transaction", "run_atomic"]

#: Ids of the jobs whose attempt runs in its transaction in this process right now.
_open: set[uuid.UUID] = set()

#: What the success write sets on the instance, restored when the transaction rolls back.
_SUCCESS_FIELDS = ("status", "result", "progress", "finished_at")


class _NotWritten(Exception):
    """Ends the transaction without its writes: the attempt ends some other way."""

    def __init__(self, problem: Unstorable | None = None) -> None:
        super().__init__()
        #: Why the return value cannot be stored; ``None``: the row left the attempt.
        self.problem = problem


def holds_transaction(job: Job) -> bool:
    """Whether ``job``'s attempt runs in its own transaction in this process (an atomic job)."""
    return job.pk in _open


def run_atomic(job: Job, job_function: JobFunction[Any, Any], invoke: Callable[[], Any]) -> Outcome:
    """``invoke()`` (the function under its guard) and the write of its success, in one
    transaction on the job's database. Raises what ``invoke()`` raised, the transaction
    rolled back: the caller records the failure, as for any job."""
    alias = router.db_for_write(Job)
    before: dict[str, Any] = {}  # the instance as it was before the success write, if it was tried
    began = time.monotonic()
    committed: list[bool] = []
    _open.add(job.pk)
    try:
        with transaction.atomic(using=alias):
            # The first callback to run after the commit: an exception from one of the function's
            # callbacks, which run after it, comes from a transaction that committed.
            transaction.on_commit(lambda: committed.append(True), using=alias)
            _write_success(job, job_function, invoke(), before)
    except _NotWritten as exc:
        _restore(job, before)
        return discard_outcome(job) if exc.problem is None else record_unstorable(job, exc.problem, job_function)
    except BaseException as exc:
        if committed:
            fields = {**job_fields(job), "reason": f"{path_of(type(exc))}: {exc}"}
            log_event(jobs_logger, logging.ERROR, "job.on_commit_failed", **fields, exc_info=exc)
            return succeeded(job, job_function)
        # The commit's fate may be unknown (the connection broke as it was sent).
        if isinstance(exc, DatabaseError) and _committed(job, before, alias):
            return succeeded(job, job_function)
        _restore(job, before)
        raise
    finally:
        _open.discard(job.pk)
        _warn_if_held_long(job, time.monotonic() - began)
    return succeeded(job, job_function)


def _write_success(job: Job, job_function: JobFunction[Any, Any], result: Any, before: dict[str, Any]) -> None:
    stored, problem = result_problem(job, result, job_function)
    if problem is not None:
        raise _NotWritten(problem)
    # Taken now, not before the function ran: its progress is kept when the write is undone.
    before.update((name, getattr(job, name)) for name in _SUCCESS_FIELDS)
    try:
        written = states.succeed(job, result=stored, now=timezone.now())
    except OutcomeRefused as exc:
        raise _NotWritten(refused_result(exc)) from exc
    if not written:  # cancelled, or taken as lost by recovery: the function's writes go too
        raise _NotWritten()


def _committed(job: Job, before: dict[str, Any], alias: str) -> bool:
    """Whether the success of this attempt is in the row (its commit went through although
    the connection broke): read on a new connection if need be."""
    finished_at = job.finished_at
    if not before or job.status != JobStatus.SUCCEEDED or finished_at == before["finished_at"]:
        return False  # the success was not written: the transaction failed before it
    row = Job.objects.using(alias).filter(pk=job.pk, status=JobStatus.SUCCEEDED, worker=job.worker)
    mine = row.filter(attempts=job.attempts, finished_at=finished_at)
    try:
        return persist(mine.exists, what=f"the check of the commit of job {job.pk}", alias=alias)
    except DatabaseError:
        return False


def _restore(job: Job, before: dict[str, Any]) -> None:
    for name, value in before.items():
        setattr(job, name, value)


def _warn_if_held_long(job: Job, held: float) -> None:
    limit = app_settings.ATOMIC_WARN_AFTER
    if limit is not None and held > limit:
        fields = {**job_fields(job), "held_s": round(held, 3), "warn_after_s": limit}
        log_event(jobs_logger, logging.WARNING, "job.long_transaction", **fields)
