"""Rate limits (``@job(rate_limit=...)``): at most N starts per period across every worker,
counted in Redis; an attempt over the limit waits (``scheduled``, its attempt given back),
it does not fail. Real Redis, real database, real workers (several processes), and a
period (an hour) long enough that no test depends on how fast it runs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from django_asyncjobs import Job, JobStatus
from django_asyncjobs.engine.broker import keys
from django_asyncjobs.engine.functions import JobOptions
from django_asyncjobs.engine.limits import RateLimit
from django_asyncjobs.engine.outcomes import Outcome
from tests.testapp.jobs import limited
from tests.testapp.models import Call

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    ("given", "count", "period"),
    [("100/m", 100, 60.0), ("5/s", 5, 1.0), ("10/30s", 10, 30.0), ("2 / hour", 2, 3600.0), ((3, 7), 3, 7.0)],
)
def test_rates_are_read_from_text_or_a_pair(given: object, count: int, period: float) -> None:
    assert RateLimit.parse(given) == RateLimit(count, period)


@pytest.mark.parametrize("given", ["100", "0/m", "5/fortnight", (1, 0), (True, 5), "many/s"])
def test_a_bad_rate_names_rate_limit(given: object) -> None:
    with pytest.raises(ValueError, match="rate_limit"):
        JobOptions(rate_limit=given)  # type: ignore[arg-type]


def test_a_tasks_backend_takes_it_as_rate_limit() -> None:
    assert JobOptions.from_setting({"RATE_LIMIT": "5/m"}).rate_limit == RateLimit(5, 60.0)


def _statuses(jobs: list[Job]) -> list[tuple[str, int]]:
    rows = Job.objects.filter(pk__in=[job.pk for job in jobs])
    return sorted(rows.values_list("status", "attempts"))


def test_attempts_over_the_limit_wait_scheduled_and_are_not_failed(asyncjobs_worker) -> None:
    jobs = [limited.enqueue(f"run-{i}") for i in range(12)]
    asyncjobs_worker()
    assert Call.objects.count() == 5
    assert _statuses(jobs) == [(JobStatus.SCHEDULED, 0)] * 7 + [(JobStatus.SUCCEEDED, 1)] * 5
    waiting = Job.objects.filter(pk__in=[job.pk for job in jobs], status=JobStatus.SCHEDULED)
    now = timezone.now()
    for row in waiting:  # due when the limit allows a start: within the hour, not now
        assert row.run_at is not None and now < row.run_at <= now + timedelta(hours=1, seconds=5)
        assert (row.worker, row.started_at, row.error) == ("", None, "")
        assert row.progress_message == "waiting: rate limit"  # what the admin and the status page show


def test_the_limit_holds_across_worker_processes(start_worker) -> None:
    jobs = [limited.enqueue(f"many-{i}") for i in range(30)]
    processes = [start_worker("default", "--burst") for _ in range(3)]
    for process in processes:
        output, _ = process.communicate(timeout=120)
        assert process.returncode == 0, output[-2000:]
    assert Call.objects.count() == 5
    assert _statuses(jobs).count((JobStatus.SUCCEEDED, 1)) == 5
    assert _statuses(jobs).count((JobStatus.SCHEDULED, 0)) == 25


def test_a_waiting_attempt_starts_once_the_limit_allows_it(asyncjobs_worker, redis) -> None:
    jobs = [limited.enqueue(f"later-{i}") for i in range(7)]
    asyncjobs_worker()
    assert Call.objects.count() == 5
    redis.delete(keys.rate_key(limited.name))  # as if the hour had passed
    Job.objects.filter(status=JobStatus.SCHEDULED).update(run_at=timezone.now() - timedelta(seconds=1))
    asyncjobs_worker()
    assert Call.objects.count() == 7
    assert _statuses(jobs) == [(JobStatus.SUCCEEDED, 1)] * 7


def test_a_value_that_is_not_ours_in_the_key_does_not_stop_the_job(asyncjobs_worker, redis) -> None:
    redis.rpush(keys.rate_key(limited.name), "not a time")
    job = limited.enqueue("despite")
    asyncjobs_worker()
    assert Job.objects.get(pk=job.pk).status == JobStatus.SUCCEEDED


def test_a_queue_rate_bounds_the_starts_of_every_job_on_the_queue(asyncjobs_worker, settings) -> None:
    from tests.testapp.jobs import add

    settings.ASYNCJOBS = {**settings.ASYNCJOBS, "QUEUE_LIMITS": {"default": {"RATE": "3/h"}}}
    jobs = [add.enqueue(i, i) for i in range(5)]
    asyncjobs_worker()
    assert _statuses(jobs) == [(JobStatus.SCHEDULED, 0)] * 2 + [(JobStatus.SUCCEEDED, 1)] * 3


def test_a_job_under_both_limits_counts_against_both_only_when_it_starts(asyncjobs_worker, redis, settings) -> None:
    settings.ASYNCJOBS = {**settings.ASYNCJOBS, "QUEUE_LIMITS": {"default": {"RATE": "2/h"}}}
    jobs = [limited.enqueue(f"both-{i}") for i in range(4)]
    asyncjobs_worker()
    assert Call.objects.count() == 2  # the queue's 2/h is the tighter one
    redis.delete(keys.queue_rate_key("default"))  # the queue's hour has passed, not the job's
    Job.objects.filter(status=JobStatus.SCHEDULED).update(run_at=timezone.now() - timedelta(seconds=1))
    asyncjobs_worker()
    assert Call.objects.count() == 4  # the job's own 5/h had counted only the two that started
    assert _statuses(jobs) == [(JobStatus.SUCCEEDED, 1)] * 4


def test_a_queue_rate_that_is_not_a_rate_is_a_settings_error(settings) -> None:
    from django.core import checks

    settings.ASYNCJOBS = {**settings.ASYNCJOBS, "QUEUE_LIMITS": {"default": {"RATE": "fast"}}}
    errors = [message for message in checks.run_checks() if message.id and message.id.startswith("asyncjobs.")]
    assert any("RATE of 'default'" in message.msg for message in errors), errors


def test_no_window_of_one_period_holds_more_than_the_count(redis) -> None:
    """A sliding window, not a token bucket: after a burst of the count, the next start waits
    for the first to leave the window (a whole period), not one period ÷ count."""
    from django_asyncjobs.engine.broker.limits import rate_wait

    limit = ("tests.window", (3, 10.0))
    assert [rate_wait(redis, job=limit) for _ in range(3)] == [0.0, 0.0, 0.0]
    waited = rate_wait(redis, job=limit)
    assert 9.0 < waited <= 10.0
    assert redis.zcard(keys.rate_key("tests.window")) == 3  # a refused start is not counted


def test_fifty_per_window_across_three_worker_processes(start_worker) -> None:
    from tests.testapp.jobs import fifty_per_hour

    jobs = [fifty_per_hour.enqueue(f"fifty-{i}") for i in range(120)]
    processes = [start_worker("default", "--burst", "--threads", "2") for _ in range(3)]
    for process in processes:
        output, _ = process.communicate(timeout=180)
        assert process.returncode == 0, output[-2000:]
    assert Call.objects.count() == 50
    assert _statuses(jobs).count((JobStatus.SUCCEEDED, 1)) == 50
    assert _statuses(jobs).count((JobStatus.SCHEDULED, 0)) == 70


# -- review: what Redis holds is not trusted, a rate that cannot be kept is refused ----------


@pytest.mark.parametrize("score", [float("inf"), 1e18], ids=["infinite", "far-future"])
def test_a_start_dated_in_the_future_in_redis_makes_a_job_wait_one_period_at_most(
    asyncjobs_worker, redis, score: float
) -> None:
    redis.zadd(keys.rate_key(limited.name), {f"not-ours-{i}": score for i in range(5)})
    job = limited.enqueue("later")
    run = asyncjobs_worker()
    assert not run.outcomes[Outcome.ERROR]
    row = Job.objects.get(pk=job.pk)
    assert (row.status, row.attempts) == (JobStatus.SCHEDULED, 0)  # waits, nothing used up
    assert row.run_at is not None and row.run_at <= timezone.now() + timedelta(hours=1, seconds=5)
    now_us = int(redis.time()[0]) * 1_000_000 + int(redis.time()[1])
    assert max(score for _, score in redis.zrange(keys.rate_key(limited.name), 0, -1, withscores=True)) <= now_us


@pytest.mark.parametrize(
    "given",
    ["100/ms", "1/5ms", (1, float("inf")), (1, float("nan")), (1, 1e24), (1, timedelta(days=400))],
)
def test_a_rate_that_would_be_misread_or_cannot_be_kept_is_refused(given: object) -> None:
    with pytest.raises(ValueError, match="rate_limit"):
        JobOptions(rate_limit=given)  # type: ignore[arg-type]
