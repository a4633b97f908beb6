"""The built-in job statistics rollup: figures per queue and minute, reruns, pruning."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.test import override_settings

from django_asyncjobs.aggregations.stats import NAME, percentile, prune_rollups
from django_asyncjobs.aggregations.windows import Outcome, run_window, schedule_due_aggregations
from django_asyncjobs.models import AggregationWindow, Job, JobStats, JobStatus, WindowStatus

pytestmark = pytest.mark.django_db(transaction=True)

MINUTE = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
NEXT = MINUTE + timedelta(minutes=1)


def nearest_rank(values: list[float], percent: int) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(percent * len(ordered) / 100) - 1]


def finished_job(queue: str, status: str, wait: float | None, run: float | None, finished_at: datetime) -> Job:
    started_at = finished_at - timedelta(seconds=run) if run is not None else None
    enqueued_at = started_at - timedelta(seconds=wait) if started_at is not None and wait is not None else finished_at
    return Job.objects.create(
        name="tests.testapp.jobs.noop",
        queue=queue,
        status=status,
        enqueued_at=enqueued_at,
        started_at=started_at,
        finished_at=finished_at,
    )


def test_percentile_is_the_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([7.0], 95) == 7.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.0
    assert percentile([float(n) for n in range(1, 101)], 95) == 95.0
    assert percentile([float(n) for n in range(1, 21)], 95) == 19.0


def test_rollup_counts_outcomes_and_percentiles_per_queue() -> None:
    waits = [0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 8.0, 13.0, 21.0, 30.0]
    runs = [0.1, 0.2, 0.2, 0.3, 0.5, 0.8, 1.3, 2.1, 3.4, 60.0]
    for index, (wait, run) in enumerate(zip(waits, runs, strict=True)):
        status = JobStatus.FAILED if index in (3, 7) else JobStatus.SUCCEEDED
        finished_job("default", status, wait, run, MINUTE + timedelta(seconds=index * 5))
    finished_job("default", JobStatus.CANCELLED, None, None, MINUTE + timedelta(seconds=58))  # never started
    finished_job("high", JobStatus.SUCCEEDED, 0.25, 1.5, MINUTE)
    # Outside the minute, or not a final outcome: not counted.
    finished_job("default", JobStatus.SUCCEEDED, 1.0, 1.0, NEXT)
    finished_job("default", JobStatus.SUCCEEDED, 1.0, 1.0, MINUTE - timedelta(microseconds=1))
    finished_job("low", JobStatus.SCHEDULED, 1.0, 1.0, MINUTE + timedelta(seconds=30))  # awaiting a retry

    assert run_window(NAME, MINUTE, NEXT).outcome == Outcome.RAN

    stats = {row.queue: row for row in JobStats.objects.all()}
    assert set(stats) == {"default", "high"}
    default = stats["default"]
    assert (default.period_start, default.period_seconds) == (MINUTE, 60)
    assert (default.succeeded, default.failed, default.cancelled, default.finished) == (8, 2, 1, 11)
    assert default.wait_p50 == pytest.approx(nearest_rank(waits, 50))  # 4.0
    assert default.wait_p95 == pytest.approx(nearest_rank(waits, 95))  # 30.0
    assert default.run_p50 == pytest.approx(nearest_rank(runs, 50))  # 0.5
    assert default.run_p95 == pytest.approx(nearest_rank(runs, 95))  # 60.0
    high = stats["high"]
    assert (high.succeeded, high.failed, high.cancelled) == (1, 0, 0)
    assert (high.wait_p50, high.wait_p95, high.run_p50, high.run_p95) == pytest.approx((0.25, 0.25, 1.5, 1.5))


def test_a_rerun_rewrites_the_minute() -> None:
    finished_job("default", JobStatus.SUCCEEDED, 1.0, 2.0, MINUTE + timedelta(seconds=10))
    gone = finished_job("high", JobStatus.FAILED, 1.0, 2.0, MINUTE + timedelta(seconds=20))
    run_window(NAME, MINUTE, NEXT)
    assert JobStats.objects.count() == 2
    assert run_window(NAME, MINUTE, NEXT).outcome == Outcome.SKIPPED

    gone.delete()
    finished_job("default", JobStatus.FAILED, 3.0, 4.0, MINUTE + timedelta(seconds=30))
    assert run_window(NAME, MINUTE, NEXT, force=True).outcome == Outcome.RAN

    row = JobStats.objects.get()
    assert (row.queue, row.succeeded, row.failed) == ("default", 1, 1)
    assert (row.wait_p50, row.wait_p95, row.run_p50, row.run_p95) == pytest.approx((1.0, 3.0, 2.0, 4.0))


def test_the_scheduler_rolls_up_in_its_own_process_without_a_job() -> None:
    finished_job("default", JobStatus.SUCCEEDED, 1.0, 2.0, MINUTE + timedelta(seconds=10))
    assert schedule_due_aggregations(NEXT + timedelta(seconds=5), names=[NAME]) == 1
    assert list(Job.objects.exclude(name="tests.testapp.jobs.noop")) == []
    window = AggregationWindow.objects.get(name=NAME)
    assert (window.since, window.status, window.job) == (MINUTE, WindowStatus.DONE, None)
    assert JobStats.objects.get().succeeded == 1


def test_old_rollups_and_windows_are_pruned_keeping_each_latest_window() -> None:
    def window(name: str, since: datetime, every: timedelta) -> None:
        AggregationWindow.objects.create(
            name=name, since=since, until=since + every, status=WindowStatus.DONE, finished_at=since + every
        )

    hour, day = timedelta(hours=1), timedelta(days=1)
    for age in (3, 2, 0.5):
        JobStats.objects.create(queue="default", period_start=MINUTE - age * day)
        window("tests.hourly", (MINUTE - age * day).replace(minute=0), hour)
    window("tests.inline", MINUTE - 5 * day, timedelta(minutes=15))  # old, but its latest: kept
    window("tests.inline", MINUTE - 6 * day, timedelta(minutes=15))
    window("tests.unknown", MINUTE - 5 * day, hour)  # not registered here: left alone

    with override_settings(ASYNCJOBS={**settings.ASYNCJOBS, "STATS_RETENTION": "1d"}):
        assert prune_rollups(MINUTE) == (2, 3)
        run_window(NAME, MINUTE, NEXT)  # the rollup prunes too, relative to its window

    assert list(JobStats.objects.values_list("period_start", flat=True)) == [MINUTE - 0.5 * day]
    remaining = AggregationWindow.objects.values_list("name", "since").order_by("name", "since")
    assert list(remaining) == [
        (NAME, MINUTE),
        ("tests.hourly", (MINUTE - 0.5 * day).replace(minute=0)),
        ("tests.inline", MINUTE - 5 * day),
        ("tests.unknown", MINUTE - 5 * day),
    ]


def test_retention_defaults_to_seven_days() -> None:
    JobStats.objects.create(queue="default", period_start=MINUTE - timedelta(days=7, seconds=1))
    JobStats.objects.create(queue="default", period_start=MINUTE - timedelta(days=6))
    assert prune_rollups(MINUTE) == (1, 0)
    assert JobStats.objects.count() == 1
