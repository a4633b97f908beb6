"""The figures of the admin dashboard: queue state, statistics over time, recent failures.

Live figures come from Redis, as the back-pressure middleware reads them
(:func:`.backpressure.queue_state`), and from RQ's worker registry. Figures over
time come from the per-minute ``JobStats`` rollups (:mod:`.stats`), never from
counting the job table; the job table is read only through its indexes, for the
running jobs (few) and the latest failures. So the number of queries is fixed,
whatever the size of the job table. See docs/admin.md#dashboard.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Case, Count, F, FloatField, QuerySet, Sum, Value, When
from django.db.models.functions import Right
from django.utils import timezone

from ..aggregations.declarations import EPOCH
from ..aggregations.stats import NAME as STATS_AGGREGATION
from ..engine.broker import RedisError, live_workers, queue_names
from ..engine.capacity import QueueState, limits_for, queue_state
from ..models import AggregationWindow, Job, JobStats, JobStatus, WindowStatus
from ..times.zones import as_utc, db_datetime

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
MINUTE = timedelta(minutes=1)
#: The buckets of the last day's charts.
DAY_BUCKET = timedelta(minutes=15)
#: How much of a failed job's error is read to find its last line.
ERROR_TAIL_CHARS = 2000

_METRICS = ("wait_p50", "wait_p95", "run_p50", "run_p95")


@dataclass
class _Sums:
    """``JobStats`` rows added up: counts, and each percentile times its row's job count."""

    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    weighted: dict[str, float] = field(default_factory=lambda: dict.fromkeys(_METRICS, 0.0))
    weights: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_METRICS, 0))

    def add(self, row: Mapping[str, Any]) -> None:
        self.succeeded += row["total_succeeded"] or 0
        self.failed += row["total_failed"] or 0
        self.cancelled += row["total_cancelled"] or 0
        for metric in _METRICS:
            self.weighted[metric] += row[f"{metric}_sum"] or 0.0
            self.weights[metric] += row[f"{metric}_weight"] or 0

    def figures(self, minutes: float) -> PeriodFigures:
        means = {
            metric: (self.weighted[metric] / self.weights[metric] if self.weights[metric] else None)
            for metric in _METRICS
        }
        return PeriodFigures(self.succeeded, self.failed, self.cancelled, minutes, **means)


def _aggregates() -> dict[str, Any]:
    """Per group of ``JobStats`` rows: the counts, and for each percentile the sum of
    percentile x jobs and the jobs of the rows that have that percentile."""
    finished = F("succeeded") + F("failed") + F("cancelled")
    # Not named like the fields: F("failed") below would then mean the sum.
    aggregates: dict[str, Any] = {f"total_{name}": Sum(name) for name in ("succeeded", "failed", "cancelled")}
    for metric in _METRICS:
        aggregates[f"{metric}_sum"] = Sum(F(metric) * finished, output_field=FloatField())
        aggregates[f"{metric}_weight"] = Sum(
            Case(When(**{f"{metric}__isnull": False}, then=finished), default=Value(0))
        )
    return aggregates


@dataclass(frozen=True)
class PeriodFigures:
    """Jobs that finished in a span of time, from ``JobStats`` rows.

    The percentiles are approximations: the mean of the per-minute percentiles,
    each weighted by the number of jobs that finished in its minute (see
    docs/admin.md). ``None`` when no job of the span has the time measured.
    """

    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    #: Length of the span (minutes).
    minutes: float = 60.0
    wait_p50: float | None = None
    wait_p95: float | None = None
    run_p50: float | None = None
    run_p95: float | None = None

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed + self.cancelled

    @property
    def per_minute(self) -> float:
        """Jobs finished per minute (cancelled included)."""
        return self.finished / self.minutes if self.minutes > 0 else 0.0

    @property
    def failure_rate(self) -> float | None:
        """Failed among succeeded and failed (cancelled jobs are neither); ``None`` without either."""
        ran = self.succeeded + self.failed
        return self.failed / ran if ran else None


@dataclass(frozen=True)
class QueueOverview:
    """One queue on the dashboard. Redis figures are ``None`` when Redis could not be read."""

    name: str
    running: int
    last_hour: PeriodFigures
    max_depth: int | None
    max_age: float | None
    state: QueueState | None = None
    workers: int | None = None
    #: Why Redis could not be read ("" when it could).
    error: str = ""

    @property
    def reachable(self) -> bool:
        return self.state is not None

    @property
    def depth(self) -> int | None:
        return None if self.state is None else self.state.depth

    @property
    def oldest_age(self) -> float | None:
        return None if self.state is None else self.state.oldest_age

    @property
    def throughput_per_minute(self) -> float | None:
        """Jobs finished per minute over about the last minute, as counted for back pressure."""
        return None if self.state is None else self.state.throughput * 60

    @property
    def estimated_wait(self) -> float | None:
        """Little's law, depth / throughput (seconds): what ``Retry-After`` is derived from."""
        return None if self.state is None else self.state.estimated_wait

    @property
    def saturation(self) -> float | None:
        """Depth as a fraction of ``MAX_DEPTH`` (above 1 when over it); ``None`` without a limit."""
        if self.state is None or not self.max_depth:
            return None
        return self.state.depth / self.max_depth

    @property
    def full_reason(self) -> str:
        """Why a new job would be refused now ("" when it would be taken)."""
        return "" if self.state is None else self.state.reason_for(1)


@dataclass(frozen=True)
class Bucket:
    """One point of a chart: the jobs that finished in ``[start, start + minutes)``."""

    start: datetime
    figures: PeriodFigures


@dataclass(frozen=True)
class Failure:
    job_id: uuid.UUID
    name: str
    queue: str
    attempts: int
    finished_at: datetime | None
    #: The last line of the error: for an exception, its type and message.
    error: str


@dataclass(frozen=True)
class Snapshot:
    """Everything the dashboard page shows, read at ``generated_at``."""

    generated_at: datetime
    queues: list[QueueOverview]
    #: The queue the charts show; ``None`` for all queues together.
    chart_queue: str | None
    last_hour: list[Bucket]
    last_day: list[Bucket]
    failures: list[Failure]
    #: End of the latest minute rolled up into ``JobStats`` (``None``: never).
    rolled_up_until: datetime | None


def _minute_floor(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def _now(now: datetime | None) -> datetime:
    return as_utc(now or timezone.now(), "now")


def _stats_rows(since: datetime, until: datetime) -> QuerySet[JobStats]:
    return JobStats.objects.filter(period_start__gte=db_datetime(since), period_start__lt=db_datetime(until))


def last_hour_by_queue(now: datetime | None = None) -> dict[str, PeriodFigures]:
    """Per queue, the jobs finished in the last 60 complete minutes (one query)."""
    until = _minute_floor(_now(now))
    rows = _stats_rows(until - HOUR, until).values("queue").annotate(**_aggregates()).order_by()
    figures = {}
    for row in rows:
        sums = _Sums()
        sums.add(row)
        figures[row["queue"]] = sums.figures(HOUR / MINUTE)
    return figures


def running_by_queue() -> dict[str, int]:
    """Running jobs per queue (one query, on the index that starts with the status)."""
    rows = Job.objects.filter(status=JobStatus.RUNNING).values("queue").annotate(count=Count("pk")).order_by()
    return {row["queue"]: row["count"] for row in rows}


def read_queue(name: str) -> tuple[QueueState | None, int | None, str]:
    """``(state, live workers, error)`` of a queue from Redis: two round trips, or the error."""
    try:
        return queue_state(name, max_cache_age=0), live_workers(name), ""
    except RedisError as exc:
        return None, None, f"{type(exc).__name__}: {exc}"


def queue_overview(now: datetime | None = None, names: Sequence[str] | None = None) -> list[QueueOverview]:
    """Every queue of ``RQ_QUEUES`` (or those ``names``): live figures from Redis, the last hour from ``JobStats``."""
    running = running_by_queue()
    hour = last_hour_by_queue(now)
    overview = []
    for name in queue_names() if names is None else names:
        state, workers, error = read_queue(name)
        max_depth, max_age = limits_for(name)
        overview.append(
            QueueOverview(
                name=name,
                running=running.get(name, 0),
                last_hour=hour.get(name, PeriodFigures()),
                max_depth=max_depth,
                max_age=max_age,
                state=state,
                workers=workers,
                error=error,
            )
        )
    return overview


def chart_series(
    span: timedelta, bucket: timedelta, *, queue: str | None = None, now: datetime | None = None
) -> list[Bucket]:
    """The jobs finished in the last ``span``, in ``bucket``-long buckets, oldest first (one query).

    Buckets are aligned to multiples of ``bucket`` from the Unix epoch (like aggregation
    windows), and the last one ends with the last complete minute, so it may be partly
    over: its ``minutes`` say how much, and its rate is per minute of that part.
    ``queue=None`` adds up all queues. A minute without a ``JobStats`` row counts as
    no jobs finished.
    """
    until = _minute_floor(_now(now))
    size = bucket.total_seconds()
    count = max(1, round(span / bucket))
    last_minute = (until - MINUTE - EPOCH).total_seconds()
    last_start = EPOCH + timedelta(seconds=last_minute // size * size)
    starts = [last_start - bucket * (count - 1 - index) for index in range(count)]
    sums = [_Sums() for _ in starts]
    rows = _stats_rows(starts[0], until)
    if queue is not None:
        rows = rows.filter(queue=queue)
    for row in rows.values("period_start").annotate(**_aggregates()).order_by("period_start"):
        start = as_utc(row["period_start"], "period_start")
        sums[int((start - starts[0]) / bucket)].add(row)
    return [
        Bucket(start, total.figures((min(start + bucket, until) - start) / MINUTE))
        for start, total in zip(starts, sums, strict=True)
    ]


def last_line(error: str) -> str:
    """The last non-blank line of ``error``: the exception's type and message."""
    for line in reversed(error.splitlines()):
        if line.strip():
            return line.strip()
    return ""


def recent_failures(limit: int = 10) -> list[Failure]:
    """The ``limit`` latest failed jobs, newest first (one query on the (status, finished_at) index)."""
    rows = (
        Job.objects.filter(status=JobStatus.FAILED)
        .order_by("-finished_at")
        .annotate(error_tail=Right("error", ERROR_TAIL_CHARS))
        .values_list("pk", "name", "display_name", "queue", "attempts", "finished_at", "error_tail")[:limit]
    )
    return [
        Failure(pk, shown or name, queue, attempts, finished_at, last_line(tail or ""))
        for pk, name, shown, queue, attempts, finished_at, tail in rows
    ]


def rolled_up_until() -> datetime | None:
    """The end of the latest minute the statistics rollup has recorded."""
    until = (
        AggregationWindow.objects.filter(name=STATS_AGGREGATION, status=WindowStatus.DONE)
        .order_by("-since")
        .values_list("until", flat=True)
        .first()
    )
    return None if until is None else as_utc(until, "until")


def snapshot(*, chart_queue: str | None = None, now: datetime | None = None, failures: int = 10) -> Snapshot:
    """All figures of the dashboard: six queries, and two Redis round trips per queue."""
    moment = _now(now)
    return Snapshot(
        generated_at=moment,
        queues=queue_overview(moment),
        chart_queue=chart_queue,
        last_hour=chart_series(HOUR, MINUTE, queue=chart_queue, now=moment),
        last_day=chart_series(DAY, DAY_BUCKET, queue=chart_queue, now=moment),
        failures=recent_failures(failures),
        rolled_up_until=rolled_up_until(),
    )


def known_queue(name: str | None) -> str | None:
    """``name`` if it is a configured queue, else ``None`` (for a query-string parameter)."""
    return name if name and name in queue_names() else None
