"""Time-based work: firing due schedules, and moving delayed jobs and retries onto their queues."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import DatabaseError, router, transaction
from django.utils import timezone

from .backpressure import QueueFull
from .conf import app_settings
from .models import Job, JobStatus, MisfirePolicy, Schedule

logger = logging.getLogger("django_asyncjobs")


def promote_due_jobs(batch_size: int = 500) -> int:
    """Queue scheduled jobs whose ``run_at`` has passed and ring their doorbells.

    Safe to run from many processes at once: a row moves ``scheduled`` to
    ``queued`` only once, and a doubled push is harmless because a worker claims
    a row only from ``queued``. Returns the number of jobs queued.
    """
    from .enqueueing import ring

    total = 0
    while True:
        now = timezone.now()
        with transaction.atomic():
            due = Job.objects.due(now).order_by("run_at")
            if transaction.get_connection().features.has_select_for_update_skip_locked:
                due = due.select_for_update(skip_locked=True)
            ids = list(due.values_list("pk", flat=True)[:batch_size])
            if not ids:
                return total
            Job.objects.filter(pk__in=ids, status=JobStatus.SCHEDULED).update(status=JobStatus.QUEUED, enqueued_at=now)
        jobs = list(Job.objects.filter(pk__in=ids, status=JobStatus.QUEUED).only("pk", "name", "queue", "priority"))
        ring(jobs)
        total += len(jobs)
        logger.debug("Queued %d due job(s).", len(jobs))
        if len(ids) < batch_size:
            return total


@dataclass
class FiringReport:
    """What one pass over the due schedules did."""

    fired: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # missed runs dropped by the "skip" policy
    deferred: list[str] = field(default_factory=list)  # queue full or database away: tried again next pass
    failed: list[str] = field(default_factory=list)  # the run could not be created (see the log): skipped

    def __bool__(self) -> bool:
        return bool(self.fired or self.skipped or self.deferred or self.failed)


def fire_due_schedules(now: datetime | None = None, *, batch_size: int = 100) -> FiringReport:
    """Create the job of every enabled schedule whose ``next_run_at`` has come.

    Each run is claimed with a compare-and-set on ``next_run_at`` in the same
    transaction that creates its job, so however many schedulers run this at
    once, a run fires exactly once, and a crash between the two leaves neither.
    """
    now = now or timezone.now()
    report = FiringReport()
    due = list(Schedule.objects.filter(enabled=True, next_run_at__lte=now).order_by("next_run_at")[:batch_size])
    for schedule in due:
        try:
            _fire(schedule, now, report)
        except DatabaseError as exc:
            logger.warning("Schedule %r: could not fire this time: %s", schedule.name, exc)
            report.deferred.append(schedule.name)
        except Exception:
            # E.g. a job no longer registered, a queue gone from RQ_QUEUES, kwargs that are not a
            # dict: skip this run (one error per run, not per pass) and go on with the others.
            logger.exception("Schedule %r: could not create its job; this run is skipped.", schedule.name)
            _skip_run(schedule, now)
            report.failed.append(schedule.name)
    return report


def _fire(schedule: Schedule, now: datetime, report: FiringReport) -> None:
    due_at = schedule.next_run_at
    assert due_at is not None
    try:
        following = schedule.compute_next_run(now, anchor=due_at)
    except ValueError as exc:  # a row written around save(), e.g. with .update()
        logger.error("Schedule %r is invalid and was disabled: %s", schedule.name, exc)
        Schedule.objects.filter(pk=schedule.pk).update(enabled=False)
        report.failed.append(schedule.name)
        return
    late = now - due_at
    missed = late > timedelta(seconds=float(app_settings.MISFIRE_GRACE))
    if missed and schedule.misfire_policy == MisfirePolicy.SKIP:
        if _advance(schedule, due_at, following, fired_at=None):
            logger.warning(
                "Schedule %r: the run due at %s is %s late; skipped (misfire policy 'skip'). Next run at %s.",
                schedule.name,
                due_at.isoformat(),
                late,
                following.isoformat(),
            )
            report.skipped.append(schedule.name)
        return
    try:
        with transaction.atomic(using=router.db_for_write(Schedule)):
            if not _advance(schedule, due_at, following, fired_at=now):
                return  # another scheduler fired this run
            job = _create_job(schedule, due_at)
            Schedule.objects.filter(pk=schedule.pk).update(last_job=job)
    except QueueFull as exc:
        logger.warning("Schedule %r: queue %r is full (%s); trying again next pass.", schedule.name, exc.queue, exc)
        report.deferred.append(schedule.name)
        return
    logger.info("Schedule %r fired job %s (due at %s).", schedule.name, job.pk, due_at.isoformat())
    report.fired.append(schedule.name)


def _skip_run(schedule: Schedule, now: datetime) -> None:
    due_at = schedule.next_run_at
    assert due_at is not None
    try:
        _advance(schedule, due_at, schedule.compute_next_run(now, anchor=due_at), fired_at=None)
    except (ValueError, DatabaseError):
        logger.exception("Schedule %r could not be moved to its next run and was disabled.", schedule.name)
        Schedule.objects.filter(pk=schedule.pk).update(enabled=False)


def _advance(schedule: Schedule, due_at: datetime, following: datetime, *, fired_at: datetime | None) -> bool:
    """The compare-and-set: move ``next_run_at`` on only if nobody else did."""
    fields: dict[str, object] = {"next_run_at": following}
    if fired_at is not None:
        fields["last_run_at"] = fired_at
    return bool(Schedule.objects.filter(pk=schedule.pk, next_run_at=due_at, enabled=True).update(**fields))


def _create_job(schedule: Schedule, due_at: datetime | None) -> Job:
    from .enqueueing import enqueue_calls
    from .registry import job_function_by_name

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
