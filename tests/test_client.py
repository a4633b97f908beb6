"""The Python client against a live server and a real worker process."""

from __future__ import annotations

import pytest

from django_asyncjobs.client import AsyncJobsClient, Busy, backoff_delay, retry_after_seconds
from django_asyncjobs.engine.capacity import forget_states
from tests.conftest import wait_for
from tests.testapp.jobs import noop

pytestmark = pytest.mark.django_db(transaction=True)


def test_retry_after_parsing() -> None:
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a past date: no wait


def test_backoff_is_exponential_with_equal_jitter() -> None:
    assert [backoff_delay(n, 0.5, 30, rand=lambda: 0.0) for n in range(4)] == [0.25, 0.5, 1.0, 2.0]
    assert [backoff_delay(n, 0.5, 30, rand=lambda: 1.0) for n in range(4)] == [0.5, 1.0, 2.0, 4.0]
    assert backoff_delay(20, 0.5, 30, rand=lambda: 1.0) == 30


def test_submit_waits_for_the_offloaded_result(live_server, start_worker) -> None:
    start_worker("default")
    seen: list[str] = []
    client = AsyncJobsClient(live_server.url, poll_min=0.05)
    result = client.submit("/api/echo/", json_body={"n": 1}, on_progress=lambda job: seen.append(job["status"]))
    assert result.status == 201
    assert result.json() == {"received": {"n": 1}}
    assert result.job is not None and result.job["status"] == "succeeded"
    assert seen[-1] == "succeeded"


def test_busy_server_is_retried_after_retry_after(settings, live_server, start_worker, redis) -> None:
    settings.ASYNCJOBS = {
        **settings.ASYNCJOBS,
        "QUEUE_LIMITS": {"default": {"MAX_DEPTH": 1}},
        "BACKPRESSURE_CACHE_SECONDS": 0,
        "RETRY_AFTER_MIN": 3,
        "RETRY_AFTER_MAX": 3,
    }
    forget_states()
    noop.enqueue()  # fills the queue
    busy: list[tuple[int, float]] = []
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        # Instead of waiting: free the queue the first time the client backs off.
        waits.append(seconds)
        if len(busy) == 1 and len(waits) == 1:
            start_worker("default")
            wait_for(lambda: redis.llen("rq:queue:default") == 0, what="the worker to drain the queue")

    client = AsyncJobsClient(live_server.url, sleep=sleep, poll_min=0.05)
    result = client.submit("/api/echo/", json_body={"n": 2}, on_busy=lambda n, delay: busy.append((n, delay)))
    assert result.json() == {"received": {"n": 2}}
    assert busy[0][0] == 1
    assert busy[0][1] >= 3  # never sooner than Retry-After


def test_gives_up_after_max_retries(settings, live_server) -> None:
    settings.ASYNCJOBS = {
        **settings.ASYNCJOBS,
        "QUEUE_LIMITS": {"default": {"MAX_DEPTH": 1}},
        "BACKPRESSURE_CACHE_SECONDS": 0,
    }
    forget_states()
    noop.enqueue()
    delays: list[float] = []
    client = AsyncJobsClient(live_server.url, max_retries=3, sleep=delays.append, timeout=10)
    with pytest.raises(Busy) as info:
        client.submit("/api/echo/", json_body={})
    assert info.value.attempts == 4
    assert len(delays) == 3
