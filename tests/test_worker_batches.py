"""Batching (``WORKER_PREFETCH`` > 1): ids claimed in one statement, successes written in one
transaction with the next claim. Every guarantee of one-at-a-time holds: each attempt starts
once, an outcome is written only for the attempt that ran, nothing is lost when a worker dies,
and nothing waits unboundedly behind a long job. Real Redis, real database, real workers."""

from __future__ import annotations

from pathlib import Path

import pytest

from django_asyncjobs import Job, JobStatus
from django_asyncjobs.engine import batched
from django_asyncjobs.engine.execution import cancel_job
from django_asyncjobs.engine.outcomes import Outcome, record_lost_attempt
from django_asyncjobs.exceptions import WorkerLost, WorkerLostBeforeStart
from django_asyncjobs.scheduling.firing import promote_due_jobs
from django_asyncjobs.scheduling.recovery import recover
from django_asyncjobs.times.clock import database_now
from tests.conftest import wait_for
from tests.testapp.jobs import add, record, waits_for_file
from tests.testapp.models import Call

pytestmark = pytest.mark.django_db(transaction=True)

WORKER = "batch-test-worker"


def _path(error_class: type[BaseException]) -> str:
    return f"{error_class.__module__}.{error_class.__qualname__}"


def test_a_message_delivered_a_hundred_times_in_batches_runs_once(asyncjobs_worker, redis) -> None:
    job = record.enqueue("once")
    for _ in range(100):
        redis.rpush("rq:queue:high", str(job.pk))
    run = asyncjobs_worker("high")
    assert Call.objects.filter(label="once").count() == 1
    outcomes = [outcome for job_id, outcome in run.ran if job_id == str(job.pk)]
    assert outcomes.count(Outcome.SUCCEEDED) == 1
    assert outcomes.count(Outcome.SKIPPED) == 100
    job.refresh_from_db()
    assert (job.status, job.attempts, job.result) == (JobStatus.SUCCEEDED, 1, "once")


def test_many_jobs_in_batches_each_run_once_and_are_all_written(asyncjobs_worker) -> None:
    jobs = [record.enqueue(f"job-{i}") for i in range(150)]
    asyncjobs_worker("high")
    assert Call.objects.count() == 150
    statuses = set(Job.objects.filter(pk__in=[job.pk for job in jobs]).values_list("status", "attempts"))
    assert statuses == {(JobStatus.SUCCEEDED, 1)}


def test_a_success_is_written_while_a_later_job_of_its_batch_still_runs(
    start_worker, subprocess_env, tmp_path: Path
) -> None:
    subprocess_env["ASYNCJOBS_TEST_BATCH_HOLD"] = "600"  # the batch stays with the worker
    release = tmp_path / "release"
    fast = add.enqueue(1, 2)
    blocker = waits_for_file.enqueue(str(release))
    start_worker("default")
    # Its success waited for the batch's next transaction; the heartbeat thread wrote it.
    wait_for(lambda: Job.objects.get(pk=fast.pk).status == JobStatus.SUCCEEDED, what="the fast job's success")
    assert Job.objects.get(pk=blocker.pk).status == JobStatus.RUNNING
    assert not Path(str(release) + ".done").exists()
    release.touch()
    wait_for(lambda: Job.objects.get(pk=blocker.pk).status == JobStatus.SUCCEEDED, what="the blocker")


def test_jobs_claimed_behind_a_long_job_are_released_to_other_workers(
    start_worker, subprocess_env, asyncjobs_worker, redis, tmp_path: Path
) -> None:
    subprocess_env["ASYNCJOBS_TEST_BATCH_HOLD"] = "0.2"
    release = tmp_path / "release"
    blocker = waits_for_file.enqueue(str(release))
    rest = [add.enqueue(i, i) for i in range(5)]
    start_worker("default")
    wait_for(lambda: Job.objects.get(pk=blocker.pk).status == JobStatus.RUNNING, what="the blocker")
    ids = {str(job.pk) for job in rest}
    wait_for(lambda: {i.decode() for i in redis.lrange("rq:queue:default", 0, -1)} == ids, what="the release")
    for job in Job.objects.filter(pk__in=ids):
        assert (job.status, job.attempts, job.worker, job.started_at) == (JobStatus.QUEUED, 0, "", None)
    run = asyncjobs_worker("default")  # another worker takes them while the blocker runs
    assert set(run.job_ids) == ids
    assert set(Job.objects.filter(pk__in=ids).values_list("status", "attempts")) == {(JobStatus.SUCCEEDED, 1)}
    assert Job.objects.get(pk=blocker.pk).status == JobStatus.RUNNING
    release.touch()
    wait_for(lambda: Job.objects.get(pk=blocker.pk).status == JobStatus.SUCCEEDED, what="the blocker")


def test_a_batch_commit_writes_only_the_attempts_still_running() -> None:
    first, second = add.enqueue(1, 1), add.enqueue(2, 2)
    claimed = batched.claim_many([first.pk, second.pk], WORKER)
    assert [job.pk for job in claimed] == [first.pk, second.pk]
    assert all(job.heartbeat_at is None and job.status == JobStatus.RUNNING for job in claimed)
    assert cancel_job(Job.objects.get(pk=second.pk))
    now = database_now()
    written, again = batched.commit([batched.Success(job, 2, now) for job in claimed], [second.pk], WORKER)
    assert (written, again) == ([True, False], [])  # the cancelled row is not claimed again either
    assert Job.objects.get(pk=first.pk).status == JobStatus.SUCCEEDED
    assert Job.objects.get(pk=second.pk).status == JobStatus.CANCELLED


def test_one_row_alone_is_claimed_started_unless_it_is_held() -> None:
    alone, held = add.enqueue(1, 1), add.enqueue(2, 2)
    assert batched.claim_many([alone.pk], WORKER)[0].heartbeat_at is not None  # about to run
    # Claimed ahead of a free thread: it may wait, so after a crash recovery must see it never started.
    assert batched.claim_many([held.pk], WORKER, held=True)[0].heartbeat_at is None
    assert Job.objects.get(pk=held.pk).heartbeat_at is None


def test_a_claimed_duplicate_is_claimed_once() -> None:
    job = add.enqueue(1, 1)
    assert [claimed.pk for claimed in batched.claim_many([job.pk, job.pk, job.pk], WORKER)] == [job.pk]
    assert Job.objects.get(pk=job.pk).attempts == 1


def test_a_lost_batch_row_gets_its_attempt_back_once_then_it_counts() -> None:
    job = add.enqueue(1, 1)
    other = add.enqueue(2, 2)
    lost = batched.claim_many([job.pk, other.pk], WORKER)[0]
    assert record_lost_attempt(lost, "WorkerLost: test") is Outcome.PUT_BACK
    row = Job.objects.get(pk=job.pk)
    assert (row.status, row.attempts) == (JobStatus.SCHEDULED, 0)
    assert row.failed_attempts[-1]["exception_class"] == _path(WorkerLostBeforeStart)
    promote_due_jobs()
    lost_again = batched.claim_many([job.pk, other.pk], WORKER)[0]
    assert lost_again.attempts == 1
    # A job that kills its worker again has its attempt counted: it cannot come back forever.
    assert record_lost_attempt(lost_again, "WorkerLost: test") is Outcome.FAILED
    row = Job.objects.get(pk=job.pk)
    assert (row.status, row.attempts, row.failed_attempts[-1]["exception_class"]) == (
        JobStatus.FAILED,
        1,
        _path(WorkerLost),
    )


def test_releasing_gives_the_attempt_back_and_only_to_this_attempt() -> None:
    job, other = add.enqueue(1, 1), add.enqueue(2, 2)
    claimed = batched.claim_many([job.pk, other.pk], WORKER)
    stale = Job.objects.get(pk=other.pk)
    stale.attempts += 5  # an attempt this worker does not hold
    released = batched.release([claimed[0], stale])
    assert [r.pk for r in released] == [job.pk]
    assert (Job.objects.get(pk=job.pk).status, Job.objects.get(pk=job.pk).attempts) == (JobStatus.QUEUED, 0)
    assert Job.objects.get(pk=other.pk).status == JobStatus.RUNNING


def test_sigkill_mid_batch_reruns_only_what_was_not_recorded(
    start_worker, subprocess_env, asyncjobs_worker, tmp_path: Path
) -> None:
    subprocess_env["ASYNCJOBS_TEST_BATCH_HOLD"] = "600"  # the batch stays with the worker
    release = tmp_path / "release"
    before = [record.enqueue(f"before-{i}", queue="default") for i in range(3)]
    blocker = waits_for_file.enqueue(str(release))
    after = [record.enqueue(f"after-{i}", queue="default") for i in range(2)]
    process = start_worker("default")
    wait_for(
        lambda: Job.objects.filter(pk__in=[job.pk for job in before], status=JobStatus.SUCCEEDED).count() == 3,
        what="the jobs before the blocker to be recorded",
    )
    assert Job.objects.get(pk=blocker.pk).status == JobStatus.RUNNING
    process.kill()
    process.wait(10)
    report = recover(grace=0, heartbeat_timeout=0)
    assert set(report.put_back) == {str(blocker.pk), *(str(job.pk) for job in after)}
    release.touch()
    asyncjobs_worker("default")
    assert sorted(Call.objects.values_list("label", flat=True)) == sorted(
        [f"before-{i}" for i in range(3)] + [f"after-{i}" for i in range(2)]
    )  # each ran once: the recorded ones were not run again
    rows = Job.objects.filter(pk__in=[job.pk for job in [*before, blocker, *after]])
    assert set(rows.values_list("status", "attempts")) == {(JobStatus.SUCCEEDED, 1)}
