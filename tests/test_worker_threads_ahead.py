"""A threaded worker claims a few rows ahead of its free threads (``worker/ahead.py``): those
rows keep every guarantee of a batch's rows. Real Redis, real database, worker subprocesses
(signals, SIGKILL); rows claimed ahead are seen in the database (``running``, no heartbeat,
their function not started), never inferred from timings."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from django_asyncjobs import Job, JobStatus
from django_asyncjobs.exceptions import WorkerLostBeforeStart
from django_asyncjobs.scheduling.recovery import recover
from django_asyncjobs.worker import ThreadedWorker
from django_asyncjobs.worker.ahead import ClaimAhead
from tests.conftest import wait_for
from tests.faults import Output
from tests.testapp.jobs import record, spins_until
from tests.testapp.models import Call

pytestmark = pytest.mark.django_db(transaction=True)


def _claimed_ahead(jobs: list[Job]) -> list[Job]:
    """Those of ``jobs`` a worker holds claimed and has not started."""
    rows = Job.objects.filter(pk__in=[job.pk for job in jobs], status=JobStatus.RUNNING, heartbeat_at=None)
    return [row for row in rows if not Call.objects.filter(label=row.args[0]).exists()]


def _start_busy_worker(start_worker, subprocess_env, tmp_path: Path, hold: str):
    """A 2-thread worker that ran quick jobs (so it claims ahead), then is kept busy by two
    jobs that run until ``release`` exists, with three more queued behind them."""
    subprocess_env["ASYNCJOBS_TEST_BATCH_HOLD"] = hold
    release = tmp_path / "release"
    quick = [record.enqueue(f"quick-{i}", queue="default") for i in range(6)]
    spinners = [spins_until.enqueue(str(release), f"spin-{i}") for i in range(2)]
    behind = [record.enqueue(f"after-{i}", queue="default") for i in range(3)]
    process = start_worker("default", "--threads", "2")
    wait_for(
        lambda: Job.objects.filter(pk__in=[job.pk for job in quick], status=JobStatus.SUCCEEDED).count() == 6,
        what="the quick jobs",
    )
    wait_for(lambda: Call.objects.filter(label__endswith=":start").count() == 2, what="both threads to be busy")
    return process, release, spinners, behind


def test_rows_are_claimed_ahead_only_once_jobs_have_run_and_not_for_jobs_that_run_long() -> None:
    ahead = ClaimAhead("w", threads=8, hold=0.25, enabled=True, stop_requested=lambda: False)
    assert ahead.extra() == 0  # nothing known yet: a first job may run long
    ahead.ran(0.02)
    assert 1 <= ahead.extra() <= 8
    for _ in range(40):
        ahead.ran(10.0)  # a thread comes free every 1.25 s: a row claimed ahead would wait past the hold
    assert ahead.extra() == 0
    assert ClaimAhead("w", threads=8, hold=0.25, enabled=False, stop_requested=lambda: False).extra() == 0


def test_rows_claimed_ahead_behind_long_jobs_are_released_to_other_workers(
    start_worker, subprocess_env, asyncjobs_worker, redis, tmp_path: Path
) -> None:
    _, release, spinners, behind = _start_busy_worker(start_worker, subprocess_env, tmp_path, hold="3")
    wait_for(lambda: _claimed_ahead(behind), what="rows claimed ahead of the busy threads")
    ids = {str(job.pk) for job in behind}
    wait_for(lambda: ids <= {i.decode() for i in redis.lrange("rq:queue:default", 0, -1)}, what="the release")
    for job in Job.objects.filter(pk__in=ids):
        assert (job.status, job.attempts, job.worker, job.started_at) == (JobStatus.QUEUED, 0, "", None)
    run = asyncjobs_worker("default")  # another worker takes them while the long jobs run
    assert set(run.job_ids) == ids
    assert set(Job.objects.filter(pk__in=ids).values_list("status", "attempts")) == {(JobStatus.SUCCEEDED, 1)}
    release.touch()
    wait_for(lambda: all(Job.objects.get(pk=job.pk).status == JobStatus.SUCCEEDED for job in spinners), what="end")
    assert Call.objects.filter(label__startswith="after-").count() == 3  # each ran once


def test_a_cancelled_row_claimed_ahead_never_runs(start_worker, subprocess_env, tmp_path: Path) -> None:
    process, release, _, behind = _start_busy_worker(start_worker, subprocess_env, tmp_path, hold="600")
    held = wait_for(lambda: _claimed_ahead(behind), what="rows claimed ahead of the busy threads")
    cancelled = held[0]
    assert cancelled.cancel()
    release.touch()
    others = [job for job in behind if job.pk != cancelled.pk]
    wait_for(
        lambda: Job.objects.filter(pk__in=[job.pk for job in others], status=JobStatus.SUCCEEDED).count() == 2,
        what="the others to run",
    )
    assert Job.objects.get(pk=cancelled.pk).status == JobStatus.CANCELLED
    assert not Call.objects.filter(label=cancelled.args[0]).exists()
    output = Output(process)
    process.send_signal(signal.SIGTERM)
    output.wait(30)
    assert process.returncode == 0, output.text


def test_a_warm_stop_releases_the_rows_claimed_ahead_to_the_front_of_their_queue(
    start_worker, subprocess_env, redis, tmp_path: Path
) -> None:
    process, release, spinners, behind = _start_busy_worker(start_worker, subprocess_env, tmp_path, hold="600")
    held = wait_for(lambda: _claimed_ahead(behind), what="rows claimed ahead of the busy threads")
    output = Output(process)
    process.send_signal(signal.SIGINT)
    time.sleep(1.5)  # the stop is taken (a signal is handled by the main thread) before a thread comes free
    assert process.poll() is None  # warm: the long jobs still run
    release.touch()
    output.wait(30)
    assert process.returncode == 0, output.text
    assert all(Job.objects.get(pk=job.pk).status == JobStatus.SUCCEEDED for job in spinners)
    for job in held:
        row = Job.objects.get(pk=job.pk)
        assert (row.status, row.attempts, row.worker) == (JobStatus.QUEUED, 0, "")
    waiting = [i.decode() for i in redis.lrange("rq:queue:default", 0, -1)]
    assert waiting[: len(held)] == [str(job.pk) for job in behind][: len(held)]
    assert sorted(waiting) == sorted(str(job.pk) for job in behind)
    assert not Call.objects.filter(label__startswith="after-").exists()


def test_sigkill_with_rows_claimed_ahead_puts_them_back_without_counting_an_attempt(
    start_worker, subprocess_env, asyncjobs_worker, tmp_path: Path
) -> None:
    process, release, _, behind = _start_busy_worker(start_worker, subprocess_env, tmp_path, hold="600")
    held = wait_for(lambda: _claimed_ahead(behind), what="rows claimed ahead of the busy threads")
    process.kill()
    process.wait(10)
    report = recover(grace=0, heartbeat_timeout=0)
    assert {str(job.pk) for job in held} <= set(report.put_back)
    for job in held:
        row = Job.objects.get(pk=job.pk)
        assert row.attempts == 0
        assert (
            row.failed_attempts[-1]["exception_class"]
            == f"{WorkerLostBeforeStart.__module__}.{WorkerLostBeforeStart.__qualname__}"
        )
    release.touch()
    asyncjobs_worker("default", worker_class=ThreadedWorker, threads=2)
    assert sorted(Call.objects.filter(label__startswith="after-").values_list("label", flat=True)) == [
        f"after-{i}" for i in range(3)
    ]  # each ran once
    assert set(Job.objects.filter(pk__in=[job.pk for job in behind]).values_list("status", flat=True)) == {
        JobStatus.SUCCEEDED
    }
