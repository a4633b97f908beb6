"""Operations on many jobs at once: retry, cancel, push again, delete. The admin's actions
call these; so can your code.

Each acts on rows with the conditional transitions of :mod:`.states`, so two
operators acting on the same jobs at once cannot run one twice: the second finds
nothing left in the status it acts on and reports the job as skipped.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from django.db import router, transaction
from django.db.models import Count, Exists, OuterRef, QuerySet
from django.utils import timezone

from ..exceptions import QueueFull
from ..models import FINISHED_STATUSES, Job, JobDependency, JobGroup, JobStatus
from .broker import ring
from .capacity import check as check_backpressure
from .deletion import delete_jobs_and_files
from .execution import cancel_job, withdraw_on_commit
from .states import RETRYABLE_STATUSES, retry_finished

#: Statuses a job can be cancelled from (and retried from: ``RETRYABLE_STATUSES``).
CANCELLABLE_STATUSES = (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.RUNNING)


@dataclass
class OperationReport:
    """How many jobs an operation changed, and why it left the others alone."""

    done: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def skip(self, reason: str, count: int = 1) -> None:
        if count:
            self.skipped[reason] += count

    def describe_skipped(self) -> str:
        return "; ".join(f"{count} {reason}" for reason, count in sorted(self.skipped.items()))


def retry_jobs(queryset: QuerySet[Job]) -> OperationReport:
    """Queue failed and cancelled jobs again, each with its retry policy anew.

    A job keeps its attempt count and error history; it gets as many further
    attempts as its ``max_attempts`` allowed in the first place. Queues that are
    saturated (back pressure) are left alone and reported.
    """
    report = OperationReport()
    _count_other_statuses(report, queryset, RETRYABLE_STATUSES, "not failed or cancelled")
    candidates = queryset.filter(status__in=RETRYABLE_STATUSES)
    unreleased = _cancelled_while_waiting(candidates)
    report.skip("cancelled while they waited for other jobs (enqueue them again)", unreleased.count())
    candidates = candidates.exclude(pk__in=unreleased.values("pk"))
    by_queue: dict[str, list[Any]] = {}
    for pk, queue in candidates.values_list("pk", "queue"):
        by_queue.setdefault(queue, []).append(pk)
    for queue, pks in sorted(by_queue.items()):
        try:
            check_backpressure(queue, incoming=len(pks))
        except QueueFull as exc:
            report.skip(f"on queue {queue!r}, which is full (try again in {exc.retry_after}s)", len(pks))
            continue
        report.done += _requeue_finished(pks, report)
    return report


def _cancelled_while_waiting(jobs: QuerySet[Job]) -> QuerySet[Job]:
    """Dependants and group callbacks of ``jobs`` cancelled before they were released (which sets
    ``enqueued_at``): queued again, they would run without the result or the group id they waited for."""
    waited = Exists(JobDependency.objects.filter(job=OuterRef("pk"))) | Exists(
        JobGroup.objects.filter(callback=OuterRef("pk"))
    )
    return jobs.filter(waited, enqueued_at__isnull=True)


def _requeue_finished(pks: list[Any], report: OperationReport) -> int:
    now = timezone.now()
    using = router.db_for_write(Job)
    with transaction.atomic(using=using):
        changed = retry_finished(pks, now=now, using=using)
        # The rows this call changed: they carry its timestamp (another operator's carry theirs).
        jobs = list(Job.objects.using(using).filter(pk__in=pks, status=JobStatus.QUEUED, enqueued_at=now))
        transaction.on_commit(lambda: ring(jobs), using=using)
    report.skip("changed by someone else meanwhile", len(pks) - changed)
    return changed


def cancel_jobs(queryset: QuerySet[Job]) -> OperationReport:
    """Cancel queued, scheduled and running jobs (see :meth:`Job.cancel`); the messages of
    those that waited leave Redis at once, so their queues' back pressure eases."""
    report = OperationReport()
    _count_other_statuses(report, queryset, CANCELLABLE_STATUSES, "already finished")
    withdrawn: list[Job] = []
    for job in queryset.filter(status__in=CANCELLABLE_STATUSES):
        if cancel_job(job, withdrawn=withdrawn):
            report.done += 1
        else:
            report.skip("finished meanwhile")
    withdraw_on_commit(withdrawn)  # their messages: one Redis round trip for all
    return report


def push_again(queryset: QuerySet[Job]) -> OperationReport:
    """Push the messages of queued jobs again (for a message Redis lost; a duplicate is harmless)."""
    report = OperationReport()
    _count_other_statuses(report, queryset, (JobStatus.QUEUED,), "not queued")
    jobs = list(queryset.filter(status=JobStatus.QUEUED).select_related(None).only("pk", "name", "queue", "priority"))
    if jobs and not ring(jobs):
        report.skip("not pushed: Redis is unreachable", len(jobs))
    else:
        report.done = len(jobs)
    return report


def delete_finished_jobs(queryset: QuerySet[Job]) -> OperationReport:
    """Delete finished jobs and their stored files; unfinished ones are left alone."""
    report = OperationReport()
    _count_other_statuses(report, queryset, FINISHED_STATUSES, "not finished")
    pks = list(queryset.filter(status__in=FINISHED_STATUSES).values_list("pk", flat=True))
    report.done = delete_jobs_and_files(pks)
    report.skip("finished no longer (retried meanwhile)", len(pks) - report.done)
    return report


def _count_other_statuses(report: OperationReport, queryset: QuerySet[Job], allowed: Any, why: str) -> None:
    others = queryset.exclude(status__in=allowed).order_by().values_list("status").annotate(n=Count("pk"))
    for status, count in others:
        report.skip(f"{why} ({JobStatus(status).label.lower()})", count)
