"""Concurrency limits (``@job(max_concurrency=N)``, per ``concurrency_key``): at most N run
at once across every worker, slots kept in Redis with a lease. An attempt that finds every
slot taken waits (``scheduled``, its attempt given back). Real Redis, real database, real
workers: several processes, threads proven to overlap with barriers."""

from __future__ import annotations

import itertools

import pytest
from django.utils import timezone

from django_asyncjobs import Job, JobStatus
from django_asyncjobs.conf import app_settings
from django_asyncjobs.engine.broker import keys
from django_asyncjobs.engine.functions import JobOptions
from django_asyncjobs.engine.outcomes import Outcome
from django_asyncjobs.worker import ThreadedWorker
from tests.conftest import wait_for
from tests.testapp.jobs import bad_key, exclusive, per_account, unstable_key
from tests.testapp.models import Call

pytestmark = pytest.mark.django_db(transaction=True)


def test_one_at_a_time_across_worker_processes_never_overlaps(start_worker) -> None:
    jobs = [exclusive.enqueue(f"x-{i}") for i in range(8)]
    for _ in range(3):
        start_worker("default", "--threads", "2")
    wait_for(
        lambda: Job.objects.filter(pk__in=[job.pk for job in jobs], status=JobStatus.SUCCEEDED).count() == 8,
        seconds=120,
        what="the eight jobs, one at a time",
    )
    runs = sorted((call.data["start"], call.data["end"]) for call in Call.objects.all())
    assert len(runs) == 8
    for (_, end), (start, _) in itertools.pairwise(runs):
        assert start >= end, "two runs overlapped"
    assert set(Job.objects.filter(pk__in=[j.pk for j in jobs]).values_list("attempts", flat=True)) == {1}


def test_jobs_of_other_keys_run_at_once_and_the_same_key_waits(asyncjobs_worker) -> None:
    meeting = [per_account.enqueue(account, "accounts", 2) for account in (1, 2)]
    run = asyncjobs_worker(worker_class=ThreadedWorker, threads=3)
    assert run.outcomes[Outcome.SUCCEEDED] == 2, [job.error for job in run.jobs()]
    same = [per_account.enqueue(3, "same", 1, hold=1.0) for _ in range(2)]
    run = asyncjobs_worker(worker_class=ThreadedWorker, threads=3)
    assert run.outcomes[Outcome.DEFERRED] >= 1  # the second found the account's slot taken
    assert not run.outcomes[Outcome.FAILED]
    waiting = Job.objects.filter(pk__in=[job.pk for job in same], status=JobStatus.SCHEDULED)
    assert {row.progress_message for row in waiting} <= {"waiting: 1 running at most"}
    Job.objects.filter(status=JobStatus.SCHEDULED).update(run_at=timezone.now())
    asyncjobs_worker(worker_class=ThreadedWorker, threads=3)
    rows = Job.objects.filter(pk__in=[job.pk for job in same])
    assert set(rows.values_list("status", "attempts")) == {(JobStatus.SUCCEEDED, 1)}  # waiting used no attempt
    assert all(Job.objects.get(pk=job.pk).status == JobStatus.SUCCEEDED for job in meeting)


def test_the_slot_is_free_again_after_the_job(asyncjobs_worker, redis) -> None:
    exclusive.enqueue("a")
    asyncjobs_worker()
    assert redis.zcard(keys.running_key(exclusive.name)) == 0
    exclusive.enqueue("b")
    asyncjobs_worker()
    assert Call.objects.count() == 2


def test_a_concurrency_key_that_raises_is_refused_at_enqueue(asyncjobs_worker) -> None:
    with pytest.raises(ValueError, match=r"concurrency_key of tests\.testapp\.jobs\.bad_key raised ZeroDivisionError"):
        bad_key.enqueue(0)
    assert not Job.objects.exists()


def test_a_concurrency_key_that_raises_when_the_job_runs_fails_the_attempt(asyncjobs_worker) -> None:
    job = bad_key.enqueue(1)
    Job.objects.filter(pk=job.pk).update(args=[0])  # as a chain passes a result to its next step
    asyncjobs_worker()
    row = Job.objects.get(pk=job.pk)
    assert row.status == JobStatus.FAILED and "ZeroDivisionError" in row.error


def test_a_concurrency_key_that_returns_no_key_is_refused_at_enqueue() -> None:
    with pytest.raises(TypeError, match=r"concurrency_key of .*unstable_key must return a str or an int, got object"):
        unstable_key.enqueue(1)
    with pytest.raises(TypeError, match="concurrency_key"):
        unstable_key.enqueue_many([(1,), (2,)])
    assert not Job.objects.exists()


def test_a_key_of_another_type_in_redis_does_not_stop_the_job(asyncjobs_worker, redis) -> None:
    redis.set(keys.running_key(exclusive.name), "not a set")
    exclusive.enqueue("c")
    asyncjobs_worker()
    assert Call.objects.filter(label="c").count() == 1


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"max_concurrency": 1, "concurrency_key": "account"}, "concurrency_key"),
        ({"concurrency_key": len}, "max_concurrency"),
    ],
)
def test_bad_options_name_themselves(options: dict[str, object], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        JobOptions(**options)  # type: ignore[arg-type]


def test_a_tasks_backend_takes_max_concurrency_but_no_key_function() -> None:
    assert JobOptions.from_setting({"MAX_CONCURRENCY": 2}).max_concurrency == 2
    with pytest.raises(ValueError, match="CONCURRENCY_KEY"):
        JobOptions.from_setting({"CONCURRENCY_KEY": "x"})


# -- review: what Redis holds is not trusted -------------------------------------------------


def test_a_slot_leased_beyond_any_lease_in_redis_is_held_one_lease_at_most(asyncjobs_worker, redis) -> None:
    key = keys.running_key(exclusive.name)
    redis.zadd(key, {"not-ours": float("inf")})
    job = exclusive.enqueue("after the lease")
    run = asyncjobs_worker()
    assert run.outcomes[Outcome.DEFERRED] == 1 and not run.outcomes[Outcome.ERROR]  # the slot is held...
    assert Job.objects.get(pk=job.pk).attempts == 0
    seconds, micros = redis.time()
    lease_us = (60 + app_settings.HEARTBEAT_TIMEOUT + 1) * 1_000_000  # exclusive's timeout, and a second
    held_until = redis.zscore(key, "not-ours")
    assert held_until is not None and held_until <= seconds * 1_000_000 + micros + lease_us  # ...for a lease


def test_the_slot_of_a_killed_worker_is_held_until_its_attempt_is_recovered(
    start_worker, asyncjobs_worker, redis
) -> None:
    from django_asyncjobs.scheduling.recovery import recover

    killed = exclusive.enqueue("killed", 30, max_attempts=2)
    process = start_worker("default")
    wait_for(lambda: Job.objects.get(pk=killed.pk).status == JobStatus.RUNNING, what="the job to start")
    process.kill()  # SIGKILL: its function never returns, the slot is not freed
    process.wait()
    assert redis.zrange(keys.running_key(exclusive.name), 0, -1) == [str(killed.pk).encode()]
    exclusive.enqueue("other")
    assert asyncjobs_worker().outcomes[Outcome.DEFERRED] == 1  # the slot is still held (its lease)
    assert recover(heartbeat_timeout=0).retried == [str(killed.pk)]
    Job.objects.filter(pk=killed.pk).update(args=["killed", 0])  # the retry is quick
    asyncjobs_worker()
    row = Job.objects.get(pk=killed.pk)
    assert (row.status, row.attempts) == (JobStatus.SUCCEEDED, 2)  # the retry took its own slot back
    assert redis.zcard(keys.running_key(exclusive.name)) == 0  # and freed it
