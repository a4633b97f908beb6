"""The worker's prefetch (``WORKER_PREFETCH``): ids popped in one round trip and run from a
local buffer. Real Redis, real database, real workers (in this process, or a subprocess
that is stopped or killed)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from django_asyncjobs import Job, JobStatus
from django_asyncjobs.engine.execution import cancel_job
from django_asyncjobs.scheduling.recovery import recover
from django_asyncjobs.worker import build_worker
from tests.conftest import wait_for
from tests.testapp.jobs import add, record, waits_for_file

pytestmark = pytest.mark.django_db(transaction=True)

QUEUE = "rq:queue:default"
HOLD_LONG = "600"  # WORKER_BATCH_HOLD of the subprocess workers: they keep their batch


@pytest.fixture(autouse=True)
def _workers_keep_their_batch(subprocess_env: dict[str, str]) -> None:
    subprocess_env["ASYNCJOBS_TEST_BATCH_HOLD"] = HOLD_LONG


def _ids(jobs: list[Job]) -> list[str]:
    return [str(job.pk) for job in jobs]


def _blocked_batch(start_worker, redis, tmp_path: Path, *args: str) -> tuple[Job, list[Job], object]:
    """A worker that popped and claimed a blocking job and five ``add`` jobs in one batch and
    runs the first (``WORKER_BATCH_HOLD`` long enough that it keeps the five meanwhile)."""
    release = str(tmp_path / "release")
    blocker = waits_for_file.enqueue(release)
    rest = [add.enqueue(i, i) for i in range(5)]
    process = start_worker("default", *args)
    wait_for(lambda: Job.objects.filter(pk=blocker.pk, status=JobStatus.RUNNING).exists(), what="the blocker")
    return blocker, rest, process


def test_priority_order_is_kept_within_a_pop(asyncjobs_worker) -> None:
    low = [add.enqueue(i, i) for i in range(3)]
    high = [record.enqueue(f"high-{i}") for i in range(3)]
    run = asyncjobs_worker("high", "default")
    assert run.job_ids == _ids(high) + _ids(low)


def test_max_jobs_leaves_the_rest_in_the_queue_in_order(redis) -> None:
    jobs = [add.enqueue(i, i) for i in range(5)]
    worker = build_worker(["default"])
    worker.work(burst=True, logging_level="WARNING", max_jobs=2)
    assert [job_id.decode() for job_id in redis.lrange(QUEUE, 0, -1)] == _ids(jobs[2:])
    statuses = dict(Job.objects.values_list("pk", "status"))
    assert [statuses[job.pk] for job in jobs] == [JobStatus.SUCCEEDED] * 2 + [JobStatus.QUEUED] * 3


def test_a_warm_stop_hands_buffered_ids_back_to_the_front_in_order(start_worker, redis, tmp_path) -> None:
    blocker, rest, process = _blocked_batch(start_worker, redis, tmp_path)
    assert redis.llen(QUEUE) == 0  # all six were popped at once
    later = add.enqueue(9, 9)  # pushed behind while the worker holds the batch
    process.send_signal(signal.SIGTERM)
    (tmp_path / "release").touch()
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert [job_id.decode() for job_id in redis.lrange(QUEUE, 0, -1)] == [*_ids(rest), str(later.pk)]
    assert Job.objects.get(pk=blocker.pk).status == JobStatus.SUCCEEDED
    assert set(Job.objects.filter(pk__in=_ids(rest)).values_list("status", flat=True)) == {JobStatus.QUEUED}


def test_with_prefetch_1_the_worker_holds_one_id(asyncjobs_worker, redis, settings) -> None:
    settings.ASYNCJOBS = {**settings.ASYNCJOBS, "WORKER_PREFETCH": 1}
    jobs = [add.enqueue(i, i) for i in range(3)]
    worker = build_worker(["default"])
    worker.work(burst=True, logging_level="WARNING", max_jobs=1)
    assert redis.llen(QUEUE) == 2
    assert asyncjobs_worker("default").job_ids == _ids(jobs[1:])


def test_a_job_cancelled_while_its_id_is_buffered_never_starts(start_worker, redis, tmp_path) -> None:
    _, rest, _ = _blocked_batch(start_worker, redis, tmp_path)
    assert redis.llen(QUEUE) == 0
    assert cancel_job(rest[2])  # claimed in the batch: the worker is told to drop it
    (tmp_path / "release").touch()
    others = [job.pk for i, job in enumerate(rest) if i != 2]
    wait_for(lambda: Job.objects.filter(pk__in=others, status=JobStatus.SUCCEEDED).count() == 4, what="the rest")
    cancelled = Job.objects.get(pk=rest[2].pk)
    assert (cancelled.status, cancelled.result) == (JobStatus.CANCELLED, None)


def test_sigkill_mid_batch_loses_nothing_and_runs_nothing_twice(
    start_worker, asyncjobs_worker, redis, tmp_path
) -> None:
    _, rest, process = _blocked_batch(start_worker, redis, tmp_path)
    assert redis.llen(QUEUE) == 0  # the five are only in the dead worker's batch now
    process.kill()
    process.wait(10)
    # Claimed together, never started: recovery gives their attempt back (the worker may
    # have died before starting them), once per job.
    assert set(Job.objects.filter(pk__in=_ids(rest)).values_list("status", flat=True)) == {JobStatus.RUNNING}
    report = recover(grace=0, heartbeat_timeout=0)
    assert set(_ids(rest)) <= set(report.put_back)
    (tmp_path / "release").touch()
    run = asyncjobs_worker("default")
    assert set(_ids(rest)) <= set(run.job_ids)
    jobs = Job.objects.filter(pk__in=_ids(rest))
    assert [(job.status, job.attempts) for job in jobs] == [(JobStatus.SUCCEEDED, 1)] * 5
    # Delivered again (a second recovery pass, a duplicate push): nothing runs twice.
    assert recover(grace=0, heartbeat_timeout=0).requeued == []
    for job in rest:
        redis.rpush(QUEUE, str(job.pk))
    run = asyncjobs_worker("default")
    assert [(job.status, job.attempts) for job in Job.objects.filter(pk__in=_ids(rest))] == [
        (JobStatus.SUCCEEDED, 1)
    ] * 5
