"""Back pressure: the estimator (unit) and saturation of real queues (integration)."""

from __future__ import annotations

import pytest
from redis import Redis

from django_asyncjobs import Job
from django_asyncjobs.engine.broker import queue_stats
from django_asyncjobs.engine.capacity import (
    QueueFull,
    clamp_retry_after,
    estimate_wait,
    forget_states,
    queue_state,
)
from tests.testapp.jobs import add, noop

LIMITED = {"QUEUE_LIMITS": {"default": {"MAX_DEPTH": 3}}, "RETRY_AFTER_MIN": 2, "RETRY_AFTER_MAX": 120}


@pytest.fixture(autouse=True)
def fresh_states():
    forget_states()
    yield
    forget_states()


@pytest.mark.parametrize(
    ("depth", "throughput", "wait"),
    [(0, 0.0, 0.0), (0, 5.0, 0.0), (10, 5.0, 2.0), (100, 0.5, 200.0), (1, 0.0, None)],
)
def test_estimate_wait_is_littles_law(depth, throughput, wait) -> None:
    assert estimate_wait(depth, throughput) == wait


def test_retry_after_is_clamped(settings) -> None:
    settings.ASYNCJOBS = {"RETRY_AFTER_MIN": 2, "RETRY_AFTER_MAX": 120}
    assert clamp_retry_after(0.0) == 2
    assert clamp_retry_after(7.2) == 8
    assert clamp_retry_after(5000) == 120
    assert clamp_retry_after(None) == 120  # no throughput measured yet: the longest delay


@pytest.mark.django_db(transaction=True)
def test_saturated_queue_refuses_before_writing_a_row(settings) -> None:
    settings.ASYNCJOBS = LIMITED
    add.enqueue_many([(i, i) for i in range(3)])
    forget_states()
    with pytest.raises(QueueFull) as info:
        add.enqueue(9, 9)
    assert info.value.queue == "default"
    assert info.value.retry_after == 120  # nothing has finished yet, so the wait is unknown
    assert "3 waiting, limit 3" in str(info.value)
    assert Job.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_bulk_enqueue_counts_all_incoming_jobs(settings) -> None:
    settings.ASYNCJOBS = LIMITED
    with pytest.raises(QueueFull):
        add.enqueue_many([(i, i) for i in range(4)])
    assert not Job.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_queues_without_limits_never_refuse(settings) -> None:
    settings.ASYNCJOBS = {"QUEUE_LIMITS": {"high": {"MAX_DEPTH": 1}}}
    add.enqueue_many([(i, i) for i in range(10)])  # "default" has no limit
    assert Job.objects.count() == 10


@pytest.mark.django_db(transaction=True)
def test_workers_count_throughput_and_retry_after_follows(settings, run_worker) -> None:
    settings.ASYNCJOBS = LIMITED
    noop.enqueue_many([() for _ in range(3)])
    run_worker("default")
    stats = queue_stats("default")
    assert stats.depth == 0
    assert stats.throughput > 0
    noop.enqueue_many([() for _ in range(3)])
    forget_states()
    state = queue_state("default")
    assert state.is_saturated(incoming=1)
    expected = state.depth / state.throughput
    assert state.estimated_wait == pytest.approx(expected)
    with pytest.raises(QueueFull) as info:
        noop.enqueue()
    assert info.value.retry_after == clamp_retry_after(expected)


@pytest.mark.django_db(transaction=True)
def test_max_age_saturates_on_an_old_head_message(settings, redis: Redis) -> None:
    settings.ASYNCJOBS = {"QUEUE_LIMITS": {"default": {"MAX_AGE": 30}}}
    job = add.enqueue(1, 1)
    redis.hset(f"rq:job:{job.pk}", "enqueued_at", "2020-01-01T00:00:00.000000Z")
    forget_states()
    state = queue_state("default")
    assert state.oldest_age is not None and state.oldest_age > 30
    with pytest.raises(QueueFull, match="oldest waiting"):
        add.enqueue(2, 2)


@pytest.mark.django_db(transaction=True)
def test_state_is_cached_per_process(settings, redis: Redis) -> None:
    settings.ASYNCJOBS = {**LIMITED, "BACKPRESSURE_CACHE_SECONDS": 3600}
    first = queue_state("default")
    add.enqueue_many([(i, i) for i in range(2)])
    assert queue_state("default") is first
    assert queue_state("default", max_cache_age=0).depth == 2


@pytest.mark.django_db(transaction=True)
def test_redis_down_lets_work_through(settings) -> None:
    settings.ASYNCJOBS = LIMITED
    settings.RQ_QUEUES = {**settings.RQ_QUEUES, "default": {"URL": "redis://127.0.0.1:1/0"}}
    job = add.enqueue(1, 1)  # kept as queued for recovery, not refused
    assert Job.objects.filter(pk=job.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_existing_idempotent_job_is_returned_even_when_full(settings) -> None:
    settings.ASYNCJOBS = {**LIMITED, "BACKPRESSURE_CACHE_SECONDS": 0}
    first = add.enqueue(1, 1, idempotency_key="k1")
    add.enqueue_many([(2, 2), (3, 3)])
    assert add.enqueue(1, 1, idempotency_key="k1").pk == first.pk
    with pytest.raises(QueueFull):
        add.enqueue(1, 1, idempotency_key="k2")


@pytest.mark.django_db(transaction=True)
def test_bad_arguments_are_reported_before_back_pressure(settings) -> None:
    from django_asyncjobs import SerializationError

    settings.ASYNCJOBS = {**LIMITED, "QUEUE_LIMITS": {"default": {"MAX_DEPTH": 1}}, "BACKPRESSURE_CACHE_SECONDS": 0}
    add.enqueue(1, 1)
    with pytest.raises(SerializationError):
        add.enqueue(object(), 1)


@pytest.mark.django_db(transaction=True)
def test_skipped_messages_do_not_count_as_throughput(run_worker, redis) -> None:
    job = noop.enqueue()
    job.cancel()
    run_worker("default")
    assert queue_stats("default").throughput == 0


# Cancelling frees room at once


@pytest.mark.django_db(transaction=True)
def test_cancelling_queued_jobs_frees_room_at_once(settings, redis: Redis) -> None:
    """The cancelled jobs' messages leave Redis with the cancel: the next enqueue and an admin
    retry go through without a worker having run (and with the depth cached for a minute)."""
    from django_asyncjobs.engine.operations import cancel_jobs, retry_jobs

    first, second, third = noop.enqueue(), noop.enqueue(), noop.enqueue()
    settings.ASYNCJOBS = {**LIMITED, "BACKPRESSURE_CACHE_SECONDS": 60}
    with pytest.raises(QueueFull):  # the depth of 3 is now cached for a minute
        noop.enqueue()
    report = cancel_jobs(Job.objects.filter(pk__in=[first.pk, second.pk]))
    assert report.done == 2
    waiting = [item.decode() for item in redis.lrange("rq:queue:default", 0, -1)]
    assert waiting == [str(third.pk)]
    assert not redis.exists(f"rq:job:{first.pk}") and not redis.exists(f"rq:job:{second.pk}")
    assert retry_jobs(Job.objects.filter(pk=first.pk)).done == 1  # the admin's retry, right after
    fourth = noop.enqueue()
    assert fourth.status == "queued"
    assert redis.llen("rq:queue:default") == 3
    assert third.cancel()  # one job: Job.cancel()
    assert [item.decode() for item in redis.lrange("rq:queue:default", 0, -1)] == [str(first.pk), str(fourth.pk)]


@pytest.mark.django_db(transaction=True)
def test_a_cancel_rolled_back_keeps_the_message(redis: Redis) -> None:
    from django.db import transaction

    job = noop.enqueue()
    with pytest.raises(RuntimeError), transaction.atomic():
        assert job.cancel()
        raise RuntimeError("rolled back")
    assert Job.objects.get(pk=job.pk).status == "queued"
    assert redis.lrange("rq:queue:default", 0, -1) == [str(job.pk).encode()]
