"""What a worker does with a job id: claim the row, run the function, record the outcome."""

from __future__ import annotations

import contextvars
import json
import logging
import os
import random
import socket
import time
import traceback
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from django.db import close_old_connections, connections, router
from django.utils import timezone

from .claiming import claim
from .conf import app_settings
from .exceptions import JobInterrupted, JobNotRegistered, SerializationError, WorkerLost
from .models import Job, JobStatus
from .registry import JobFunction, get_job_function
from .signals import job_cancelled, job_failed, job_started, job_succeeded, notify

logger = logging.getLogger("django_asyncjobs")

_current: contextvars.ContextVar[Job | None] = contextvars.ContextVar("asyncjobs_current_job", default=None)
_last_progress_write: dict[Any, float] = {}

TimeLimit = Callable[[int, str], AbstractContextManager[Any]]


class Outcome(StrEnum):
    SKIPPED = "skipped"  # duplicate delivery, or the job was cancelled or already ran
    REFUSED = "refused"  # no such job row: not a message of ours
    ERROR = "error"  # the worker could not record the outcome (e.g. database down)
    SUCCEEDED = "succeeded"
    RETRYING = "retrying"
    FAILED = "failed"
    CANCELLED = "cancelled"


def current_job() -> Job | None:
    """The ``Job`` being run by the current worker, or ``None`` outside a job."""
    return _current.get()


def perform(job_id: str) -> str:
    """The function every RQ message calls. Lets stock RQ workers run our messages."""
    from rq import get_current_job

    from .heartbeat import beating

    rq_job = get_current_job()
    worker_name = getattr(rq_job, "worker_name", None) or default_worker_name()
    with beating(worker_name, job_id):
        return run_job(job_id, worker_name=worker_name).value


def default_worker_name() -> str:
    return f"{socket.gethostname()}.{os.getpid()}"


def run_job(job_id: str, *, worker_name: str = "", time_limit: TimeLimit | None = None) -> Outcome:
    """Claim job ``job_id`` and run it once. Safe to call any number of times per message.

    Like Django around a request, stale database connections are closed before and
    after the job (unless called inside a transaction, as tests may do).
    """
    try:
        pk = uuid.UUID(str(job_id))
    except ValueError:
        logger.error("Refused message %r: not a job id. Is a plain RQ job on an asyncjobs queue?", job_id)
        return Outcome.REFUSED
    manage_connections = not connections[router.db_for_write(Job)].in_atomic_block
    if manage_connections:
        close_old_connections()
    try:
        return _claim_and_run(pk, worker_name or default_worker_name(), time_limit)
    finally:
        if manage_connections:
            close_old_connections()


def _claim_and_run(pk: uuid.UUID, worker_name: str, time_limit: TimeLimit | None) -> Outcome:
    job = claim(pk, worker_name)
    if job is None:
        if Job.objects.filter(pk=pk).exists():
            logger.info("Job %s not claimed: taken by another delivery, cancelled, or finished.", pk)
            return Outcome.SKIPPED
        logger.error(
            "Refused message %s: no such job. Plain RQ jobs must use queues that asyncjobs workers do not serve.", pk
        )
        return Outcome.REFUSED
    try:
        job_function = get_job_function(job.name)
    except JobNotRegistered as exc:
        logger.error("Job %s refused: %s", job.pk, exc)
        return _record_failure(job, str(exc), error_class=_path_of(JobNotRegistered), retry=False)
    token = _current.set(job)
    try:
        job_started.send(sender=Job, job=job)
        job_function.started(job)
        limit = time_limit or (lambda seconds, _id: nullcontext())
        with limit(job_function.options_for(job).resolved_timeout(), str(job.pk)):
            result = job_function.invoke(job)
    except JobInterrupted:
        return _record_interruption(job, job_function)
    except Exception as exc:  # noqa: BLE001 - any failure of user code is recorded, not raised
        return _record_failure(
            job, _describe(exc), error_class=_path_of(type(exc)), retry=True, job_function=job_function
        )
    finally:
        _current.reset(token)
        _last_progress_write.pop(job.pk, None)
    return _record_success(job, result, job_function)


def _path_of(exception_class: type[BaseException]) -> str:
    return f"{exception_class.__module__}.{exception_class.__qualname__}"


def _describe(exc: BaseException) -> str:
    from rq.timeouts import JobTimeoutException

    if isinstance(exc, JobTimeoutException):
        return f"JobTimeout: {exc}\n\n" + "".join(traceback.format_exception(exc))
    return "".join(traceback.format_exception(exc))


def _this_attempt(job: Job) -> dict[str, Any]:
    """The row as this attempt claimed it. A worker that recovery took for dead and that
    comes back must not write over a later attempt (another worker's claim)."""
    return {"pk": job.pk, "status": JobStatus.RUNNING, "worker": job.worker, "attempts": job.attempts}


def _finish(job: Job, expected: dict[str, Any] | None = None, **fields: Any) -> bool:
    """Write the attempt's outcome unless the row left this attempt (cancelled, or taken
    as lost and claimed again) or, with ``expected``, no longer has those values."""
    updated = Job.objects.filter(**_this_attempt(job), **(expected or {})).update(**fields)
    for name, value in fields.items():
        setattr(job, name, value)
    return bool(updated)


def _record_success(job: Job, result: Any, job_function: JobFunction[Any, Any] | None = None) -> Outcome:
    try:
        result = job_function.prepare_result(result) if job_function else result
    except (TypeError, ValueError) as exc:
        return _record_failure(
            job, _describe(exc), error_class=_path_of(type(exc)), retry=False, job_function=job_function
        )
    try:
        json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as exc:
        error = SerializationError(f"The return value of job {job.name!r} cannot be stored as JSON: {exc}")
        text = f"{type(error).__name__}: {error}"
        return _record_failure(
            job, text, error_class=_path_of(SerializationError), retry=False, job_function=job_function
        )
    if not _finish(job, status=JobStatus.SUCCEEDED, result=result, progress=100, finished_at=timezone.now()):
        return _cancelled_meanwhile(job)
    notify(job_succeeded, job)
    if job_function is not None:
        job_function.finished(job)
    return Outcome.SUCCEEDED


def _record_failure(
    job: Job,
    error: str,
    *,
    retry: bool,
    job_function: JobFunction[Any, Any] | None = None,
    expected: dict[str, Any] | None = None,
    error_class: str = "builtins.Exception",
) -> Outcome:
    """Record a failed attempt: ``error`` (message and traceback) and the dotted path of its
    exception class, also appended to ``failed_attempts``; retry it if ``retry`` and attempts are left."""
    now = timezone.now()
    will_retry = retry and job_function is not None and job.attempts < job.max_attempts
    history = [*(job.failed_attempts or []), _failed_attempt(job, now, error, error_class)]
    if will_retry:
        assert job_function is not None
        delay = job_function.options_for(job).retry_delay(job.attempts, random.random)
        due = now + timedelta(seconds=delay)
        fields: dict[str, Any] = {"error": error, "finished_at": now, "failed_attempts": history, **_progress_of(job)}
        if delay > 0:
            fields.update(status=JobStatus.SCHEDULED, run_at=due)
        else:
            fields.update(status=JobStatus.QUEUED, enqueued_at=now, run_at=None)
        if not _finish(job, expected, **fields):
            return _cancelled_meanwhile(job)
        if delay <= 0:
            from .enqueueing import ring

            ring([job])
        logger.warning("Job %s (%s) attempt %d failed; retrying in %.1fs.", job.pk, job.name, job.attempts, delay)
    else:
        fields = {"status": JobStatus.FAILED, "error": error, "finished_at": now, "failed_attempts": history}
        if not _finish(job, expected, **fields, **_progress_of(job)):
            return _cancelled_meanwhile(job)
        logger.error("Job %s (%s) failed after %d attempt(s).", job.pk, job.name, job.attempts)
    notify(job_failed, job, will_retry=will_retry)
    if not will_retry and job_function is not None:
        job_function.finished(job)
    return Outcome.RETRYING if will_retry else Outcome.FAILED


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
    return {"progress": job.progress, "progress_message": job.progress_message}


def _record_interruption(job: Job, job_function: JobFunction[Any, Any]) -> Outcome:
    job.refresh_from_db(fields=["status"])
    if job.status == JobStatus.CANCELLED:
        return Outcome.CANCELLED
    # Interrupted without a cancel: the worker is shutting down. Count it as a failed attempt.
    error = "JobInterrupted: the worker was stopped while the job ran."
    return _record_failure(job, error, error_class=_path_of(JobInterrupted), retry=True, job_function=job_function)


def record_lost_attempt(job: Job, error: str) -> Outcome:
    """Fail the running attempt of ``job``, whose worker is gone; retry it if attempts are left.

    Applied only if the row still shows the heartbeat recovery judged stale, so a
    worker that beat in the meantime keeps its job. ``SKIPPED`` when it did.
    """
    outcome = _record_failure(
        job,
        error,
        error_class=_path_of(WorkerLost),
        retry=True,
        job_function=_lookup(job.name),
        expected={"heartbeat_at": job.heartbeat_at},
    )
    return Outcome.SKIPPED if outcome is Outcome.CANCELLED else outcome


def _lookup(name: str) -> JobFunction[Any, Any] | None:
    try:
        return get_job_function(name)
    except JobNotRegistered:
        return None


def _cancelled_meanwhile(job: Job) -> Outcome:
    logger.info(
        "Job %s was cancelled, or taken as lost by recovery, while attempt %d ran; its outcome is discarded.",
        job.pk,
        job.attempts,
    )
    return Outcome.CANCELLED


#: The error of a running attempt that was cancelled (``TaskError.traceback`` of Django's tasks).
CANCELLED_ERROR = f"{_path_of(JobInterrupted)}: the job was cancelled.\n"


def cancel_job(job: Job) -> bool:
    """Cancel ``job`` (see :meth:`Job.cancel`)."""
    now = timezone.now()
    pending = Job.objects.filter(pk=job.pk, status__in=(JobStatus.QUEUED, JobStatus.SCHEDULED))
    if pending.update(status=JobStatus.CANCELLED, finished_at=now):
        job.status, job.finished_at = JobStatus.CANCELLED, now
        _announce_cancel(job)
        return True
    running = Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING)
    row = running.only("pk", "worker", "attempts", "started_at", "failed_attempts").first()
    cancelled = 0
    if row is not None:
        # The cancelled attempt joins the history, so a retry (the admin's) keeps its worker and start.
        history = [*(row.failed_attempts or []), _failed_attempt(row, now, CANCELLED_ERROR, _path_of(JobInterrupted))]
        cancelled = running.filter(attempts=row.attempts, worker=row.worker).update(
            status=JobStatus.CANCELLED, finished_at=now, failed_attempts=history
        )
    if row is None or not cancelled:
        job.refresh_from_db()
        return False
    worker = row.worker
    job.status, job.finished_at = JobStatus.CANCELLED, now
    job.attempts, job.worker, job.started_at, job.failed_attempts = row.attempts, worker, row.started_at, history
    if worker:
        from redis.exceptions import RedisError

        from .queues import send_stop

        try:
            send_stop(job.queue, worker, str(job.pk))
        except RedisError as exc:
            logger.warning("Job %s cancelled, but its worker could not be told to stop: %s", job.pk, exc)
    _announce_cancel(job)
    return True


def _announce_cancel(job: Job) -> None:
    notify(job_cancelled, job)
    job_function = _lookup(job.name)
    if job_function is not None:
        job_function.finished(job)


def record_progress(job: Job, percent: int, message: str = "") -> None:
    """Persist progress of a running job, at most once per ``PROGRESS_INTERVAL`` seconds.

    The first call and reaching 100 are always written; the latest value is also
    written when the attempt ends.
    """
    if isinstance(percent, bool) or not isinstance(percent, int | float) or not 0 <= percent <= 100:
        raise ValueError(f"progress must be a number from 0 to 100, got {percent!r}")
    job.progress, job.progress_message = int(percent), str(message)[:255]
    now = time.monotonic()
    last = _last_progress_write.get(job.pk)
    if last is not None and now - last < float(app_settings.PROGRESS_INTERVAL) and percent < 100:
        return
    _last_progress_write[job.pk] = now
    Job.objects.filter(**_this_attempt(job)).update(progress=job.progress, progress_message=job.progress_message)
