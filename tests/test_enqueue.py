"""Creating jobs: rows, messages on commit, validation in the caller's process."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from redis import Redis
from rq.job import Job as RQJob
from rq.serializers import JSONSerializer

from django_asyncjobs import (
    EnqueueError,
    Job,
    JobNotRegistered,
    JobStatus,
    SerializationError,
    UnknownQueue,
    enqueue,
)
from django_asyncjobs.conf import app_settings
from django_asyncjobs.engine.broker import EXECUTOR
from django_asyncjobs.engine.calls import Call
from django_asyncjobs.engine.functions import job
from django_asyncjobs.engine.registry import unregister
from django_asyncjobs.exceptions import ConfigurationError
from tests.testapp.jobs import add, record

pytestmark = pytest.mark.django_db(transaction=True)


def queued_ids(redis: Redis, queue: str = "default") -> list[str]:
    return [value.decode() for value in redis.lrange(f"rq:queue:{queue}", 0, -1)]


def test_enqueue_saves_row_and_pushes_only_the_id(redis: Redis) -> None:
    job = add.enqueue(2, 3)

    row = Job.objects.get(pk=job.pk)
    assert (row.name, row.queue, row.status, row.args, row.kwargs) == (
        "tests.testapp.jobs.add",
        "default",
        JobStatus.QUEUED,
        [2, 3],
        {},
    )
    assert row.enqueued_at is not None
    assert queued_ids(redis) == [str(job.pk)]
    # RQ itself can read the message: a JSON-serialized call of our executor with the id.
    message = RQJob.fetch(str(job.pk), connection=redis, serializer=JSONSerializer)
    assert (message.func_name, message.args, message.kwargs) == (EXECUTOR, [str(job.pk)], {})
    assert (message.origin, message.get_status(), message.timeout) == ("default", "queued", 300)
    assert 0 < redis.ttl(f"rq:job:{job.pk}") <= app_settings.MESSAGE_TTL


def test_enqueue_by_name_and_queue_option(redis: Redis) -> None:
    job = enqueue("tests.testapp.jobs.add", 1, b=2, queue="low")
    assert (job.queue, job.args, job.kwargs) == ("low", [1], {"b": 2})
    assert queued_ids(redis, "low") == [str(job.pk)]


def test_function_is_still_callable_inline() -> None:
    assert add(2, 2) == 4
    assert not Job.objects.exists()


def test_message_is_pushed_only_after_commit(redis: Redis) -> None:
    with transaction.atomic():
        job = add.enqueue(1, 1)
        assert Job.objects.filter(pk=job.pk).exists()
        assert queued_ids(redis) == []
    assert queued_ids(redis) == [str(job.pk)]


def test_rolled_back_job_has_no_message(redis: Redis) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        add.enqueue(1, 1)
        raise RuntimeError("roll back")
    assert not Job.objects.exists()
    assert queued_ids(redis) == []


def test_enqueue_many_is_one_batch(redis: Redis) -> None:
    with CaptureQueriesContext(connection) as queries:
        jobs = add.enqueue_many([(1, 2), [3, 4], Call((5,), {"b": 6}), {"a": 7, "b": 8}])
    statements = [q["sql"].split()[0] for q in queries.captured_queries]
    assert [s for s in statements if s not in ("BEGIN", "COMMIT")] == ["INSERT"]
    assert [(j.args, j.kwargs) for j in jobs] == [([1, 2], {}), ([3, 4], {}), ([5], {"b": 6}), ([], {"a": 7, "b": 8})]
    assert queued_ids(redis) == [str(j.pk) for j in jobs]


def test_idempotency_key_returns_existing_job(redis: Redis) -> None:
    first = add.enqueue(1, 2, idempotency_key="order-7")
    second = add.enqueue(9, 9, idempotency_key="order-7")
    assert second.pk == first.pk
    assert Job.objects.count() == 1
    assert queued_ids(redis) == [str(first.pk)]
    # The key is unique per job name, not globally.
    other = record.enqueue("x", idempotency_key="order-7")
    assert other.pk != first.pk


def test_delay_schedules_without_a_message(redis: Redis) -> None:
    job = add.enqueue(1, 2, delay=timedelta(minutes=5))
    assert job.status == JobStatus.SCHEDULED
    assert job.run_at is not None and job.run_at > timezone.now() + timedelta(minutes=4)
    assert queued_ids(redis) == []


def test_run_at_in_the_past_queues_now(redis: Redis) -> None:
    job = add.enqueue(1, 2, run_at=timezone.now() - timedelta(seconds=5))
    assert job.status == JobStatus.QUEUED
    assert queued_ids(redis) == [str(job.pk)]


def test_owner_is_recorded(django_user_model) -> None:
    user = django_user_model.objects.create_user("ann")
    job = add.enqueue(1, 2, owner=user)
    assert Job.objects.get(pk=job.pk).owner == user


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda: add.enqueue(object(), 1), SerializationError, "positional argument 0"),
        (lambda: add.enqueue(1, b={1, 2}), SerializationError, "keyword argument 'b'"),
        (lambda: add.enqueue(float("nan"), 1), SerializationError, "positional argument 0"),
        (lambda: add.enqueue_many([{1: 2}]), SerializationError, "must be strings, got 1"),
        (lambda: add.enqueue_many([5]), TypeError, "enqueue_many() items are"),
        (lambda: enqueue("no.such.job"), JobNotRegistered, "'no.such.job'"),
        (lambda: add.enqueue(1, 2, queue="nope"), UnknownQueue, "'nope'"),
        (lambda: add.enqueue(1, 2, delay=-1), ValueError, "delay must not be negative"),
        (lambda: add.enqueue(1, 2, delay=timedelta(seconds=-1)), ValueError, "delay must not be negative"),
        (lambda: add.enqueue(1, 2, max_attempts=0), ValueError, "max_attempts must be an integer >= 1"),
        (lambda: add.enqueue(1, 2, run_at="tomorrow"), TypeError, "run_at must be a datetime"),
        (lambda: add.enqueue(1, 2, run_at=timezone.now(), delay=1), ValueError, "not both"),
    ],
)
def test_bad_input_fails_early_and_names_the_problem(call, error, words) -> None:
    with pytest.raises(error) as info:
        call()
    assert words in str(info.value)
    assert not Job.objects.exists()


def test_naive_run_at_is_refused() -> None:
    from datetime import datetime

    with pytest.raises(ValueError, match="timezone-aware"):
        add.enqueue(1, 2, run_at=datetime(2030, 1, 1))


def test_unknown_queue_is_a_configuration_error() -> None:
    assert issubclass(UnknownQueue, ConfigurationError)


def test_job_options_are_validated_at_decoration() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        job(max_attempts=0)
    with pytest.raises(ValueError, match="timeout"):
        job(timeout=-5)
    with pytest.raises(ValueError, match="max_attempts"):
        job(max_attempts=True)
    with pytest.raises(ValueError, match="retry_jitter"):
        job(retry_jitter="yes")  # type: ignore[arg-type]


def test_parameter_clashing_with_an_option_is_refused() -> None:
    def uses_delay(delay: int) -> None: ...

    with pytest.raises(ConfigurationError, match="delay"):
        job(name="tests.uses_delay")(uses_delay)
    unregister("tests.uses_delay")


def test_redis_down_keeps_the_row_queued(settings) -> None:
    settings.RQ_QUEUES = {**settings.RQ_QUEUES, "default": {"URL": "redis://127.0.0.1:1/0"}}
    job = add.enqueue(1, 2)
    assert Job.objects.get(pk=job.pk).status == JobStatus.QUEUED


def test_redis_down_raises_in_strict_mode_and_keeps_the_row(settings) -> None:
    settings.RQ_QUEUES = {**settings.RQ_QUEUES, "default": {"URL": "redis://127.0.0.1:1/0"}}
    with pytest.raises(EnqueueError) as info:
        add.enqueue(1, 2, strict=True)
    (job_id,) = info.value.job_ids
    assert Job.objects.get(pk=job_id).status == JobStatus.QUEUED
