"""``asyncjobs_worker --threads N``: several jobs at once in one worker process, every guarantee
per thread. Real Redis, real database, real workers (in this process, or a subprocess for
signals). Concurrency is proven with barriers (jobs that succeed only if all of them run at
the same time), never with timings."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from django_asyncjobs import Job, JobStatus
from django_asyncjobs.engine.execution import Outcome
from django_asyncjobs.worker import ThreadedWorker, Worker
from django_asyncjobs.worker.supervisor import WorkerRun
from tests.conftest import wait_for
from tests.faults import Output
from tests.testapp.jobs import (
    add,
    async_meets,
    async_progress,
    async_spins,
    async_spins_until,
    meets,
    raises_base,
    record,
    spins,
    spins_until,
)
from tests.testapp.models import Call

pytestmark = pytest.mark.django_db(transaction=True)


def run_threaded(asyncjobs_worker, threads: int, *queues: str):
    return asyncjobs_worker(*queues, worker_class=ThreadedWorker, threads=threads)


def test_n_jobs_that_wait_for_each_other_all_succeed_with_n_threads(asyncjobs_worker) -> None:
    jobs = [meets.enqueue("barrier", 4) for _ in range(4)]
    run = run_threaded(asyncjobs_worker, 4)
    assert run.outcomes[Outcome.SUCCEEDED] == 4, [job.error for job in run.jobs()]
    threads = {job.result for job in run.jobs()}
    assert len(threads) == 4 and all(name.startswith("asyncjobs-executor-") for name in threads)
    assert sorted(run.job_ids) == sorted(str(job.pk) for job in jobs)


def test_the_single_thread_worker_cannot_pass_the_barrier(asyncjobs_worker, settings, monkeypatch) -> None:
    # The proof's other half: one at a time, the first job waits for the others in vain.
    monkeypatch.setattr("tests.testapp.jobs.BARRIER_WAIT", 0.5)
    first = meets.enqueue("alone", 2, max_attempts=1)
    meets.enqueue("alone", 2, max_attempts=1)
    asyncjobs_worker()
    first.refresh_from_db()
    assert (first.status, first.error.splitlines()[-1]) == (JobStatus.FAILED, "RuntimeError: only 1 of 2 arrived")


def test_async_jobs_run_concurrently_on_one_event_loop_with_the_orm_in_their_threads(asyncjobs_worker) -> None:
    jobs = [async_meets.enqueue("async-barrier", 3) for _ in range(3)]
    run = run_threaded(asyncjobs_worker, 3)
    assert run.outcomes[Outcome.SUCCEEDED] == 3, [job.error for job in run.jobs()]
    results = [job.result for job in run.jobs()]
    assert {result["loop"] for result in results} == {"asyncjobs-event-loop"}
    # Thread-sensitive sync_to_async calls ran in the executor thread that claimed the job.
    orm_threads = [result["orm"] for result in results]
    assert len(set(orm_threads)) == 3 and all(name.startswith("asyncjobs-executor-") for name in orm_threads)
    assert sorted(result["job"] for result in results) == sorted(str(job.pk) for job in jobs)


def test_async_jobs_keep_current_job_and_progress(asyncjobs_worker) -> None:
    job = async_progress.enqueue()
    run_threaded(asyncjobs_worker, 2)
    job.refresh_from_db()
    assert (job.status, job.result, job.progress) == (JobStatus.SUCCEEDED, "half way", 100)


def test_each_job_runs_once_under_duplicate_delivery(asyncjobs_worker, redis) -> None:
    jobs = [record.enqueue(f"dup-{index}") for index in range(5)]
    for job in jobs:
        redis.rpush("rq:queue:high", *[str(job.pk)] * 40)
    run = run_threaded(asyncjobs_worker, 8, "high")
    assert run.outcomes[Outcome.SUCCEEDED] == 5
    assert run.outcomes[Outcome.SKIPPED] == 200
    for index in range(5):
        assert Call.objects.filter(label=f"dup-{index}").count() == 1


def test_a_timeout_fails_only_the_job_of_that_thread(asyncjobs_worker) -> None:
    timed_out = spins.enqueue("limit")
    async_timed_out = async_spins.enqueue("async-limit")
    # Two jobs that hold their threads past the others' time limit, and succeed.
    others = [meets.enqueue("others", 2, hold=2.5) for _ in range(2)]
    run = run_threaded(asyncjobs_worker, 4)
    assert run.outcomes[Outcome.FAILED] == 2 and run.outcomes[Outcome.SUCCEEDED] == 2
    for job in (timed_out, async_timed_out):
        job.refresh_from_db()
        assert job.status == JobStatus.FAILED
        assert job.failed_attempts[-1]["exception_class"] == "django_asyncjobs.exceptions.JobTimeout"
        assert "Task exceeded maximum timeout value (1 seconds)" in job.error
    for job in others:
        job.refresh_from_db()
        assert job.status == JobStatus.SUCCEEDED, job.error


def test_what_a_job_raises_fails_only_its_attempt(asyncjobs_worker) -> None:
    failing = [raises_base.enqueue(kind) for kind in ("exit", "keyboard")]
    fine = [add.enqueue(i, i) for i in range(4)]
    run = run_threaded(asyncjobs_worker, 3)
    assert run.worker.exit_status == 0
    for job in failing:
        job.refresh_from_db()
        assert (job.status, job.attempts) == (JobStatus.FAILED, 2)
    assert [job.result for job in Job.objects.filter(pk__in=[j.pk for j in fine]).order_by("result")] == [0, 2, 4, 6]


def test_every_running_job_gets_heartbeats(asyncjobs_worker, settings) -> None:
    settings.ASYNCJOBS = {**settings.ASYNCJOBS, "HEARTBEAT_INTERVAL": 0.2}
    jobs = [meets.enqueue("beats", 3, hold=1.0) for _ in range(3)]
    run_threaded(asyncjobs_worker, 3)
    for job in jobs:
        job.refresh_from_db()
        assert job.status == JobStatus.SUCCEEDED, job.error
        assert job.heartbeat_at > job.started_at


def test_max_jobs_hands_out_no_more(redis) -> None:
    from django_asyncjobs.worker import build_worker

    jobs = [add.enqueue(i, 1) for i in range(6)]
    worker = build_worker(["default"], worker_class=ThreadedWorker, threads=4)
    worker.work(burst=True, max_jobs=3)
    assert worker.outcomes[Outcome.SUCCEEDED] == 3
    statuses = [Job.objects.get(pk=job.pk).status for job in jobs]
    assert statuses == [JobStatus.SUCCEEDED] * 3 + [JobStatus.QUEUED] * 3
    assert redis.lrange("rq:queue:default", 0, -1) == [str(job.pk).encode() for job in jobs[3:]]


def test_threads_come_from_the_setting_or_the_option(settings) -> None:
    run = WorkerRun(["default"], None, False, True, None, "WARNING", Worker, False, threads=3)
    assert run.threads == 3
    settings.ASYNCJOBS = {**settings.ASYNCJOBS, "WORKER_THREADS": 2}
    from django_asyncjobs.worker import build_worker

    assert build_worker(["default"], worker_class=ThreadedWorker).threads == 2
    with pytest.raises(CommandError, match="--threads must be at least 1, got 0"):
        call_command("asyncjobs_worker", "--threads", "0")


# -- signals and commands: worker subprocesses ------------------------------------------------


def _running(*jobs: Job) -> bool:
    return Job.objects.filter(pk__in=[job.pk for job in jobs], status=JobStatus.RUNNING).count() == len(jobs)


def test_a_cancel_interrupts_only_the_thread_running_that_job(start_worker, tmp_path: Path) -> None:
    release = tmp_path / "release"
    cancelled = spins_until.enqueue(str(release), "cancelled")
    async_cancelled = async_spins_until.enqueue(str(release), "async-cancelled")
    kept = [spins_until.enqueue(str(release), "kept"), async_spins_until.enqueue(str(release), "async-kept")]
    process = start_worker("default", "--threads", "4")
    output = Output(process)
    wait_for(lambda: _running(cancelled, async_cancelled, *kept), what="the four jobs to run")
    wait_for(lambda: Call.objects.filter(label__endswith=":start").count() == 4, what="the functions to start")
    assert cancelled.cancel() and async_cancelled.cancel()
    # Every thread was busy: these run only in the threads the cancels freed.
    after = [add.enqueue(1, 1), add.enqueue(2, 2)]
    wait_for(
        lambda: Job.objects.filter(pk__in=[j.pk for j in after], status=JobStatus.SUCCEEDED).count() == 2,
        what="the cancelled jobs' threads to take the next jobs",
    )
    assert Job.objects.filter(pk__in=[j.pk for j in kept], status=JobStatus.RUNNING).count() == 2
    release.touch()
    wait_for(lambda: Job.objects.filter(status=JobStatus.SUCCEEDED).count() == 4, what="the others to succeed")
    assert not Call.objects.filter(label__in=["cancelled:end", "async-cancelled:end"]).exists()
    for job in (cancelled, async_cancelled):
        job.refresh_from_db()
        assert job.status == JobStatus.CANCELLED
    process.send_signal(signal.SIGTERM)
    output.wait(30)
    assert process.returncode == 0, output.text


def test_a_warm_stop_lets_every_running_job_finish_and_leaves_the_rest_queued(
    start_worker, redis, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    running = [spins_until.enqueue(str(release), f"warm-{i}") for i in range(2)]
    running.append(async_spins_until.enqueue(str(release), "warm-async"))
    waiting = [add.enqueue(i, i) for i in range(3)]
    process = start_worker("default", "--threads", "3")
    output = Output(process)
    wait_for(lambda: _running(*running), what="three jobs to run")
    # Claimed is not started (the main thread claims before a thread takes the row): wait for the functions.
    wait_for(lambda: Call.objects.filter(label__endswith=":start").count() == 3, what="the functions to start")
    process.send_signal(signal.SIGINT)
    time.sleep(1.5)
    assert process.poll() is None, output.text  # warm: still running the jobs
    release.touch()
    output.wait(30)
    assert process.returncode == 0, output.text
    for job in running:
        job.refresh_from_db()
        assert job.status == JobStatus.SUCCEEDED, job.error
    assert all(Job.objects.get(pk=job.pk).status == JobStatus.QUEUED for job in waiting)
    assert redis.lrange("rq:queue:default", 0, -1) == [str(job.pk).encode() for job in waiting]


def test_a_cold_stop_interrupts_every_running_job_and_records_each_attempt(start_worker, tmp_path: Path) -> None:
    never = tmp_path / "never"
    running = [spins_until.enqueue(str(never), f"cold-{i}") for i in range(2)]
    running.append(async_spins_until.enqueue(str(never), "cold-async"))
    process = start_worker("default", "--threads", "3")
    output = Output(process)
    wait_for(lambda: _running(*running), what="three jobs to run")
    # Claimed is not started (the main thread claims before a thread takes the row): wait for the functions.
    wait_for(lambda: Call.objects.filter(label__endswith=":start").count() == 3, what="the functions to start")
    process.send_signal(signal.SIGINT)
    time.sleep(1.5)  # a second signal within 1 s is taken for a duplicate of the first
    process.send_signal(signal.SIGTERM)
    output.wait(30)
    assert process.returncode == 0, output.text
    for job in running:
        job.refresh_from_db()
        assert (job.status, job.attempts) == (JobStatus.QUEUED, 1), job.error  # retried: an attempt was left
        assert job.failed_attempts[0]["exception_class"] == "django_asyncjobs.exceptions.JobInterrupted"
    assert not Call.objects.filter(label__endswith=":end").exists()


def test_successes_are_written_by_one_writer_and_announced_once_written(asyncjobs_worker) -> None:
    from django_asyncjobs.signals import job_succeeded

    jobs = [record.enqueue(f"writer-{i}") for i in range(40)]
    seen: list[tuple[str, str]] = []

    def check(sender: object, job: Job, **kwargs: object) -> None:
        seen.append((str(job.pk), Job.objects.get(pk=job.pk).status))

    job_succeeded.connect(check, dispatch_uid="test-writer")
    try:
        run = run_threaded(asyncjobs_worker, 4, "high")
    finally:
        job_succeeded.disconnect(dispatch_uid="test-writer")
    assert sorted(job_id for job_id, _ in seen) == sorted(str(job.pk) for job in jobs)
    assert {status for _, status in seen} == {JobStatus.SUCCEEDED}  # sent once the row says so
    assert [outcome for _, outcome in run.ran].count(Outcome.SUCCEEDED) == 40
    assert Call.objects.filter(label__startswith="writer-").count() == 40
