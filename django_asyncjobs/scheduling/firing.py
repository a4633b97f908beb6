"""Time-based work: firing due schedules, and moving delayed jobs and retries onto their queues."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import DatabaseError, router, transaction
from django.utils import timezone

from ..conf import app_settings
from ..engine.broker import RedisError, count_missed_runs, ring
from ..engine.broker import missed_runs as missed_runs
from ..engine.enqueueing import enqueue_calls
from ..engine.registry import job_function_by_name
from ..engine.states import promote
from ..engine.tallies import count_schedule_run
from ..exceptions import AsyncJobsError, QueueFull
from ..logs import log_event, scheduler_logger
from ..models import Job, JobStatus, MisfirePolicy, Schedule
from ..times.clock import database_now, now_value
from ..times.recurrence import runs_before


def promote_due_jobs(batch_size: int = 500) -> int:
    """Queue scheduled jobs whose ``run_at`` has passed and ring their doorbells.

    Safe to run from many processes at once: a row moves ``scheduled`` to
    ``queued`` only once, and a doubled push is harmless because a worker claims
    a row only from ``queued``. "Passed" is by the database's clock. Returns the
    number of jobs queued.
    """
    total = 0
    alias = router.db_for_write(Job)
    while True:
        now = now_value(alias)
        with transaction.atomic(using=alias):
            due = Job.objects.using(alias).filter(status=JobStatus.SCHEDULED, run_at__lte=now).order_by("run_at")
            if transaction.get_connection(alias).features.has_select_for_update_skip_locked:
                due = due.select_for_update(skip_locked=True)
            ids = list(due.values_list("pk", flat=True)[:batch_size])
            if not ids:
                return total
            promote(ids, now=now, using=alias)
        jobs = list(Job.objects.filter(pk__in=ids, status=JobStatus.QUEUED).only("pk", "name", "queue", "priority"))
        ring(jobs)
        total += len(jobs)
        log_event(scheduler_logger, logging.DEBUG, "jobs.promoted", count=len(jobs))
        if len(ids) < batch_size:
            return total


@dataclass
class FiringReport:
    """What one pass over the due schedules did."""

    fired: list[str] = field(default_factory=list)  # a schedule's name for each run that fired
    skipped: list[str] = field(default_factory=list)  # schedules whose missed runs the "skip" policy dropped
    deferred: list[str] = field(default_factory=list)  # queue full or database away: tried again next pass
    failed: list[str] = field(default_factory=list)  # the run could not be created (see the log): skipped
    #: Runs found more than MISFIRE_GRACE late, per schedule (skipped, or caught up with one run).
    missed: dict[str, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.fired or self.skipped or self.deferred or self.failed or self.missed)


#: Runs of one schedule fired in one pass at most; the rest come at the next pass.
MAX_RUNS_PER_PASS = 100

#: Cron runs counted at most when a schedule missed many (the log says "at least").
MAX_COUNTED_MISSES = 10_000


def fire_due_schedules(now: datetime | None = None, *, batch_size: int = 100) -> FiringReport:
    """Create the jobs of every enabled schedule whose ``next_run_at`` has come.

    ``now`` is the database's clock (read once per pass). Runs less than ``MISFIRE_GRACE``
    late fire, each once, oldest first; older ones follow the schedule's misfire policy
    and are logged and counted (``missed_runs``). Each run is claimed with a
    compare-and-set on ``next_run_at`` in the same transaction that creates its job, so
    however many schedulers run this at once, a run fires exactly once, and a crash
    between the two leaves neither.
    """
    now = now or database_now(router.db_for_write(Schedule))
    report = FiringReport()
    due = list(Schedule.objects.filter(enabled=True, next_run_at__lte=now).order_by("next_run_at")[:batch_size])
    for schedule in due:
        try:
            _fire_due_runs(schedule, now, report)
        except DatabaseError as exc:
            log_event(scheduler_logger, logging.WARNING, "schedule.deferred", schedule=schedule.name, reason=str(exc))
            report.deferred.append(schedule.name)
        except Exception:  # noqa: BLE001 - logged with its traceback
            # E.g. a job no longer registered, a queue gone from RQ_QUEUES, kwargs that are not a
            # dict: skip this run (one error per run, not per pass) and go on with the others.
            fields = {"schedule": schedule.name, "reason": "could not create its job"}
            log_event(scheduler_logger, logging.ERROR, "schedule.run_skipped", **fields, exc_info=True)
            _skip_run(schedule, now)
            report.failed.append(schedule.name)
    return report


def _fire_due_runs(schedule: Schedule, now: datetime, report: FiringReport) -> None:
    due_at = schedule.next_run_at
    assert due_at is not None
    grace = timedelta(seconds=app_settings.MISFIRE_GRACE)
    try:
        # A run is missed when it is more than MISFIRE_GRACE late: due before now - grace.
        missed, resume = runs_before(
            cron=schedule.cron,
            interval=schedule.interval,
            timezone_name=schedule.time_zone,
            first=due_at,
            before=now - grace,
            limit=MAX_COUNTED_MISSES,
        )
        schedule.compute_next_run(due_at, anchor=due_at)  # the timing is valid
    except ValueError as exc:  # a row written around save(), e.g. with .update()
        log_event(scheduler_logger, logging.ERROR, "schedule.disabled", schedule=schedule.name, reason=str(exc))
        Schedule.objects.filter(pk=schedule.pk).update(enabled=False)
        report.failed.append(schedule.name)
        return
    if missed:
        if not _handle_missed(schedule, due_at, missed, resume, now, report):
            return
        due_at = resume
    # The runs within MISFIRE_GRACE: each fires, one after the other, on the schedule's grid.
    for _ in range(MAX_RUNS_PER_PASS):
        if due_at > now:
            return
        following = schedule.compute_next_run(due_at, anchor=due_at)
        if not _fire_run(schedule, due_at, following, now, report):
            return
        due_at = following


def _handle_missed(
    schedule: Schedule, due_at: datetime, missed: int, resume: datetime, now: datetime, report: FiringReport
) -> bool:
    """Apply the misfire policy to the ``missed`` runs from ``due_at``; ``False`` when they
    are left for later (another scheduler took them, or the queue is full)."""
    count = f"{missed}{'+' if missed >= MAX_COUNTED_MISSES else ''}"
    if schedule.misfire_policy == MisfirePolicy.CATCH_UP:
        if not _fire_run(schedule, due_at, resume, now, report):
            return False
        outcome = "caught_up"
    else:
        if not _advance(schedule, due_at, resume, fired_at=None):
            return False
        schedule.next_run_at = resume
        report.skipped.append(schedule.name)
        outcome = "skipped"
    report.missed[schedule.name] = missed
    _count_missed(schedule.name, missed)
    # Missed: due more than MISFIRE_GRACE ago. Caught up with one run, or skipped, by the misfire policy.
    fields = {"schedule": schedule.name, "missed": count, "first_due": due_at, "outcome": outcome}
    fields.update(grace_s=float(app_settings.MISFIRE_GRACE), next_run=resume)
    log_event(scheduler_logger, logging.WARNING, "schedule.missed", **fields)
    return True


def _fire_run(schedule: Schedule, due_at: datetime, following: datetime, now: datetime, report: FiringReport) -> bool:
    """Fire the run due at ``due_at`` and move ``next_run_at`` to ``following``; ``False``
    when another scheduler fired it, or the queue is full."""
    try:
        with transaction.atomic(using=router.db_for_write(Schedule)):
            if not _advance(schedule, due_at, following, fired_at=now):
                return False  # another scheduler fired this run
            job = _create_job(schedule, due_at)
            Schedule.objects.filter(pk=schedule.pk).update(last_job=job)
    except QueueFull as exc:
        fields = {"schedule": schedule.name, "queue": exc.queue, "reason": exc.reason, "retry": "next pass"}
        log_event(scheduler_logger, logging.WARNING, "schedule.queue_full", **fields)
        report.deferred.append(schedule.name)
        return False
    schedule.next_run_at = following  # committed: what _skip_run compares with if a later run fails
    fired = {"schedule": schedule.name, "job": job.pk, "name": job.name, "queue": job.queue, "due": due_at}
    log_event(scheduler_logger, logging.INFO, "schedule.fired", **fired)
    report.fired.append(schedule.name)
    count_schedule_run(job.queue, schedule.name)
    return True


def _count_missed(name: str, count: int) -> None:
    try:
        count_missed_runs(name, count)
    except (AsyncJobsError, RedisError) as exc:
        log_event(scheduler_logger, logging.WARNING, "schedule.misses_not_counted", schedule=name, reason=str(exc))


def _skip_run(schedule: Schedule, now: datetime) -> None:
    due_at = schedule.next_run_at
    assert due_at is not None
    try:
        _advance(schedule, due_at, schedule.compute_next_run(now, anchor=due_at), fired_at=None)
    except (ValueError, DatabaseError):
        fields = {"schedule": schedule.name, "reason": "could not move to its next run"}
        log_event(scheduler_logger, logging.ERROR, "schedule.disabled", **fields, exc_info=True)
        Schedule.objects.filter(pk=schedule.pk).update(enabled=False)


def _advance(schedule: Schedule, due_at: datetime, following: datetime, *, fired_at: datetime | None) -> bool:
    """The compare-and-set: move ``next_run_at`` on only if nobody else did."""
    fields: dict[str, object] = {"next_run_at": following}
    if fired_at is not None:
        fields["last_run_at"] = fired_at
    return bool(Schedule.objects.filter(pk=schedule.pk, next_run_at=due_at, enabled=True).update(**fields))


def _create_job(schedule: Schedule, due_at: datetime | None) -> Job:
    return enqueue_calls(
        job_function_by_name(schedule.job_name),
        [(list(schedule.args), dict(schedule.kwargs))],
        queue=schedule.queue or None,
        # A second guard besides the compare-and-set: one job per schedule and due time.
        idempotency_key=None if due_at is None else f"asyncjobs.schedule:{schedule.pk}:{due_at.isoformat()}",
        schedule=schedule,
    )[0]


def run_schedule_now(schedule: Schedule) -> Job:
    """Create ``schedule``'s job at once, outside its timetable (the admin's "run now").

    Raises ``QueueFull`` when the queue is saturated and ``JobNotRegistered`` when
    the job is not registered in this process.
    """
    with transaction.atomic(using=router.db_for_write(Schedule)):
        job = _create_job(schedule, None)
        Schedule.objects.filter(pk=schedule.pk).update(last_job=job, last_run_at=timezone.now())
    return job
