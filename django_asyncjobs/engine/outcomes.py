"""Deciding an attempt's outcome: succeeded, failed (and retried), put back, lost.

The writes are transitions of :mod:`.states`: conditional on the row still
holding this attempt, tried again on a new connection when one breaks. An
attempt never stays ``running`` because of a value the database refuses: it ends
``failed`` with a stored reason, and is not retried (it would be refused again).
This module decides which transition, then logs, signals and calls the hooks.
"""

from __future__ import annotations

import logging
import random
import traceback
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from django.db import router
from django.utils import timezone

from ..conf import app_settings
from ..exceptions import (
    JobInterrupted,
    JobNotRegistered,
    OutcomeRefused,
    SerializationError,
    WorkerLost,
    WorkerLostBeforeStart,
)
from ..logs import attempt_fields, job_fields, jobs_logger, last_line, log_event, wait_ms
from ..models import Job, JobStatus
from ..payloads import json_problem, storable_text
from ..signals import job_failed, job_finished, job_succeeded, notify
from ..times.clock import database_now
from . import states
from .broker import JobTimeoutException, ring
from .finishing import jobs_finished
from .reconnecting import persist
from .registry import get_job_function
from .states import ANY_HEARTBEAT
from .unique import key_to_restore

if TYPE_CHECKING:
    from .functions import JobFunction

#: Delay before a job this worker lacks the code of is offered again, doubled per put-back up to the max.
UNKNOWN_JOB_DELAY = 5.0
UNKNOWN_JOB_MAX_DELAY = 60.0


class Outcome(StrEnum):
    """What became of one piece of work: a job message a worker took, or an aggregation window."""

    SKIPPED = "skipped"  # duplicate delivery, or the job was cancelled or already ran; a window already done
    REFUSED = "refused"  # not a message of ours: unreadable, or no such job row
    ERROR = "error"  # the worker could not record the outcome (e.g. database down until a stop)
    PUT_BACK = "put back"  # this worker lacks the job's code: left for another worker
    DEFERRED = "deferred"  # over its rate limit: scheduled again, for when the limit allows a start
    SUCCEEDED = "succeeded"
    RETRYING = "retrying"
    FAILED = "failed"  # a job out of attempts; a window whose function raised
    CANCELLED = "cancelled"
    RAN = "ran"  # a window run inline
    ENQUEUED = "enqueued"  # a window handed to a job


def path_of(exception_class: type[BaseException]) -> str:
    return f"{exception_class.__module__}.{exception_class.__qualname__}"


def describe(exc: BaseException) -> str:
    if isinstance(exc, JobTimeoutException):
        return f"JobTimeout: {exc}\n\n" + "".join(traceback.format_exception(exc))
    return "".join(traceback.format_exception(exc))


def record_success(job: Job, result: Any, job_function: JobFunction[Any, Any] | None = None) -> Outcome:
    stored, failed = storable_result(job, result, job_function)
    if failed is not None:
        return failed
    return write_success(job, stored, job_function)


def storable_result(job: Job, result: Any, job_function: JobFunction[Any, Any] | None) -> tuple[Any, Outcome | None]:
    """``result`` as it is to be stored; or, when it cannot be, ``(None, outcome)`` of the
    attempt, recorded failed instead."""
    stored, problem = result_problem(job, result, job_function)
    if problem is not None:
        return None, record_unstorable(job, problem, job_function)
    return stored, None


#: Why a return value cannot be stored: the error to record, and the dotted path of its class.
Unstorable = tuple[str, str]


def result_problem(job: Job, result: Any, job_function: JobFunction[Any, Any] | None) -> tuple[Any, Unstorable | None]:
    """``result`` as it is to be stored, or ``(None, why not)``; nothing is written."""
    try:
        result = job_function.prepare_result(result) if job_function else result
    except (TypeError, ValueError) as exc:
        return None, (describe(exc), path_of(type(exc)))
    problem = json_problem(result)
    if problem is not None:
        return None, _unstorable(f"the return value of job {job.name!r} {problem}")
    return result, None


def record_unstorable(job: Job, problem: Unstorable, job_function: JobFunction[Any, Any] | None) -> Outcome:
    """Fail the attempt whose return value cannot be stored (:func:`result_problem`). Not
    retried: the same function would return a value that cannot be stored again."""
    error, error_class = problem
    return record_failure(job, error, retry=False, job_function=job_function, error_class=error_class)


def refused_result(exc: OutcomeRefused) -> Unstorable:
    """The problem of a return value the database refused."""
    return _unstorable(f"the database refused it ({exc})")


def _unstorable(reason: str) -> Unstorable:
    return f"result could not be stored: {reason}", path_of(SerializationError)


def write_success(job: Job, result: Any, job_function: JobFunction[Any, Any] | None) -> Outcome:
    """End the attempt ``succeeded`` with a :func:`storable_result`, and announce it."""
    try:
        written = states.succeed(job, result=result, now=timezone.now())
    except OutcomeRefused as exc:
        return record_unstorable(job, refused_result(exc), job_function)
    return succeeded(job, job_function) if written else _cancelled_meanwhile(job)


def succeeded(job: Job, job_function: JobFunction[Any, Any] | None) -> Outcome:
    """Once the success of ``job`` is committed: announce it, and settle what waits for it."""
    outcome = announce_success(job, job_function)
    if job.has_dependants or job.group_id is not None:
        jobs_finished([job])
    return outcome


def announce_success(job: Job, job_function: JobFunction[Any, Any] | None) -> Outcome:
    """Log and signal a success once its row is written."""
    if jobs_logger.isEnabledFor(logging.INFO):  # the fields are not even built otherwise
        log_event(jobs_logger, logging.INFO, "job.succeeded", **attempt_fields(job))
    notify(job_succeeded, job)
    notify(job_finished, job, job_function=job_function)
    return Outcome.SUCCEEDED


def discard_outcome(job: Job) -> Outcome:
    """The row left the attempt (cancelled, or taken as lost) before its outcome was written."""
    return _cancelled_meanwhile(job)


def record_failure(
    job: Job,
    error: str,
    *,
    retry: bool,
    job_function: JobFunction[Any, Any] | None = None,
    heartbeat_at: Any = ANY_HEARTBEAT,
    error_class: str = "builtins.Exception",
) -> Outcome:
    """Record a failed attempt: ``error`` (message and traceback) and the dotted path of its
    exception class, also appended to ``failed_attempts``; retry it if ``retry`` and attempts
    are left. With ``heartbeat_at``, only if the row still has that heartbeat."""
    error = storable_text(error)
    now = timezone.now()
    will_retry = retry and job_function is not None and job.attempts < job.max_attempts
    history = [*(job.failed_attempts or []), _failed_attempt(job, now, error, error_class)]
    values: dict[str, Any] = {"failed_attempts": history, "heartbeat_at": heartbeat_at, **_progress_of(job)}
    delay = 0.0
    waited = wait_ms(job)  # before the write, which sets the next attempt's run_at or enqueued_at
    try:
        if will_retry:
            assert job_function is not None
            delay = job_function.options_for(job).retry_delay(job.attempts, random.random)
            run_at = now + timedelta(seconds=delay) if delay > 0 else None
            written = states.retry(job, now=now, run_at=run_at, error=error, **values)
        else:
            written = states.fail(job, now=now, error=error, **values)
    except OutcomeRefused as exc:
        reason = f"error could not be stored: the database refused it ({exc})"
        return _fail_refused(job, reason, heartbeat_at, job_function)
    if not written:
        return _cancelled_meanwhile(job)
    if will_retry:
        if delay <= 0:
            ring([job])
        logged = {**attempt_fields(job), "wait_ms": waited, "retry_in_s": delay, "exception": error_class}
        logged["error"] = last_line(error)
        log_event(jobs_logger, logging.WARNING, "job.retrying", **logged)
    else:
        logged = {**attempt_fields(job), "wait_ms": waited, "exception": error_class, "error": last_line(error)}
        log_event(jobs_logger, logging.ERROR, "job.failed", **logged)
    notify(job_failed, job, will_retry=will_retry)
    if not will_retry:
        # A failure's UPDATE does not read has_dependants back (one statement): a job that came
        # to wait for this one while it ran is settled by the recovery pass instead.
        jobs_finished([job])
        notify(job_finished, job, job_function=job_function)
    return Outcome.RETRYING if will_retry else Outcome.FAILED


def _fail_refused(job: Job, error: str, heartbeat_at: Any, job_function: JobFunction[Any, Any] | None) -> Outcome:
    """The database refused the outcome's values: end the attempt ``failed`` with ``error`` and
    no values of the job's; without the history entry if even that is refused."""
    now = timezone.now()
    entry = _failed_attempt(job, now, error, path_of(SerializationError))
    extras: list[dict[str, Any]] = [
        {"failed_attempts": [*(job.failed_attempts or []), entry], "result": None, "progress_message": ""},
        {},
    ]
    for extra in extras:
        try:
            written = states.fail(job, now=now, error=error, heartbeat_at=heartbeat_at, **extra)
        except OutcomeRefused as exc:
            log_event(jobs_logger, logging.ERROR, "job.failure_refused", **job_fields(job), reason=str(exc))
            continue
        if not written:
            return _cancelled_meanwhile(job)
        fields = {**attempt_fields(job), "exception": path_of(SerializationError), "error": error}
        log_event(jobs_logger, logging.ERROR, "job.failed", **fields)
        notify(job_failed, job, will_retry=False)
        jobs_finished([job])
        notify(job_finished, job, job_function=job_function)
        return Outcome.FAILED
    return Outcome.ERROR


def _failed_attempt(job: Job, now: datetime, error: str, error_class: str) -> dict[str, Any]:
    """The ``failed_attempts`` entry of ``job``'s current attempt."""
    return {
        "attempt": job.attempts,
        "worker": job.worker,
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": now.isoformat(),
        "exception_class": error_class,
        "error": error,
    }


def _progress_of(job: Job) -> dict[str, Any]:
    return {"progress": job.progress, "progress_message": storable_text(job.progress_message)}


def record_interruption(job: Job, job_function: JobFunction[Any, Any]) -> Outcome:
    persist(
        lambda: job.refresh_from_db(fields=["status"]),
        what=f"the status of job {job.pk}",
        alias=router.db_for_write(Job),
    )
    if job.status == JobStatus.CANCELLED:
        return Outcome.CANCELLED
    # Interrupted without a cancel: the worker is shutting down. Count it as a failed attempt.
    error = "JobInterrupted: the worker was stopped while the job ran."
    return record_failure(job, error, error_class=path_of(JobInterrupted), retry=True, job_function=job_function)


def record_deferral(job: Job, wait: float, reason: str, *, unique_key: str | None = None) -> Outcome:
    """``job``'s attempt is over a limit (``reason``, shown as its progress message): back to
    ``scheduled`` for ``wait`` seconds from now (the database's clock), the attempt given back;
    nothing of it ran, so a unique job holds its ``unique_key`` again (:func:`.states.defer`)."""
    run_at = database_now() + timedelta(seconds=wait)
    if not states.defer(job, run_at=run_at, reason=reason, unique_key=unique_key):
        return discard_outcome(job)
    log_event(jobs_logger, logging.DEBUG, "job.deferred", **job_fields(job), reason=reason, retry_in_s=wait)
    return Outcome.DEFERRED


def record_unknown(job: Job, exc: JobNotRegistered) -> Outcome:
    """This worker lacks ``job``'s code (during a rolling deploy, say): put the job back for
    another worker without using up the attempt, until ``UNKNOWN_JOB_TIMEOUT`` seconds after
    the first put-back; then fail it. The put-backs are counted in one ``failed_attempts`` entry.
    Put-backs by workers on other hosts are compared, so the time is the database's."""
    now = database_now()
    history = list(job.failed_attempts or [])
    last = history[-1] if history and isinstance(history[-1], dict) else {}
    count = int(last.get("put_back") or 0)
    first = _first_put_back(last) if count else now
    timeout = app_settings.UNKNOWN_JOB_TIMEOUT
    if (now - first).total_seconds() >= timeout:
        error = f"JobNotRegistered: {exc}"
        if count:
            error = (
                f"JobNotRegistered: no worker with the code of {job.name!r} took this job within "
                f"UNKNOWN_JOB_TIMEOUT ({timeout:g}s) of the first that lacked it; it was put back "
                f"{count} time(s). {exc}"
            )
        return record_failure(job, error, retry=False, error_class=path_of(JobNotRegistered))
    delay = min(UNKNOWN_JOB_MAX_DELAY, UNKNOWN_JOB_DELAY * 2**count)
    error = (
        f"JobNotRegistered: worker {job.worker} does not have the code of {job.name!r}; put back for "
        f"another worker ({count + 1} time(s); failed if none has it {timeout:g}s after the first). {exc}"
    )
    entry = {
        **_failed_attempt(job, now, error, path_of(JobNotRegistered)),
        "put_back": count + 1,
        "first_put_back_at": first.isoformat(),
    }
    if count:
        history[-1] = entry
    else:
        history.append(entry)
    waited = wait_ms(job)
    try:
        written = states.put_back(
            job, now=now, run_at=now + timedelta(seconds=delay), error=error, failed_attempts=history
        )
    except OutcomeRefused as exc:
        reason = f"error could not be stored: the database refused it ({exc})"
        return _fail_refused(job, reason, ANY_HEARTBEAT, None)
    if not written:
        return _cancelled_meanwhile(job)
    fields = {**attempt_fields(job), "wait_ms": waited, "retry_in_s": delay, "reason": "no code"}
    log_event(jobs_logger, logging.WARNING, "job.put_back", **fields)
    return Outcome.PUT_BACK


def _first_put_back(entry: dict[str, Any]) -> datetime:
    try:
        return datetime.fromisoformat(str(entry["first_put_back_at"]))
    except (KeyError, ValueError):
        return database_now()


def record_lost_attempt(job: Job, error: str) -> Outcome:
    """Fail the running attempt of ``job``, whose worker is gone; retry it if attempts are left.

    Applied only if the row still shows the heartbeat recovery judged stale, so a
    worker that beat in the meantime keeps its job. ``SKIPPED`` when it did.

    A row claimed in a batch that never beat (``heartbeat_at`` NULL) may never have
    started: the first time, it is put back with the attempt given back
    (:class:`~django_asyncjobs.exceptions.WorkerLostBeforeStart`); a job lost so again
    has its attempt counted, so one that kills its worker cannot come back forever.
    """
    if job.heartbeat_at is None and not _lost_before_start_earlier(job):
        return _put_back_lost(job, error)
    outcome = record_failure(
        job,
        error,
        error_class=path_of(WorkerLost),
        retry=True,
        job_function=lookup(job.name),
        heartbeat_at=job.heartbeat_at,
    )
    return Outcome.SKIPPED if outcome is Outcome.CANCELLED else outcome


def _lost_before_start_earlier(job: Job) -> bool:
    marker = path_of(WorkerLostBeforeStart)
    return any(
        isinstance(entry, dict) and entry.get("exception_class") == marker for entry in job.failed_attempts or []
    )


def _put_back_lost(job: Job, error: str) -> Outcome:
    now = database_now()
    error = (
        f"{error} The job was claimed in a batch and had not sent a heartbeat, so it may not have "
        "started: this attempt is not counted (once per job)."
    )
    history = [*(job.failed_attempts or []), _failed_attempt(job, now, error, path_of(WorkerLostBeforeStart))]
    waited = wait_ms(job)
    try:
        # Only while the row still has no heartbeat: its worker may have come back, confirmed
        # the claim and started the job since recovery read it.
        written = states.put_back(
            job,
            now=now,
            run_at=now,
            error=error,
            failed_attempts=history,
            heartbeat_at=None,
            unique_key=key_to_restore(job),
        )
    except OutcomeRefused as exc:
        return _fail_refused(job, f"error could not be stored: the database refused it ({exc})", None, None)
    if not written:
        return Outcome.SKIPPED
    fields = {**attempt_fields(job), "wait_ms": waited, "retry_in_s": 0, "reason": "worker lost"}
    log_event(jobs_logger, logging.WARNING, "job.put_back", **fields)
    return Outcome.PUT_BACK


def lookup(name: str) -> JobFunction[Any, Any] | None:
    try:
        return get_job_function(name)
    except JobNotRegistered:
        return None


def _cancelled_meanwhile(job: Job) -> Outcome:
    # Cancelled, or taken as lost by recovery, while the attempt ran.
    log_event(jobs_logger, logging.INFO, "job.outcome_discarded", **job_fields(job), reason="no longer this attempt")
    return Outcome.CANCELLED
