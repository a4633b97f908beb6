"""Recovery: nothing is lost while its row exists.

Two things go wrong in production, and one pass here repairs both:

- Redis loses messages (a restart without persistence, a flush, eviction, a
  failover): the rows are still ``queued``, so their messages are pushed again.
- A worker dies mid-job (OOM kill, SIGKILL, a lost host): the row is ``running``
  and its heartbeat stops; the attempt is failed, and retried if attempts are left.

The pass is safe to run from many processes at once: a doubled push is harmless
(a worker claims a row only from ``queued``) and a lost job is written with a
compare-and-set on the heartbeat recovery saw.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q, QuerySet

from ..conf import app_settings
from ..engine.broker import RedisError, missing_messages, ring, waiting_ids
from ..engine.execution import Outcome, record_lost_attempt
from ..engine.finishing import settle_all_stranded
from ..engine.tallies import count_recovered
from ..exceptions import AsyncJobsError
from ..logs import job_fields, jobs_logger, log_event, recovery_logger
from ..models import Job, JobStatus
from ..times.clock import database_now
from .batches import keyset_batches


@dataclass
class RecoveryReport:
    """What a recovery pass found (and, unless ``dry_run``, did)."""

    dry_run: bool = False
    #: Queued jobs whose message was not in Redis: pushed again.
    requeued: list[str] = field(default_factory=list)
    #: Running jobs whose worker stopped sending heartbeats...
    lost: list[str] = field(default_factory=list)
    #: ...of which these were given another attempt...
    retried: list[str] = field(default_factory=list)
    #: ...these had none left and failed...
    failed: list[str] = field(default_factory=list)
    #: ...and these, claimed in a batch and maybe never started, were put back with the
    #: attempt given back (``WorkerLostBeforeStart``).
    put_back: list[str] = field(default_factory=list)
    #: Jobs waiting for others, released or cancelled here, and groups finished here, since
    #: whoever wrote their last outcome died first (not counted in a dry run).
    settled: int = 0
    groups_finished: int = 0

    def __bool__(self) -> bool:
        return bool(self.requeued or self.lost or self.settled or self.groups_finished)

    def summary(self) -> str:
        verb = "would be" if self.dry_run else "were"
        lines = [f"{len(self.requeued)} queued job(s) missing from Redis {verb} pushed again."]
        if self.dry_run:
            lines.append(f"{len(self.lost)} running job(s) lost with their worker would be retried or failed.")
        else:
            lines.append(
                f"{len(self.lost)} running job(s) lost with their worker: "
                f"{len(self.retried)} retried, {len(self.failed)} failed (no attempts left), "
                f"{len(self.put_back)} put back (claimed in a batch, maybe never started)."
            )
        if self.settled or self.groups_finished:
            lines.append(f"{self.settled} waiting job(s) settled, {self.groups_finished} group(s) finished.")
        return "\n".join(lines)


def recover(
    *,
    dry_run: bool = False,
    grace: float | None = None,
    heartbeat_timeout: float | None = None,
    now: datetime | None = None,
    batch_size: int = 1000,
) -> RecoveryReport:
    """One recovery pass. ``grace`` and ``heartbeat_timeout`` (seconds) default to
    ``RECOVERY_GRACE`` and ``HEARTBEAT_TIMEOUT``; ``now`` to the database's clock, the one
    heartbeats are written with (a host whose clock is off must not take live jobs for lost)."""
    now = now or database_now()
    report = RecoveryReport(dry_run=dry_run)
    grace = app_settings.RECOVERY_GRACE if grace is None else grace
    timeout = app_settings.HEARTBEAT_TIMEOUT if heartbeat_timeout is None else heartbeat_timeout
    _requeue_missing_messages(now - timedelta(seconds=grace), report, batch_size)
    _recover_lost_jobs(now, timeout, report, batch_size)
    if not dry_run:
        report.settled, report.groups_finished = settle_all_stranded(batch_size)
    if report:
        fields: dict[str, Any] = {"requeued": len(report.requeued), "lost": len(report.lost)}
        fields.update(settled=report.settled or None, groups_finished=report.groups_finished or None)
        fields.update(retried=len(report.retried), failed=len(report.failed), dry_run=dry_run or None)
        log_event(recovery_logger, logging.INFO if dry_run else logging.WARNING, "recovery.done", **fields)
    return report


def _old_enough(cutoff: datetime) -> Q:
    return Q(enqueued_at__lt=cutoff) | Q(enqueued_at__isnull=True, created_at__lt=cutoff)


def queued_within_grace(grace: float | None = None) -> int:
    """How many ``queued`` jobs are younger than ``grace`` seconds (``RECOVERY_GRACE``): a pass
    does not check their messages (they may be on their way to Redis). For the command's
    report, which a user runs right after Redis lost its data."""
    grace = app_settings.RECOVERY_GRACE if grace is None else grace
    cutoff = database_now() - timedelta(seconds=grace)
    return Job.objects.filter(status=JobStatus.QUEUED).exclude(_old_enough(cutoff)).count()


def _requeue_missing_messages(cutoff: datetime, report: RecoveryReport, batch_size: int) -> None:
    candidates = Job.objects.filter(_old_enough(cutoff), status=JobStatus.QUEUED)
    for queue in sorted(set(candidates.order_by().values_list("queue", flat=True).distinct())):
        try:
            # The snapshot comes first: a row queued after it is younger than the cut-off.
            waiting = waiting_ids(queue)
            for ids in _batches(candidates.filter(queue=queue), batch_size):
                missing = missing_messages(queue, ids, waiting)
                # Rows a worker claimed meanwhile are not queued any more: leave them be.
                jobs = list(
                    Job.objects.filter(pk__in=missing, status=JobStatus.QUEUED).only("pk", "name", "queue", "priority")
                )
                if not jobs:
                    continue
                if not report.dry_run and not ring(jobs):
                    break  # Redis is unreachable: the next pass tries again
                report.requeued.extend(str(job.pk) for job in jobs)
                if not report.dry_run:
                    count_recovered(queue, repushed=len(jobs))
        except (AsyncJobsError, RedisError) as exc:
            # A queue gone from RQ_QUEUES, or its Redis away: the other queues and the
            # lost running jobs are still looked after.
            log_event(recovery_logger, logging.WARNING, "recovery.queue_unchecked", queue=queue, reason=str(exc))


def _batches(queryset: QuerySet[Job], batch_size: int) -> Iterator[list[str]]:
    """Primary keys of ``queryset`` in batches (stable under concurrent updates)."""
    for rows in keyset_batches(queryset, key=("pk",), fields=("pk",), batch_size=batch_size):
        yield [str(pk) for (pk,) in rows]


def _recover_lost_jobs(now: datetime, timeout: float, report: RecoveryReport, batch_size: int) -> None:
    cutoff = now - timedelta(seconds=timeout)
    stale = Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)
    lost = Job.objects.filter(stale, status=JobStatus.RUNNING).order_by("heartbeat_at")
    workers_by_queue: dict[str, set[str]] = {}
    for job in lost[:batch_size]:
        report.lost.append(str(job.pk))
        if report.dry_run:
            continue
        last_sign = job.heartbeat_at or job.started_at
        assert last_sign is not None
        fields = {**job_fields(job), "worker": job.worker or None, "last_seen": last_sign}  # before the write
        outcome = record_lost_attempt(job, _lost_reason(job, last_sign, now, timeout))
        if outcome in (Outcome.RETRYING, Outcome.FAILED, Outcome.PUT_BACK):
            log_event(jobs_logger, logging.WARNING, "job.lost", **fields, outcome=outcome.name.lower())
        if outcome is Outcome.RETRYING:
            report.retried.append(str(job.pk))
        elif outcome is Outcome.FAILED:
            report.failed.append(str(job.pk))
        elif outcome is Outcome.PUT_BACK:
            report.put_back.append(str(job.pk))
        else:
            report.lost.remove(str(job.pk))  # its worker beat again, or it was cancelled meanwhile
            continue
        workers_by_queue.setdefault(job.queue, set()).add(job.worker or "?")
        count_recovered(job.queue, lost=1)
    for queue, workers in workers_by_queue.items():
        count_recovered(queue, lost_workers=len(workers))


def _lost_reason(job: Job, last_sign: datetime, now: datetime, timeout: float) -> str:
    left = "it will be retried" if job.attempts < job.max_attempts else "no attempts are left"
    return (
        f"WorkerLost: worker {job.worker or '?'} stopped sending heartbeats during attempt {job.attempts} "
        f"of {job.max_attempts}; the last one was at {last_sign.isoformat()}, {(now - last_sign).total_seconds():.0f}s "
        f"before recovery ran (HEARTBEAT_TIMEOUT is {timeout:g}s). The worker was killed or lost its host; {left}."
    )
