"""Aggregations: window alignment, declaration errors, exactly-once scheduling, reruns,
windows run by a real worker, failures."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.db import connections
from django.test import override_settings

from django_asyncjobs.aggregations.declarations import (
    EPOCH,
    AggregationNotRegistered,
    get_aggregation,
    register_aggregation,
    registered_aggregations,
    unregister_aggregation,
)
from django_asyncjobs.aggregations.windows import (
    Outcome,
    enqueue_window,
    run_window,
    schedule_due_aggregations,
    windows_between,
)
from django_asyncjobs.engine.functions import job
from django_asyncjobs.engine.registry import get_job_function
from django_asyncjobs.exceptions import ConfigurationError
from django_asyncjobs.models import AggregationWindow, Job, JobStatus, WindowStatus
from tests.testapp.models import Call

pytestmark = pytest.mark.django_db(transaction=True)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def calls(label: str) -> list[tuple[str, str]]:
    rows = Call.objects.filter(label=label).order_by("id")
    return [(row.data["since"], row.data["until"]) for row in rows]


def windows(name: str) -> list[tuple[datetime, datetime, str]]:
    rows = AggregationWindow.objects.filter(name=name).order_by("since")
    return [(row.since, row.until, row.status) for row in rows]


def catch_up(limit: int) -> override_settings:
    return override_settings(ASYNCJOBS={**settings.ASYNCJOBS, "AGGREGATION_MAX_CATCH_UP": limit})


# --- windows and alignment ---------------------------------------------------------


def test_windows_are_aligned_to_multiples_of_every_from_the_epoch_in_utc() -> None:
    hourly = get_aggregation("tests.hourly")
    assert hourly.window_start(at("2024-05-01 10:30:15")) == at("2024-05-01 10:00")
    assert hourly.window_start(at("2024-05-01 10:00")) == at("2024-05-01 10:00")
    # An aware time in another zone: 12:30+02:00 is 10:30 UTC.
    assert hourly.window_start(datetime.fromisoformat("2024-05-01T12:30+02:00")) == at("2024-05-01 10:00")
    daily = get_aggregation("tests.async_daily")
    assert daily.window_start(datetime.fromisoformat("2024-05-01T01:00+02:00")) == at("2024-04-30 00:00")
    quarter = get_aggregation("tests.inline")
    assert quarter.window_start(at("2024-05-01 10:44:59")) == at("2024-05-01 10:30")
    odd = register_aggregation(lambda since, until: None, name="tests.every_7m", every="7m")
    try:
        start = odd.window_start(at("2024-05-01 10:00"))
        assert (start - EPOCH) % timedelta(minutes=7) == timedelta(0)
        assert start <= at("2024-05-01 10:00") < start + timedelta(minutes=7)
    finally:
        unregister_aggregation("tests.every_7m")


def test_windows_between_covers_the_range_window_by_window() -> None:
    assert windows_between("tests.hourly", at("2024-05-01 10:30"), at("2024-05-01 12:00")) == [
        (at("2024-05-01 10:00"), at("2024-05-01 11:00")),
        (at("2024-05-01 11:00"), at("2024-05-01 12:00")),
    ]
    assert len(windows_between("tests.hourly", at("2024-05-01 10:00"), at("2024-05-01 12:00:01"))) == 3
    with pytest.raises(ValueError, match="must be before until"):
        windows_between("tests.hourly", at("2024-05-01 12:00"), at("2024-05-01 10:00"))


def test_last_completed_window_and_grace() -> None:
    hourly = get_aggregation("tests.hourly")
    assert hourly.last_completed(at("2024-05-01 10:59:59")) == (at("2024-05-01 09:00"), at("2024-05-01 10:00"))
    assert hourly.last_completed(at("2024-05-01 11:00")) == (at("2024-05-01 10:00"), at("2024-05-01 11:00"))
    stats = get_aggregation("asyncjobs.job_stats")  # every minute, due 5 s after its end
    assert stats.last_completed(at("2024-05-01 12:01:03")) == (at("2024-05-01 11:59"), at("2024-05-01 12:00"))
    assert stats.last_completed(at("2024-05-01 12:01:05")) == (at("2024-05-01 12:00"), at("2024-05-01 12:01"))


# --- declaration -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"every": "soon"}, "'tests.bad': every must be a duration"),
        ({"every": "0s"}, "'tests.bad': every must be longer than zero"),
        ({"every": -3600}, "'tests.bad': every must be longer than zero"),
        ({"every": 1.5}, "'tests.bad': every must be a whole number of seconds"),
        ({"every": "1h", "grace": "later"}, "'tests.bad': grace must be a duration"),
        ({"every": "1h", "max_attempts": 0}, "'tests.bad': max_attempts must be an integer >= 1"),
        ({"every": "1h", "enqueue": "yes"}, "'tests.bad': enqueue must be True or False"),
    ],
)
def test_bad_declarations_fail_at_decoration_time(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        register_aggregation(lambda since, until: None, name="tests.bad", **options)  # type: ignore[arg-type]
    assert "tests.bad" not in registered_aggregations()


def test_a_function_that_does_not_take_since_and_until_is_refused() -> None:
    def one_argument(since: datetime) -> None: ...

    with pytest.raises(ConfigurationError, match=r"'tests.bad'.*two arguments \(since, until\)"):
        register_aggregation(one_argument, name="tests.bad", every="1h")  # type: ignore[arg-type]


def test_two_functions_under_one_name_are_refused() -> None:
    def other(since: datetime, until: datetime) -> None: ...

    with pytest.raises(ConfigurationError, match=r"Two functions are registered as aggregation 'tests\.hourly'"):
        register_aggregation(other, name="tests.hourly", every="1h")
    assert get_aggregation("tests.hourly").func.__name__ == "hourly"


def test_an_aggregation_cannot_take_the_name_of_a_job_nor_a_job_its_name() -> None:
    with pytest.raises(ConfigurationError, match=r"Two functions are registered as job 'tests\.testapp\.jobs\.add'"):
        register_aggregation(lambda since, until: None, name="tests.testapp.jobs.add", every="1h")
    assert "tests.testapp.jobs.add" not in registered_aggregations()

    def hourly(since: datetime, until: datetime) -> None: ...

    with pytest.raises(ConfigurationError, match=r"Two functions are registered as job 'tests\.hourly'"):
        job(name="tests.hourly")(hourly)


def test_unknown_aggregation_names_the_name_and_the_known_ones() -> None:
    with pytest.raises(AggregationNotRegistered, match=r"'tests.nope' \(registered: .*tests.hourly") as caught:
        get_aggregation("tests.nope")
    assert isinstance(caught.value, LookupError)


def test_each_aggregation_is_also_a_registered_job() -> None:
    job_function = get_job_function("tests.odd_hours_fail")
    assert job_function is get_aggregation("tests.odd_hours_fail").job_function
    assert job_function.options.resolved_queue() == "low"


# --- scheduling: each window once ----------------------------------------------------


def test_first_pass_fires_only_the_latest_window_then_every_window_since() -> None:
    assert schedule_due_aggregations(at("2024-05-01 10:07"), names=["tests.inline"]) == 1
    assert calls("tests.inline") == [("2024-05-01T09:45:00+00:00", "2024-05-01T10:00:00+00:00")]
    assert schedule_due_aggregations(at("2024-05-01 10:14"), names=["tests.inline"]) == 0
    assert schedule_due_aggregations(at("2024-05-01 10:50"), names=["tests.inline"]) == 3
    assert [since for since, _ in calls("tests.inline")] == [
        "2024-05-01T09:45:00+00:00",
        "2024-05-01T10:00:00+00:00",
        "2024-05-01T10:15:00+00:00",
        "2024-05-01T10:30:00+00:00",
    ]
    assert {status for *_, status in windows("tests.inline")} == {WindowStatus.DONE}
    assert not Job.objects.exists()  # enqueue=False: run in the caller's process


def test_catch_up_is_limited_to_the_most_recent_windows() -> None:
    schedule_due_aggregations(at("2024-05-01 10:00"), names=["tests.inline"])
    with catch_up(3):
        assert schedule_due_aggregations(at("2024-05-01 13:00"), names=["tests.inline"]) == 3
    assert [since for since, _, _ in windows("tests.inline")] == [
        at("2024-05-01 09:45"),
        at("2024-05-01 12:15"),
        at("2024-05-01 12:30"),
        at("2024-05-01 12:45"),
    ]


def test_scheduled_windows_are_enqueued_and_run_by_a_worker(run_worker, redis) -> None:
    assert schedule_due_aggregations(at("2024-05-01 10:20"), names=["tests.hourly"]) == 1
    assert schedule_due_aggregations(at("2024-05-01 12:20"), names=["tests.hourly"]) == 2
    rows = list(AggregationWindow.objects.filter(name="tests.hourly").order_by("since"))
    assert [row.status for row in rows] == [WindowStatus.PENDING] * 3
    jobs = [row.job for row in rows]
    assert all(job is not None and job.status == JobStatus.QUEUED for job in jobs)
    assert jobs[0] is not None and jobs[0].args == ["2024-05-01T09:00:00+00:00", "2024-05-01T10:00:00+00:00"]
    assert redis.llen("rq:queue:default") == 3

    run_worker("default")

    assert [status for *_, status in windows("tests.hourly")] == [WindowStatus.DONE] * 3
    assert [since for since, _ in calls("tests.hourly")] == [
        "2024-05-01T09:00:00+00:00",
        "2024-05-01T10:00:00+00:00",
        "2024-05-01T11:00:00+00:00",
    ]
    assert set(Job.objects.values_list("status", flat=True)) == {JobStatus.SUCCEEDED}
    assert Job.objects.order_by("created_at").first().result["outcome"] == "ran"  # type: ignore[union-attr]


def test_a_full_queue_stops_the_pass_and_a_later_pass_resumes_where_it_stopped(run_worker) -> None:
    limited = {**settings.ASYNCJOBS, "QUEUE_LIMITS": {"default": {"MAX_DEPTH": 1}}, "BACKPRESSURE_CACHE_SECONDS": 0}
    with override_settings(ASYNCJOBS=limited):
        assert schedule_due_aggregations(at("2024-05-01 10:20"), names=["tests.hourly"]) == 1
        assert schedule_due_aggregations(at("2024-05-01 12:20"), names=["tests.hourly"]) == 0  # queue full
        assert len(windows("tests.hourly")) == 1
        run_worker("default")
        assert schedule_due_aggregations(at("2024-05-01 12:20"), names=["tests.hourly"]) == 1
        run_worker("default")
        assert schedule_due_aggregations(at("2024-05-01 12:20"), names=["tests.hourly"]) == 1
        run_worker("default")
    assert [since for since, _ in calls("tests.hourly")] == [
        "2024-05-01T09:00:00+00:00",
        "2024-05-01T10:00:00+00:00",
        "2024-05-01T11:00:00+00:00",
    ]
    assert Job.objects.count() == 3  # no job was created for a window that was not recorded


def test_concurrent_schedulers_fire_each_window_exactly_once() -> None:
    names = ["tests.inline", "tests.hourly"]
    moments = [at("2024-05-01 10:00") + timedelta(minutes=25 * step) for step in range(6)]
    threads_count = 4
    barrier = threading.Barrier(threads_count)
    fired: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def scheduler() -> None:
        try:
            for moment in moments:
                barrier.wait(timeout=60)
                count = schedule_due_aggregations(moment, names=names)
                with lock:
                    fired.append(count)
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)
            barrier.abort()
        finally:
            connections.close_all()

    threads = [threading.Thread(target=scheduler) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert not errors
    # 10:00 → the window ending 10:00; then every quarter-hour up to 12:00 (8 more) for tests.inline;
    # tests.hourly: the window ending 10:00, then 11:00 and 12:00.
    inline_windows, hourly_windows = 1 + 8, 1 + 2
    assert sum(fired) == inline_windows + hourly_windows
    assert len(calls("tests.inline")) == len(set(calls("tests.inline"))) == inline_windows
    assert AggregationWindow.objects.filter(name="tests.inline", status=WindowStatus.DONE).count() == inline_windows
    assert Job.objects.filter(name="tests.hourly").count() == hourly_windows
    assert AggregationWindow.objects.filter(name="tests.hourly", job__isnull=False).count() == hourly_windows


# --- running windows: reruns, failures ---------------------------------------------


def test_run_window_records_it_and_a_rerun_is_skipped_unless_forced() -> None:
    since, until = at("2024-05-01 10:00"), at("2024-05-01 11:00")
    assert run_window("tests.hourly", since, until).outcome == Outcome.RAN
    again = run_window("tests.hourly", since, until)
    assert (again.outcome, again.detail) == (Outcome.SKIPPED, "already done")
    assert len(calls("tests.hourly")) == 1
    assert run_window("tests.hourly", since, until, force=True).outcome == Outcome.RAN
    assert len(calls("tests.hourly")) == 2
    assert windows("tests.hourly") == [(since, until, WindowStatus.DONE)]
    # The scheduler resumes after the recorded window: nothing is due at 11:30.
    assert schedule_due_aggregations(at("2024-05-01 11:30"), names=["tests.hourly"]) == 0


def test_run_window_refuses_windows_that_are_not_windows_or_not_over() -> None:
    with pytest.raises(ValueError, match=r"is not a window of 'tests\.hourly'"):
        run_window("tests.hourly", at("2024-05-01 10:30"), at("2024-05-01 11:30"))
    with pytest.raises(ValueError, match=r"is not a window of 'tests\.hourly'"):
        run_window("tests.hourly", at("2024-05-01 10:00"), at("2024-05-01 12:00"))
    with pytest.raises(ValueError, match="must be timezone-aware"):
        run_window("tests.hourly", datetime(2024, 5, 1, 10), datetime(2024, 5, 1, 11))
    hourly = get_aggregation("tests.hourly")
    current = hourly.window_start(datetime.now(UTC))
    with pytest.raises(ValueError, match="is not over yet"):
        run_window(hourly, current, current + hourly.every)
    assert not AggregationWindow.objects.exists()


def test_a_failing_window_is_marked_failed_and_run_again_next_time() -> None:
    since, until = at("2024-05-01 11:00"), at("2024-05-01 12:00")
    result = run_window("tests.odd_hours_fail", since, until)
    assert result.outcome == Outcome.FAILED
    assert "RuntimeError: odd hour 11" in result.error
    window = AggregationWindow.objects.get(name="tests.odd_hours_fail")
    assert (window.status, window.finished_at is not None) == (WindowStatus.FAILED, True)
    assert "RuntimeError: odd hour 11" in window.error
    assert run_window("tests.odd_hours_fail", since, until).outcome == Outcome.FAILED
    assert len(calls("tests.odd_hours_fail")) == 2


def test_an_enqueued_window_that_fails_fails_its_job(run_worker) -> None:
    result = enqueue_window("tests.odd_hours_fail", at("2024-05-01 13:00"), at("2024-05-01 14:00"))
    assert result.outcome == Outcome.ENQUEUED and result.job is not None
    assert result.job.queue == "low"
    run_worker("low")
    job = Job.objects.get(pk=result.job.pk)
    window = AggregationWindow.objects.get(name="tests.odd_hours_fail")
    assert (job.status, window.status, window.job_id) == (JobStatus.FAILED, WindowStatus.FAILED, job.pk)
    assert "odd hour 13" in job.error and "odd hour 13" in window.error
    # A failed window may be enqueued again.
    assert enqueue_window("tests.odd_hours_fail", window.since, window.until).outcome == Outcome.ENQUEUED


def test_enqueue_window_skips_windows_done_or_already_enqueued(run_worker) -> None:
    since, until = at("2024-05-01 10:00"), at("2024-05-01 11:00")
    first = enqueue_window("tests.hourly", since, until)
    assert first.outcome == Outcome.ENQUEUED
    second = enqueue_window("tests.hourly", since, until)
    assert (second.outcome, second.detail) == (Outcome.SKIPPED, "already enqueued")
    run_worker("default")
    third = enqueue_window("tests.hourly", since, until)
    assert (third.outcome, third.detail) == (Outcome.SKIPPED, "already done")
    assert enqueue_window("tests.hourly", since, until, force=True).outcome == Outcome.ENQUEUED
    run_worker("default")
    assert len(calls("tests.hourly")) == 2
    assert Job.objects.filter(status=JobStatus.SUCCEEDED).count() == 2


def test_a_window_run_inline_is_not_run_again_by_its_queued_job(run_worker) -> None:
    since, until = at("2024-05-01 10:00"), at("2024-05-01 11:00")
    job = enqueue_window("tests.hourly", since, until).job
    assert run_window("tests.hourly", since, until).outcome == Outcome.RAN
    run_worker("default")
    assert len(calls("tests.hourly")) == 1
    assert Job.objects.get(pk=job.pk).result["outcome"] == "skipped"  # type: ignore[union-attr,index]


def test_a_window_left_running_is_taken_again_only_if_its_job_finished() -> None:
    since, until = at("2024-05-01 10:00"), at("2024-05-01 11:00")
    dead = Job.objects.create(name="tests.hourly", queue="default", status=JobStatus.FAILED)
    window = AggregationWindow.objects.create(
        name="tests.hourly", since=since, until=until, status=WindowStatus.RUNNING, job=dead
    )
    assert run_window("tests.hourly", since, until).outcome == Outcome.RAN
    # Running inline (no job): another caller leaves it alone unless forced.
    AggregationWindow.objects.filter(pk=window.pk).update(status=WindowStatus.RUNNING, job=None)
    skipped = run_window("tests.hourly", since, until)
    assert (skipped.outcome, skipped.detail) == (Outcome.SKIPPED, "already running")
    assert run_window("tests.hourly", since, until, force=True).outcome == Outcome.RAN
    assert len(calls("tests.hourly")) == 2


def test_async_aggregations_run() -> None:
    assert run_window("tests.async_daily", at("2024-05-01"), at("2024-05-02")).outcome == Outcome.RAN
    assert calls("tests.async_daily") == [("2024-05-01T00:00:00+00:00", "2024-05-02T00:00:00+00:00")]


def test_windows_run_without_use_tz(settings) -> None:
    settings.USE_TZ = False
    settings.TIME_ZONE = "Europe/Paris"
    since = datetime(2024, 5, 1, 12, 0)  # naive: 12:00 Paris time, 10:00 UTC
    result = run_window("tests.hourly", since, since + timedelta(hours=1))
    assert result.outcome == "ran"
    assert calls("tests.hourly") == [("2024-05-01T10:00:00+00:00", "2024-05-01T11:00:00+00:00")]
    row = AggregationWindow.objects.get(name="tests.hourly")
    assert (row.since, row.status) == (since, WindowStatus.DONE)
