"""A worker that holds claimed rows while it is paused or cut off from the database for
longer than ``HEARTBEAT_TIMEOUT``: recovery (on another host) takes the rows back, and another
worker may claim and run them. When the stalled worker goes on, it must not start them: each
attempt starts once. Found while building the several-hosts harness (``make test-scale``),
where a host whose link is cut for 30 s can come back to claims answered after recovery took
the jobs; these tests reproduce it every time (they fail without ``heartbeat.confirm_claim``).

Real database and Redis; the stall is a sleep longer than ``HEARTBEAT_INTERVAL``.
"""

from __future__ import annotations

import time
from collections import deque
from contextlib import nullcontext
from typing import Any

import pytest

from django_asyncjobs import Job, JobStatus
from django_asyncjobs.engine import batched, states
from django_asyncjobs.engine.batching import Batch
from django_asyncjobs.engine.execution import Outcome, record_lost_attempt, run_job
from django_asyncjobs.engine.heartbeat import JobHeartbeat, confirm_claim
from django_asyncjobs.exceptions import WorkerLost
from django_asyncjobs.scheduling.firing import promote_due_jobs
from django_asyncjobs.scheduling.recovery import recover
from django_asyncjobs.worker.batches import run_batched
from tests.testapp.jobs import record
from tests.testapp.models import Call

pytestmark = pytest.mark.django_db(transaction=True)

WORKER = "stalled-worker"
KEY = "rq:queue:high"


@pytest.fixture(autouse=True)
def short_heartbeats(settings: Any) -> None:
    settings.ASYNCJOBS = {**settings.ASYNCJOBS, "HEARTBEAT_INTERVAL": 0.05, "HEARTBEAT_TIMEOUT": 0.15}


def _stall() -> None:
    time.sleep(0.1)  # longer than HEARTBEAT_INTERVAL: the worker was paused or cut off


def _batch() -> Batch:
    return Batch(WORKER, size=10, window=0.005, hold=600, push_back=lambda ids: None, outcomes={})


def _run(batch: Batch, job: Job) -> Outcome:
    return run_batched(
        batch,
        str(job.pk),
        KEY,
        deque(),
        guard=lambda seconds, job_id: nullcontext(),
        stop_requested=lambda: False,
        heartbeat=JobHeartbeat(WORKER),
    )


def test_rows_of_a_batch_taken_back_while_their_worker_stalled_are_not_run() -> None:
    jobs = [record.enqueue(f"stalled-{i}") for i in range(3)]
    batch = _batch()
    batch.claim([(KEY, job.pk) for job in jobs])
    _stall()
    # Recovery on another host puts the rows back (none had sent a heartbeat); another worker
    # claims one of them.
    assert sorted(recover(heartbeat_timeout=0).put_back) == sorted(str(job.pk) for job in jobs)
    promote_due_jobs()
    assert states.claim(jobs[1].pk, "other-worker") is not None

    assert [_run(batch, job) for job in jobs] == [Outcome.SKIPPED] * 3
    assert not Call.objects.filter(label__startswith="stalled-").exists()
    rows = {job.pk: Job.objects.get(pk=job.pk) for job in jobs}
    assert (rows[jobs[1].pk].status, rows[jobs[1].pk].worker) == (JobStatus.RUNNING, "other-worker")
    assert {rows[jobs[0].pk].status, rows[jobs[2].pk].status} == {JobStatus.QUEUED}


def test_a_batch_row_that_waited_long_and_is_still_held_runs_once() -> None:
    jobs = [record.enqueue(f"held-{i}") for i in range(2)]
    batch = _batch()
    batch.claim([(KEY, job.pk) for job in jobs])
    _stall()
    assert [_run(batch, job) for job in jobs] == [Outcome.SUCCEEDED] * 2
    batch.flush()
    assert Call.objects.filter(label__startswith="held-").count() == 2
    assert set(Job.objects.filter(pk__in=[job.pk for job in jobs]).values_list("status", flat=True)) == {
        JobStatus.SUCCEEDED
    }


def test_a_row_claimed_ahead_and_taken_back_meanwhile_is_not_run() -> None:
    job = record.enqueue("ahead")
    claimed_at = time.monotonic()
    [row] = batched.claim_many([job.pk], WORKER, held=True)  # a threaded worker's row claimed ahead
    _stall()
    recover(heartbeat_timeout=0)
    promote_due_jobs()
    assert run_job(str(job.pk), worker_name=WORKER, claimed=row, claimed_at=claimed_at) is Outcome.SKIPPED
    assert not Call.objects.filter(label="ahead").exists()
    assert Job.objects.get(pk=job.pk).status == JobStatus.QUEUED


def test_a_claim_answered_after_recovery_took_the_job_does_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    job = record.enqueue("late")
    claim = states.claim

    def answered_late(pk: Any, worker_name: str) -> Job | None:
        claimed = claim(pk, worker_name)
        _stall()  # the answer is held up (a cut link) past the heartbeat timeout...
        recover(heartbeat_timeout=0)  # ...and recovery on another host takes the job as lost
        return claimed

    monkeypatch.setattr(states, "claim", answered_late)
    assert run_job(str(job.pk), worker_name=WORKER) is Outcome.SKIPPED
    assert not Call.objects.filter(label="late").exists()
    row = Job.objects.get(pk=job.pk)
    assert (row.status, row.failed_attempts[-1]["exception_class"]) == (
        JobStatus.FAILED,
        f"{WorkerLost.__module__}.{WorkerLost.__qualname__}",
    )


@pytest.mark.parametrize("lost_before", [0, 1], ids=["first-loss-put-back", "second-loss-counted"])
def test_recovery_that_read_a_row_before_its_worker_confirmed_the_claim_leaves_it(lost_before: int) -> None:
    """Recovery reads a batch row that never beat; before its write, the stalled worker comes
    back and confirms the claim (its first heartbeat) and starts the job. Recovery's write is
    conditional on the NULL heartbeat it judged, so it is not applied: the job runs once, on
    the worker that holds it (the scale harness's link cut found both hosts running it)."""
    job = record.enqueue("confirmed-meanwhile")
    for _ in range(lost_before):  # an earlier loss before start: the next one is counted
        batched.claim_many([job.pk, job.pk], "lost-worker")
        _stall()
        assert recover(heartbeat_timeout=0).put_back == [str(job.pk)]
        promote_due_jobs()
    batch = _batch()
    batch.claim([(KEY, job.pk), (KEY, job.pk)])
    _stall()
    judged = Job.objects.get(pk=job.pk)  # what recovery read: running, heartbeat NULL, long ago
    assert (judged.status, judged.heartbeat_at) == (JobStatus.RUNNING, None)

    held = batch.take(str(job.pk))
    assert confirm_claim(held, batch.claimed_at)  # the worker goes on first

    assert record_lost_attempt(judged, "WorkerLost: test") is Outcome.SKIPPED
    row = Job.objects.get(pk=job.pk)
    assert (row.status, row.worker, row.attempts) == (JobStatus.RUNNING, WORKER, judged.attempts)
    assert row.heartbeat_at is not None
