"""What a worker does with a job id: claim the row, run the function, record the outcome.

Recording the outcome lives in :mod:`.outcomes`; writes that must survive a broken
connection go through :mod:`.reconnecting`.
"""

from __future__ import annotations

import contextvars
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from functools import partial
from typing import Any

from django.db import connections, router, transaction
from django.utils import timezone

from .. import tracing
from ..conf import app_settings
from ..exceptions import DatabaseAway, JobInterrupted, JobNotRegistered
from ..logs import attempt_fields, duration_ms, job_fields, jobs_logger, log_event, worker_logger
from ..models import Job, JobStatus
from ..payloads import storable_text
from ..signals import job_cancelled, job_finished, job_started, notify
from . import states
from .atomic import holds_transaction, run_atomic
from .broker import RedisError, current_rq_worker_name, send_stop, withdraw
from .capacity import forget_state
from .connections import refresh_connections, release_transactions
from .finishing import jobs_finished
from .heartbeat import beating, confirm_claim
from .limits import concurrency_key, free_slot, start_wait, take_slot
from .outcomes import (
    Outcome,
    _failed_attempt,
    describe,
    lookup,
    path_of,
    record_deferral,
    record_failure,
    record_interruption,
    record_lost_attempt,
    record_success,
    record_unknown,
)
from .reconnecting import giving_up_when, persist
from .registry import get_job_function
from .unique import key_to_restore

__all__ = [
    "Outcome",
    "cancel_job",
    "current_job",
    "not_claimed",
    "perform",
    "record_lost_attempt",
    "record_progress",
    "run_claimed",
    "run_job",
    "withdraw_on_commit",
]

_current: contextvars.ContextVar[Job | None] = contextvars.ContextVar("asyncjobs_current_job", default=None)
_last_progress_write: dict[Any, float] = {}

#: The context a job function runs in, given its time limit and job id: the worker's time
#: limit, and the only window in which the worker may interrupt the job (a cancel, a cold stop).
JobGuard = Callable[[int, str], AbstractContextManager[Any]]

#: Records a job's success: ``(job, return value, job function) -> Outcome``.
SuccessRecorder = Callable[[Job, Any, Any], Outcome]

#: Of a message that is not a job id, this much is logged.
LOGGED_MESSAGE_CHARS = 64


def current_job() -> Job | None:
    """The ``Job`` being run by the current worker, or ``None`` outside a job."""
    return _current.get()


def perform(job_id: str) -> str:
    """The function every RQ message calls. Lets stock RQ workers run our messages."""
    worker_name = current_rq_worker_name() or default_worker_name()
    with beating(worker_name, job_id):
        return run_job(job_id, worker_name=worker_name).value


def default_worker_name() -> str:
    return f"{socket.gethostname()}.{os.getpid()}"


def run_job(
    job_id: str,
    *,
    worker_name: str = "",
    guard: JobGuard | None = None,
    stop_requested: Callable[[], bool] | None = None,
    succeed: SuccessRecorder | None = None,
    claimed: Job | None = None,
    claimed_at: float | None = None,
) -> Outcome:
    """Claim job ``job_id`` and run it once. Safe to call any number of times per message.
    ``succeed`` records a success (:func:`run_claimed`). ``claimed``: the row, claimed already
    by the caller for this worker (a threaded worker claims ahead, see ``worker/ahead.py``);
    ``claimed_at``: ``time.monotonic()`` just before that claim was sent, so that a row that
    waited long is confirmed before it runs (``heartbeat.confirm_claim``).

    Before and after the job the database connections are checked and kept (see
    :mod:`.connections`; not when called inside a transaction, as tests may do), and a
    transaction the job left open is rolled back before its outcome is written. While the
    database does not answer, the claim and the outcome are tried again until it does,
    or until ``stop_requested()``.
    """
    pk = parse_job_id(job_id)
    if pk is None:
        return Outcome.REFUSED
    manage_connections = not connections[router.db_for_write(Job)].in_atomic_block
    if manage_connections:
        refresh_connections()
    try:
        with giving_up_when(stop_requested):
            if claimed is not None:
                if claimed_at is not None and not confirm_claim(claimed, claimed_at):
                    return not_claimed(pk)
                return run_claimed(claimed, guard=guard, release=manage_connections, succeed=succeed or record_success)
            return _claim_and_run(pk, worker_name or default_worker_name(), guard, manage_connections, succeed)
    except DatabaseAway as exc:
        log_event(worker_logger, logging.ERROR, "job.database_away", job=pk, reason=str(exc), repaired_by="recovery")
        return Outcome.ERROR
    finally:
        if manage_connections:
            refresh_connections()


def parse_job_id(message: str) -> uuid.UUID | None:
    """The job id a message carries; ``None`` (and one short log line) if it carries none."""
    if len(message) <= LOGGED_MESSAGE_CHARS:
        try:
            return uuid.UUID(message)
        except ValueError:
            pass
    # Is a plain RQ job on an asyncjobs queue?
    shown = message[:LOGGED_MESSAGE_CHARS]
    chars = len(message) if len(message) > LOGGED_MESSAGE_CHARS else None
    log_event(worker_logger, logging.ERROR, "message.dropped", content=shown, chars=chars, reason="not a job id")
    return None


def _claim_and_run(
    pk: uuid.UUID, worker_name: str, guard: JobGuard | None, release: bool, succeed: SuccessRecorder | None
) -> Outcome:
    alias = router.db_for_write(Job)
    sent = time.monotonic()
    job = _claim(pk, worker_name, alias)
    # A claim whose answer came late (the database away meanwhile) may have been taken back.
    if job is None or not confirm_claim(job, sent):
        return not_claimed(pk)
    return run_claimed(job, guard=guard, release=release, succeed=succeed or record_success)


def not_claimed(pk: uuid.UUID) -> Outcome:
    """The outcome of a message whose row could not be claimed."""
    if persist(Job.objects.filter(pk=pk).exists, what=f"the check of job {pk}", alias=router.db_for_write(Job)):
        # Taken by another delivery, cancelled, or finished.
        log_event(jobs_logger, logging.INFO, "job.not_claimed", job=pk)
        return Outcome.SKIPPED
    # Plain RQ jobs must use queues that asyncjobs workers do not serve.
    log_event(worker_logger, logging.ERROR, "message.dropped", content=pk, reason="no such job")
    return Outcome.REFUSED


def run_claimed(
    job: Job,
    *,
    guard: JobGuard | None = None,
    release: bool = True,
    succeed: SuccessRecorder = record_success,
) -> Outcome:
    """Run the claimed ``job`` once and record its outcome; a success through ``succeed``
    (a batching worker defers it to a group commit). ``release``: roll back what the job
    left uncommitted before its outcome is written. With tracing on, all of it happens in
    the attempt's span."""
    if not tracing.active():
        return _run_claimed(job, guard, release, succeed)[0]
    with tracing.attempt(job) as span:
        outcome, raised = _run_claimed(job, guard, release, succeed)
        span.ended(job, outcome.name.lower(), raised)
    return outcome


def _run_claimed(
    job: Job, guard: JobGuard | None, release: bool, succeed: SuccessRecorder
) -> tuple[Outcome, BaseException | None]:
    """:func:`run_claimed`: the outcome, and what the job raised."""
    try:
        job_function = get_job_function(job.name)
    except JobNotRegistered as exc:
        return record_unknown(job, exc), None
    options = job_function.options_for(job)  # a task's: those of the backend that enqueued it
    try:
        slots = concurrency_key(job, options.max_concurrency, options.concurrency_key)
    except Exception as exc:  # noqa: BLE001 - the user's concurrency_key raised: the attempt's failure
        error_class = path_of(type(exc))
        return record_failure(job, describe(exc), error_class=error_class, retry=True, job_function=job_function), exc
    wait = take_slot(job, slots, options.max_concurrency, options.resolved_timeout() + app_settings.HEARTBEAT_TIMEOUT)
    reason = f"waiting: {options.max_concurrency} running at most"
    if not wait:
        wait = start_wait(job.name, options.rate_limit, job.queue)
        reason = "waiting: rate limit"
        if wait:
            free_slot(job, slots)
    if wait:
        return record_deferral(job, wait, reason, unique_key=key_to_restore(job)), None
    try:
        return _run_started(job, job_function, guard, release, succeed)
    finally:
        free_slot(job, slots)


def _run_started(
    job: Job, job_function: Any, guard: JobGuard | None, release: bool, succeed: SuccessRecorder
) -> tuple[Outcome, BaseException | None]:
    """:func:`run_claimed` once the job may start (within its limits)."""
    token = _current.set(job)
    if jobs_logger.isEnabledFor(logging.DEBUG):
        log_event(jobs_logger, logging.DEBUG, "job.started", **attempt_fields(job, ended=False))
    raised: BaseException | None = None
    options = job_function.options_for(job)
    within = guard or (lambda seconds, _id: nullcontext())

    def invoke() -> Any:
        with within(options.resolved_timeout(), str(job.pk)):
            return job_function.invoke(job)

    try:
        job_started.send(sender=Job, job=job, job_function=job_function)
        # An atomic job's success is written in its own transaction, never handed to ``succeed``.
        atomic = run_atomic(job, job_function, invoke) if options.atomic else None
        result = invoke() if atomic is None else None
    except BaseException as exc:  # noqa: BLE001 - whatever the job raises, SystemExit and KeyboardInterrupt included, is its failure
        raised = exc
    finally:
        _current.reset(token)
        _last_progress_write.pop(job.pk, None)
    if release:  # what the job left uncommitted is not committed with its outcome
        release_transactions()
    if isinstance(raised, JobInterrupted):
        return record_interruption(job, job_function), raised
    if raised is not None:
        error_class = path_of(type(raised))
        failed = record_failure(job, describe(raised), error_class=error_class, retry=True, job_function=job_function)
        return failed, raised
    if atomic is not None:
        return atomic, None
    return succeed(job, result, job_function), None


def _claim(pk: uuid.UUID, worker_name: str, alias: str) -> Job | None:
    """:func:`claim`, again on a new connection if the connection breaks; a claim whose
    fate is unknown is confirmed by reading the row before the job runs."""
    tries = 0

    def attempt() -> Job | None:
        nonlocal tries
        tries += 1
        if tries > 1:
            # The try that failed may have committed: then the row runs under this worker's name.
            mine = Job.objects.filter(pk=pk, status=JobStatus.RUNNING, worker=worker_name).first()
            if mine is not None:
                return mine
        return states.claim(pk, worker_name)

    return persist(attempt, what=f"the claim of job {pk}", alias=alias)


#: The error of a running attempt that was cancelled (``TaskError.traceback`` of Django's tasks).
CANCELLED_ERROR = f"{path_of(JobInterrupted)}: the job was cancelled.\n"


def cancel_job(job: Job, *, withdrawn: list[Job] | None = None) -> bool:
    """Cancel ``job`` (see :meth:`Job.cancel`). A job cancelled while it waited has its message
    removed from Redis once the cancel commits, so the queue's depth drops at once; a caller
    cancelling many passes ``withdrawn`` to collect them, for one :func:`withdraw_on_commit`."""
    now = timezone.now()
    if states.cancel_waiting(job, now=now):
        if withdrawn is None:
            withdraw_on_commit([job])
        else:
            withdrawn.append(job)
        _announce_cancel(job, running=False)
        return True
    running = Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING)
    row = running.only("pk", "worker", "attempts", "started_at", "failed_attempts").first()
    if row is None or not _cancel_running(job, row, now):
        job.refresh_from_db()
        return False
    worker = row.worker
    if worker:
        try:
            send_stop(job.queue, worker, str(job.pk))
        except RedisError as exc:
            fields = {**job_fields(job), "worker": worker, "reason": str(exc)}
            log_event(jobs_logger, logging.WARNING, "job.stop_not_sent", **fields)
    _announce_cancel(job, running=True)
    return True


def withdraw_on_commit(jobs: list[Job]) -> None:
    """Once the transaction commits, remove the messages of ``jobs`` (cancelled while they
    waited) from Redis and forget this process's cached state of their queues."""
    if jobs:
        transaction.on_commit(partial(_withdraw, jobs), using=router.db_for_write(Job))


def _withdraw(jobs: list[Job]) -> None:
    try:
        withdraw(jobs)
    except RedisError as exc:  # a worker drops the messages left: their rows are cancelled
        log_event(jobs_logger, logging.WARNING, "job.message_not_withdrawn", jobs=len(jobs), reason=str(exc))
    for queue in {job.queue for job in jobs}:
        forget_state(queue)


def _cancel_running(job: Job, attempt: Job, now: datetime) -> bool:
    # The cancelled attempt joins the history, so a retry (the admin's) keeps its worker and start.
    entry = _failed_attempt(attempt, now, CANCELLED_ERROR, path_of(JobInterrupted))
    return states.cancel_running(job, attempt, now=now, failed_attempts=[*(attempt.failed_attempts or []), entry])


def _announce_cancel(job: Job, *, running: bool) -> None:
    fields: dict[str, Any] = {**job_fields(job), "was": "running" if running else "waiting"}
    if running:
        fields.update(worker=job.worker or None, duration_ms=duration_ms(job.started_at, job.finished_at))
    log_event(jobs_logger, logging.INFO, "job.cancelled", **fields)
    notify(job_cancelled, job)
    jobs_finished([job], read_marks=True)
    notify(job_finished, job, job_function=lookup(job.name))


def record_progress(job: Job, percent: int, message: str = "") -> None:
    """Persist progress of a running job, at most once per ``PROGRESS_INTERVAL`` seconds.

    The first call and reaching 100 are always written; the latest value is also
    written when the attempt ends. An atomic job's progress is written only then.
    """
    if isinstance(percent, bool) or not isinstance(percent, int | float) or not 0 <= percent <= 100:
        raise ValueError(f"progress must be a number from 0 to 100, got {percent!r}")
    job.progress, job.progress_message = int(percent), storable_text(str(message))[:255]
    if holds_transaction(job):
        return  # kept for the outcome's write (see .atomic)
    now = time.monotonic()
    last = _last_progress_write.get(job.pk)
    if last is not None and now - last < app_settings.PROGRESS_INTERVAL and percent < 100:
        return
    _last_progress_write[job.pk] = now
    Job.objects.filter(**states.this_attempt(job)).update(progress=job.progress, progress_message=job.progress_message)
