"""The built-in aggregation: per-queue, per-minute statistics of finished jobs (``JobStats``).

The scheduler rolls each minute up in its own process (``enqueue=False``), so the
rollup creates no job of its own. For the jobs that finished in ``[since, until)``
(their final outcome: succeeded, failed or cancelled) it counts outcomes and takes
the 50th and 95th percentiles of their wait (``started_at - enqueued_at``) and run
(``finished_at - started_at``) times, in seconds, by the nearest-rank method. Queues
without finished jobs in a minute get no row. Rerunning a minute rewrites its rows.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.db import router, transaction
from django.utils import timezone

from ..conf import app_settings
from ..models import FINISHED_STATUSES, AggregationWindow, Job, JobStats, JobStatus
from ..times.durations import parse_duration
from ..times.zones import as_utc, db_datetime
from .declarations import aggregation, registered_aggregations

NAME = "asyncjobs.job_stats"


def percentile(values: Sequence[float], percent: float) -> float | None:
    """Nearest rank: the smallest value with at least ``percent`` % of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class _Queue:
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    waits: list[float] = field(default_factory=list)
    runs: list[float] = field(default_factory=list)


@aggregation(name=NAME, every="1m", enqueue=False, grace="5s")
def job_stats(since: datetime, until: datetime) -> None:
    """Roll up the jobs that finished in ``[since, until)`` into ``JobStats``, then prune."""
    queues: dict[str, _Queue] = defaultdict(_Queue)
    finished = Job.objects.filter(
        finished_at__gte=db_datetime(since), finished_at__lt=db_datetime(until), status__in=FINISHED_STATUSES
    ).values_list("queue", "status", "enqueued_at", "started_at", "finished_at")
    # In a transaction, PostgreSQL's server-side cursor is declared WITHOUT HOLD and ends with
    # it: behind a transaction pooler (PgBouncer) a cursor outliving its transaction would be
    # read, chunk after chunk, on whatever server connection the next statement gets.
    with transaction.atomic(using=router.db_for_read(Job)):
        for queue, status, enqueued_at, started_at, finished_at in finished.iterator(chunk_size=2000):
            stats = queues[queue]
            stats.counts[status] += 1
            # A job cancelled before it started has neither a wait nor a run time.
            if started_at is not None and enqueued_at is not None:
                stats.waits.append(max(0.0, (started_at - enqueued_at).total_seconds()))
            if started_at is not None and finished_at is not None:
                stats.runs.append(max(0.0, (finished_at - started_at).total_seconds()))
    period = int((until - since).total_seconds())
    rows = [
        JobStats(
            queue=queue,
            period_start=db_datetime(since),
            period_seconds=period,
            succeeded=stats.counts[JobStatus.SUCCEEDED],
            failed=stats.counts[JobStatus.FAILED],
            cancelled=stats.counts[JobStatus.CANCELLED],
            wait_p50=percentile(stats.waits, 50),
            wait_p95=percentile(stats.waits, 95),
            run_p50=percentile(stats.runs, 50),
            run_p95=percentile(stats.runs, 95),
        )
        for queue, stats in sorted(queues.items())
    ]
    with transaction.atomic(using=router.db_for_write(JobStats)):
        JobStats.objects.filter(period_start=db_datetime(since)).exclude(queue__in=list(queues)).delete()
        JobStats.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["queue", "period_start"],
            update_fields=[
                "period_seconds",
                "succeeded",
                "failed",
                "cancelled",
                "wait_p50",
                "wait_p95",
                "run_p50",
                "run_p95",
            ],
        )
    prune_rollups(until)


def prune_rollups(now: datetime | None = None) -> tuple[int, int]:
    """Delete ``JobStats`` and ``AggregationWindow`` rows older than ``STATS_RETENTION``.

    The latest window of each registered aggregation is kept: it is where the scheduler
    resumes. Returns the numbers of statistics rows and window rows deleted.
    """
    retention = parse_duration(app_settings.STATS_RETENTION, what="ASYNCJOBS['STATS_RETENTION']")
    cutoff = db_datetime(as_utc(now or timezone.now(), "now") - retention)
    stats_deleted, _ = JobStats.objects.filter(period_start__lt=cutoff).delete()
    windows_deleted = 0
    for name in registered_aggregations():
        recorded = AggregationWindow.objects.filter(name=name)
        latest = recorded.order_by("-since").values_list("since", flat=True).first()
        if latest is not None:
            deleted, _ = recorded.filter(since__lt=min(cutoff, latest)).delete()
            windows_deleted += deleted
    return stats_deleted, windows_deleted
