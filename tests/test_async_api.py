"""The API for async code: ``aenqueue``, ``aenqueue_many``, ``Job.acancel``, ``Job.arefresh``,
with ``enqueue``'s transaction semantics, from async views and coroutines."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from django.db import transaction
from django.test import AsyncClient, Client
from redis import Redis

from django_asyncjobs import Job, JobStatus, aenqueue
from django_asyncjobs.engine.calls import Call
from tests.testapp.jobs import add

pytestmark = pytest.mark.django_db(transaction=True)


def waiting(redis: Redis) -> list[str]:
    return [item.decode() for item in redis.lrange("rq:queue:default", 0, -1)]


def test_an_async_view_enqueues_and_the_job_runs(redis, run_worker) -> None:
    response = Client().get("/enqueues-from-async/", {"a": "40"})
    assert response.status_code == 202
    assert response.json()["status"] == "queued"
    assert waiting(redis) == [response.json()["id"]]
    run_worker()
    job = Job.objects.get(pk=response.json()["id"])
    assert (job.status, job.result) == (JobStatus.SUCCEEDED, 42)


def test_an_async_client_under_asgi_too(redis, run_worker) -> None:
    async def request() -> dict[str, str]:
        response = await AsyncClient().get("/enqueues-from-async/", {"a": "1"})
        return response.json()

    data = async_to_sync(request)()
    assert waiting(redis) == [data["id"]]


def test_aenqueue_many_aenqueue_by_name_and_arefresh(redis, run_worker) -> None:
    async def enqueue_all() -> list[Job]:
        jobs = await add.aenqueue_many([(1, 1), {"a": 2, "b": 2}, Call((3,), {"b": 3})], queue="default")
        return [*jobs, await aenqueue("tests.testapp.jobs.add", 4, 4)]

    jobs = async_to_sync(enqueue_all)()
    assert waiting(redis) == [str(job.pk) for job in jobs]
    run_worker()

    async def results() -> list[object]:
        return [(await job.arefresh()).result for job in jobs]

    assert async_to_sync(results)() == [2, 4, 6, 8]


def test_aenqueue_inside_atomic_pushes_on_commit_and_not_on_rollback(redis) -> None:
    """The enqueue runs in the sync thread that holds the transaction: the row is part of it, and
    its message is pushed when it commits (none when it rolls back), as with ``enqueue``."""
    with transaction.atomic():
        job = async_to_sync(add.aenqueue)(1, 2)
        assert waiting(redis) == []
    assert waiting(redis) == [str(job.pk)]
    with pytest.raises(RuntimeError), transaction.atomic():
        async_to_sync(add.aenqueue)(3, 4)
        raise RuntimeError("rolled back")
    assert Job.objects.count() == 1
    assert waiting(redis) == [str(job.pk)]


def test_acancel_cancels_and_withdraws_the_message(redis) -> None:
    job = add.enqueue(1, 2)
    assert async_to_sync(job.acancel)() is True
    assert job.status == JobStatus.CANCELLED
    assert waiting(redis) == []
    assert async_to_sync(job.acancel)() is False
