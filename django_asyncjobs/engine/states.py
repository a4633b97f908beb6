"""The job state machine: every change of a ``Job``'s ``status``, each one conditional statement.

No other module writes ``status`` (``tests/test_states.py`` scans the package for it).
Each function below writes with one statement: the INSERT of new jobs (one per 500
rows, :mod:`.inserts`), else an ``UPDATE ... WHERE status IN (...)`` (for a running attempt, also
``AND worker = ... AND attempts = ...``). A transition from any other status changes
nothing and returns ``False`` (``None``, ``0``): two callers racing on one row cannot
both move it. Reads that decide a transition (which rows are due, which attempt is
running) are the callers'.

==================== =========================== ====================== ===============================================
from                 to                          function               called by; writes besides ``status``
==================== =========================== ====================== ===============================================
(new row)            queued, or scheduled        ``enqueue``            ``enqueueing.enqueue_calls`` (``enqueue``,
                     (``run_at`` given)                                 ``enqueue_many``, ``django_asyncjobs.enqueue``,
                                                                        schedules, the tasks backend); INSERT (bulk in
                                                                        batches of 500), ``enqueued_at`` or ``run_at``
(new row)            scheduled, waiting (no      ``enqueue``            with ``waiting``: a job enqueued ``after``
                     ``run_at``)                                        others, a group's callback (``dependencies``,
                                                                        ``groups``)
(new row)            queued, or scheduled        ``enqueue_once``       the same with an ``idempotency_key``; INSERT in
                                                                        a savepoint, or the row another call inserted
(new row)            queued, or scheduled        ``enqueue_unique``     the same for a unique job (``unique_key``): the
                                                                        waiting row that holds the key instead (its
                                                                        run_at moved when debounced); releases the key
                                                                        of a waiting row older than ``unique_for``
queued               running                     ``claim``              ``execution.run_job`` (the worker); attempts+1,
                                                                        worker, started_at and heartbeat_at (database
                                                                        clock), progress 0, unique_key NULL; RETURNING
                                                                        the row
running              succeeded                   ``succeed``            ``outcomes.record_success``; result, progress
                                                                        100, finished_at
running              failed                      ``fail``               ``outcomes.record_failure`` (no retry left), a
                                                                        refused outcome, a job without code past
                                                                        UNKNOWN_JOB_TIMEOUT; error, failed_attempts,
                                                                        progress, finished_at
running              scheduled, or queued        ``retry``              ``outcomes.record_failure`` (attempts left); as
                     (no delay)                                         ``fail``, and run_at, or enqueued_at (the caller
                                                                        pushes)
running, not         scheduled                   ``defer``              ``outcomes.record_deferral`` (over a limit);
started                                                                 run_at, attempts - 1, progress_message;
                                                                        worker, started_at, heartbeat_at cleared;
                                                                        a unique job's unique_key (unless held)
running              scheduled                   ``put_back``           ``outcomes.record_unknown`` (the worker lacks
                                                                        the code); attempts - 1, run_at, error,
                                                                        failed_attempts (the put-back count)
running with a       queued, scheduled, failed   ``retry``, ``fail``    ``scheduling.recovery`` through
stale heartbeat                                  with ``heartbeat_at``  ``outcomes.record_lost_attempt``; as above, if
                                                                        the heartbeat is still the stale one
queued, scheduled    cancelled                   ``cancel_waiting``     ``execution.cancel_job`` (``Job.cancel``,
                                                                        ``operations.cancel_jobs``, the admin);
                                                                        finished_at, unique_key NULL
running              cancelled                   ``cancel_running``     ``execution.cancel_job``, which then asks the
                                                                        worker to stop (``broker.send_stop``);
                                                                        finished_at, failed_attempts
scheduled, waiting   queued                      ``release``            ``dependencies.settle``, ``groups.finish``: what
                                                                        it waited for finished; enqueued_at, args (a
                                                                        chain passes the result) (the caller pushes)
scheduled, waiting   cancelled                   ``cancel_waiting``     the same, when a job it waited for failed; error
scheduled, due       queued                      ``promote``            ``firing.promote_due_jobs`` (scheduler,
                                                                        workers); enqueued_at (the caller pushes)
failed, cancelled    queued                      ``retry_finished``     ``operations.retry_jobs`` (the admin's retry);
                                                                        max_attempts + attempts, enqueued_at; result,
                                                                        progress, run_at, finished_at cleared
==================== =========================== ====================== ===============================================

Not transitions: pushing a queued job's message again (``recovery``,
``operations.push_again``) writes no row; heartbeats and progress write only
their columns, conditional on the attempt (:func:`this_attempt`); pruning and
``operations.delete_finished_jobs`` delete finished rows.

Every write that ends an attempt is conditional on the row still holding that
attempt, and goes through :func:`.reconnecting.persist`: a broken connection is
replaced and the write tried again (a try whose fate is unknown is confirmed by
its ``finished_at``). The instance passed in is updated only when its row was.

The claim uses ``UPDATE ... RETURNING`` where the database has it (PostgreSQL,
SQLite >= 3.35), so it is one statement, not an UPDATE and a SELECT; the SQL is
built once per connection.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import DataError, IntegrityError, connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F
from django.db.models.functions import Now

from ..exceptions import OutcomeRefused
from ..models import Job, JobStatus
from ..payloads import storable_text
from ..times.clock import now_value
from . import statements
from .inserts import insert_jobs
from .reconnecting import persist
from .unique import update_holding_key

if TYPE_CHECKING:
    from .functions import JobOptions

#: Statuses a job is retried from by :func:`retry_finished`, and cancelled from before it runs.
RETRYABLE_STATUSES = (JobStatus.FAILED, JobStatus.CANCELLED)
WAITING_STATUSES = (JobStatus.QUEUED, JobStatus.SCHEDULED)

#: Public functions that are not transitions: parts of them that ``batched`` shares.
HELPERS = ("this_attempt", "succeed_row")

#: ``heartbeat_at`` not compared: the attempt ends whatever its heartbeat.
ANY_HEARTBEAT: Any = object()


# (new row) -> queued | scheduled


def enqueue(jobs: Sequence[Job], *, now: datetime, run_at: datetime | None, waiting: str = "") -> None:
    """INSERT the unsaved ``jobs`` (:mod:`.inserts`): ``scheduled`` until ``run_at`` if given, else
    ``queued``; with ``waiting`` (what for, its progress message), ``scheduled`` without a ``run_at``
    until :func:`release` (they wait for other jobs)."""
    for job in jobs:
        _first_status(job, now, run_at)
        if waiting:
            job.status, job.enqueued_at, job.progress_message = JobStatus.SCHEDULED, None, waiting[:255]
    insert_jobs(jobs)


def enqueue_once(job: Job, *, now: datetime, run_at: datetime | None) -> Job | None:
    """:func:`enqueue` of one job with an ``idempotency_key``; if a concurrent call inserted
    the same name and key first, nothing is inserted and that job is returned."""
    _first_status(job, now, run_at)
    try:
        with transaction.atomic(using=router.db_for_write(Job)):
            insert_jobs([job])
    except IntegrityError:
        existing = Job.objects.filter(name=job.name, idempotency_key=job.idempotency_key).first()
        if existing is None:
            raise
        return existing
    return None


def enqueue_unique(job: Job, *, now: datetime, run_at: datetime | None, options: JobOptions) -> Job | None:
    """:func:`enqueue` of a unique job (``job.unique_key``), or the job waiting with that key (its
    ``run_at`` moved if debounced and ``scheduled``); one enqueued ``unique_for`` ago no longer holds it."""
    _first_status(job, now, run_at)
    alias = router.db_for_write(Job)
    holders = Job.objects.using(alias).filter(unique_key=job.unique_key, status__in=WAITING_STATUSES)
    if options.unique_for is not None:
        holders.filter(created_at__lte=now - options.unique_for).update(unique_key=None)
    for _ in range(2):  # a holder that started between the lookup and the INSERT: look again
        existing = holders.first()
        if existing is not None:
            debounced = options.debounce is not None and run_at is not None
            if debounced and holders.filter(pk=existing.pk, status=JobStatus.SCHEDULED).update(run_at=run_at):
                existing.run_at = run_at
            return existing
        try:
            with transaction.atomic(using=alias):
                insert_jobs([job])
        except IntegrityError:
            continue  # a concurrent enqueue of the same key inserted first
        return None
    raise IntegrityError(f"unique job {job.name}: its key is held, and no waiting job holds it")


def _first_status(job: Job, now: datetime, run_at: datetime | None) -> None:
    job.created_at = now
    job.status = JobStatus.SCHEDULED if run_at is not None else JobStatus.QUEUED
    job.run_at, job.enqueued_at = (run_at, None) if run_at is not None else (None, now)


# queued -> running


def claim(pk: uuid.UUID, worker_name: str) -> Job | None:
    """``queued`` → ``running``: the claimed row, or ``None`` when it was not ``queued``."""
    alias = router.db_for_write(Job)
    connection = connections[alias]
    now = now_value(alias)
    if statements.supports_returning(connection):
        claimed = statements.claim_rows(connection, alias, [pk], worker_name, now)
        return claimed[0] if claimed else None
    updated = statements.claim_without_returning(alias, [pk], worker_name, now)
    return Job.objects.using(alias).get(pk=pk) if updated else None


# running -> succeeded | failed | scheduled | queued


def this_attempt(job: Job) -> dict[str, Any]:
    """The row as this attempt claimed it. A worker that recovery took for dead and that
    comes back must not write over a later attempt (another worker's claim)."""
    return {"pk": job.pk, "status": JobStatus.RUNNING, "worker": job.worker, "attempts": job.attempts}


def succeed(job: Job, *, result: Any, now: datetime) -> bool:
    """``running`` (this attempt) → ``succeeded`` with ``result``. The worker's hot path: its
    UPDATE is built once per connection, like the claim's, not by the ORM for every job."""

    def update(connection: BaseDatabaseWrapper) -> int:
        if job.group_id is None:
            with connection.cursor() as cursor:
                return succeed_row(connection, cursor, job, result, now)
        with transaction.atomic(using=connection.alias):  # its group counted down in the same commit
            with connection.cursor() as cursor:
                written = succeed_row(connection, cursor, job, result, now)
            if written:
                statements.count_down_groups(connection, [job])
            return written

    return _end_attempt(
        job, JobStatus.SUCCEEDED, ANY_HEARTBEAT, update=update, result=result, progress=100, finished_at=now
    )


def succeed_row(connection: BaseDatabaseWrapper, cursor: Any, job: Job, result: Any, now: datetime) -> int:
    """Run the UPDATE of :func:`succeed` on ``cursor``: 1 if written, else 0. ``job.has_dependants``
    is read back from the row, since a job enqueued ``after`` it while it ran sets it."""
    cursor.execute(statements.succeed(connection), statements.succeed_params(connection, job, result, now))
    if not statements.supports_returning(connection):
        return int(cursor.rowcount)
    row = cursor.fetchone()
    if row is not None:
        job.has_dependants = bool(row[0])
    return 0 if row is None else 1


def fail(job: Job, *, now: datetime, error: str, heartbeat_at: Any = ANY_HEARTBEAT, **values: Any) -> bool:
    """``running`` (this attempt) → ``failed``. ``values`` are other columns to write
    (``failed_attempts``, progress, ``result``); with ``heartbeat_at``, only if the row still
    has that heartbeat (recovery's lost attempt)."""
    return _end_attempt(job, JobStatus.FAILED, heartbeat_at, error=error, finished_at=now, **values)


def retry(
    job: Job,
    *,
    now: datetime,
    run_at: datetime | None,
    error: str,
    heartbeat_at: Any = ANY_HEARTBEAT,
    **values: Any,
) -> bool:
    """``running`` (this attempt) → ``scheduled`` until ``run_at``, or ``queued`` at once
    (``run_at=None``; the caller pushes the message). Otherwise as :func:`fail`."""
    fields: dict[str, Any] = {"error": error, "finished_at": now, **values}
    if run_at is not None:
        return _end_attempt(job, JobStatus.SCHEDULED, heartbeat_at, run_at=run_at, **fields)
    return _end_attempt(job, JobStatus.QUEUED, heartbeat_at, enqueued_at=now, run_at=None, **fields)


def put_back(
    job: Job,
    *,
    now: datetime,
    run_at: datetime,
    error: str,
    failed_attempts: list[Any],
    heartbeat_at: Any = ANY_HEARTBEAT,
    unique_key: str | None = None,
) -> bool:
    """``running`` (this attempt) → ``scheduled`` until ``run_at``, the attempt not used up:
    this worker lacks the job's code, another may have it; or recovery took the row for one
    that never started (``heartbeat_at=None``: only while it still has not beaten). A unique
    job holds ``unique_key`` again, as in :func:`defer`."""
    return _end_attempt(
        job,
        JobStatus.SCHEDULED,
        heartbeat_at,
        holding_key=unique_key,
        run_at=run_at,
        attempts=job.attempts - 1,
        error=error,
        finished_at=now,
        failed_attempts=failed_attempts,
    )


def defer(job: Job, *, run_at: datetime, reason: str, unique_key: str | None = None) -> bool:
    """``running`` (this attempt, not started: over a limit) → ``scheduled`` at ``run_at``, the
    attempt given back, ``reason`` its progress message (its claim clears it). A unique job
    holds its ``unique_key`` again, unless a job enqueued since its claim holds it."""
    alias = router.db_for_write(Job)
    fields: dict[str, Any] = {"status": JobStatus.SCHEDULED, "run_at": run_at, "attempts": job.attempts - 1}
    fields.update(worker="", started_at=None, heartbeat_at=None, progress_message=reason[:255])
    attempt = Job.objects.using(alias).filter(**this_attempt(job))
    write = lambda: bool(update_holding_key(attempt, fields, unique_key, alias))  # noqa: E731
    if not persist(write, what=f"the deferral of job {job.pk}", alias=alias):
        return False
    for name, value in fields.items():
        setattr(job, name, value)
    return True


def _end_attempt(
    job: Job,
    status: JobStatus,
    heartbeat_at: Any,
    update: Callable[[BaseDatabaseWrapper], int] | None = None,
    holding_key: str | None = None,
    **fields: Any,
) -> bool:
    """The one UPDATE that ends ``job``'s attempt, unless the row left it (cancelled, or taken
    as lost and claimed again) or no longer has ``heartbeat_at``. Tried again on a new
    connection when the connection breaks. Raises :class:`OutcomeRefused` when the
    database refuses the values. ``update``, when given, is that UPDATE as prepared SQL
    (the same statement as the ORM's below, without building it per job). ``holding_key``: the
    unique key the row holds again, unless another waiting job holds it."""
    alias = router.db_for_write(Job)
    fields["status"] = status
    tries = 0

    def orm_update(connection: BaseDatabaseWrapper) -> int:
        condition = this_attempt(job)
        if heartbeat_at is not ANY_HEARTBEAT:
            condition["heartbeat_at"] = heartbeat_at
        return update_holding_key(Job.objects.using(alias).filter(**condition), fields, holding_key, alias)

    def write() -> bool:
        nonlocal tries
        tries += 1
        if (update or orm_update)(connections[alias]):
            return True
        # A try whose connection broke may have committed: then the row holds its finished_at.
        return (
            tries > 1 and Job.objects.filter(pk=job.pk, worker=job.worker, finished_at=fields["finished_at"]).exists()
        )

    try:
        written = persist(write, what=f"the outcome of job {job.pk}", alias=alias)
    except (DataError, IntegrityError) as exc:
        raise OutcomeRefused(_reason(exc)) from exc
    if written:
        for name, value in fields.items():
            setattr(job, name, value)
    return written


def _reason(exc: BaseException) -> str:
    text = storable_text(str(exc)).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:500]


# queued | scheduled | running -> cancelled


def cancel_waiting(job: Job, *, now: datetime, error: str = "") -> bool:
    """``queued`` or ``scheduled`` → ``cancelled``: it never starts (and holds no unique key).
    ``error`` says why, when not by request (a job it waited for failed)."""
    fields: dict[str, Any] = {"status": JobStatus.CANCELLED, "finished_at": now, "unique_key": None}
    if error:
        fields.update(error=error, progress_message="")
    if not Job.objects.filter(pk=job.pk, status__in=WAITING_STATUSES).update(**fields):
        return False
    job.status, job.finished_at, job.error = JobStatus.CANCELLED, now, error or job.error
    return True


def cancel_running(job: Job, attempt: Job, *, now: datetime, failed_attempts: list[Any]) -> bool:
    """``running`` → ``cancelled``, if the row still holds ``attempt`` (as read by the caller):
    the attempt joins ``failed_attempts``. Its worker is to be asked to stop by the caller."""
    if not Job.objects.filter(
        pk=job.pk, status=JobStatus.RUNNING, attempts=attempt.attempts, worker=attempt.worker
    ).update(status=JobStatus.CANCELLED, finished_at=now, failed_attempts=failed_attempts):
        return False
    job.status, job.finished_at, job.failed_attempts = JobStatus.CANCELLED, now, failed_attempts
    job.attempts, job.worker, job.started_at = attempt.attempts, attempt.worker, attempt.started_at
    return True


# scheduled -> queued, failed | cancelled -> queued


def promote(pks: Sequence[Any], *, now: datetime | Now, using: str) -> int:
    """``scheduled`` → ``queued`` (jobs whose ``run_at`` came); how many moved. The caller
    pushes their messages."""
    return (
        Job.objects.using(using)
        .filter(pk__in=pks, status=JobStatus.SCHEDULED)
        .update(status=JobStatus.QUEUED, enqueued_at=now)
    )


def release(job: Job, *, now: datetime, args: list[Any] | None = None) -> bool:
    """``scheduled`` waiting for other jobs (no ``run_at``) → ``queued``: they finished. ``args``
    replace its arguments (a chain's step gets the previous result). The caller pushes."""
    fields: dict[str, Any] = {"status": JobStatus.QUEUED, "enqueued_at": now, "progress_message": ""}
    if args is not None:
        fields["args"] = args
    waiting = Job.objects.filter(pk=job.pk, status=JobStatus.SCHEDULED, run_at__isnull=True)
    if not waiting.update(**fields):
        return False
    for name, value in fields.items():
        setattr(job, name, value)
    return True


def retry_finished(pks: Sequence[Any], *, now: datetime, using: str) -> int:
    """``failed`` or ``cancelled`` → ``queued`` with as many further attempts as it had at
    first; how many moved. The rows moved carry ``enqueued_at=now``. The caller pushes."""
    return (
        Job.objects.using(using)
        .filter(pk__in=pks, status__in=RETRYABLE_STATUSES)
        .update(
            status=JobStatus.QUEUED,
            max_attempts=F("attempts") + F("max_attempts"),
            result=None,
            progress=0,
            progress_message="",
            run_at=None,
            finished_at=None,
            enqueued_at=now,
        )
    )
