"""The worker command and cancellation, with real worker processes."""

from __future__ import annotations

import signal

import pytest
from django.core.management import CommandError, call_command

from django_asyncjobs import Job, JobStatus
from tests.conftest import run_stock_rq_worker, wait_for
from tests.testapp.jobs import add, record, waits
from tests.testapp.models import Call

pytestmark = pytest.mark.django_db(transaction=True)


def test_cancel_queued_job_never_runs(run_worker) -> None:
    job = record.enqueue("never")
    assert job.cancel() is True
    run_worker("high")
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert not Call.objects.filter(label="never").exists()


def test_cancel_finished_job_is_refused(run_worker) -> None:
    job = add.enqueue(1, 1)
    run_worker()
    job.refresh_from_db()
    assert job.cancel() is False
    assert Job.objects.get(pk=job.pk).status == JobStatus.SUCCEEDED


def test_cancel_running_job_stops_it(start_worker) -> None:
    job = waits.enqueue("cancel-me", 30)
    process = start_worker("--burst")
    wait_for(lambda: Call.objects.filter(label="cancel-me:start").exists(), what="the job to start")
    assert Job.objects.get(pk=job.pk).status == JobStatus.RUNNING
    assert job.cancel() is True
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert not Call.objects.filter(label="cancel-me:end").exists()


def test_worker_command_runs_jobs_with_concurrency(start_worker) -> None:
    jobs = add.enqueue_many([(i, 1) for i in range(30)])
    process = start_worker("default", "--burst", "--concurrency", "2")
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    rows = Job.objects.filter(pk__in=[j.pk for j in jobs])
    assert {row.status for row in rows} == {JobStatus.SUCCEEDED}
    assert sorted(row.result for row in rows) == [i + 1 for i in range(30)]


def test_warm_shutdown_finishes_the_current_job(start_worker) -> None:
    job = waits.enqueue("warm", 1)
    process = start_worker()
    wait_for(lambda: Call.objects.filter(label="warm:start").exists(), what="the job to start")
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert Call.objects.filter(label="warm:end").exists()


def test_worker_exits_clearly_when_redis_is_unreachable(settings) -> None:
    settings.RQ_QUEUES = {"default": {"URL": "redis://127.0.0.1:1/0"}}
    with pytest.raises(CommandError, match="Cannot reach Redis for queue 'default'"):
        call_command("asyncjobs_worker", "--burst")


def test_worker_refuses_unknown_queue() -> None:
    with pytest.raises(CommandError, match="Unknown queue 'nope'"):
        call_command("asyncjobs_worker", "nope", "--burst")


def test_worker_refuses_bad_concurrency() -> None:
    with pytest.raises(CommandError, match="--concurrency must be at least 1"):
        call_command("asyncjobs_worker", "--burst", "--concurrency", "0")


def test_stock_rq_worker_runs_our_messages(redis) -> None:
    """The message is a plain RQ job: a stock RQ worker with the JSON serializer runs it."""
    job = add.enqueue(20, 22)
    worker = run_stock_rq_worker()
    job.refresh_from_db()
    assert (job.status, job.result, job.worker) == (JobStatus.SUCCEEDED, 42, worker.name)


def test_django_rq_rqworker_with_our_worker_class(subprocess_env) -> None:
    import subprocess
    import sys

    job = add.enqueue(1, 2)
    result = subprocess.run(
        [sys.executable, "-m", "django", "rqworker", "--worker-class", "django_asyncjobs.worker.Worker", "--burst"],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    job.refresh_from_db()
    assert (job.status, job.result) == (JobStatus.SUCCEEDED, 3)


def test_worker_refuses_bad_worker_class() -> None:
    with pytest.raises(CommandError, match="cannot be imported"):
        call_command("asyncjobs_worker", "--burst", "--worker-class", "no.such.Worker")
    with pytest.raises(CommandError, match=r"is not a django_asyncjobs\.worker\.Worker"):
        call_command("asyncjobs_worker", "--burst", "--worker-class", "rq.SimpleWorker")
