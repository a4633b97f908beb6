"""Running jobs on a real in-process worker against the real test Redis."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.utils import timezone
from redis import Redis

from django_asyncjobs import Job, JobStatus
from django_asyncjobs.engine.broker import push
from django_asyncjobs.engine.execution import Outcome, run_job
from django_asyncjobs.signals import job_failed, job_started, job_succeeded
from tests.testapp.jobs import (
    add,
    always_fails,
    async_add,
    flaky,
    record,
    reports_progress,
    returns_object,
    sleeps,
    whoami,
)
from tests.testapp.models import Call

pytestmark = pytest.mark.django_db(transaction=True)


def test_worker_runs_job_and_stores_result(run_worker) -> None:
    job = add.enqueue(2, 3)
    worker = run_worker()
    job.refresh_from_db()
    assert (job.status, job.result, job.attempts, job.progress) == (JobStatus.SUCCEEDED, 5, 1, 100)
    assert job.worker == worker.name
    assert job.started_at and job.finished_at and job.enqueued_at
    assert job.enqueued_at <= job.started_at <= job.finished_at


def test_worker_leaves_no_rq_bookkeeping_in_redis(run_worker, redis: Redis) -> None:
    jobs = add.enqueue_many([(i, i) for i in range(20)])
    run_worker()
    assert all(Job.objects.get(pk=j.pk).status == JobStatus.SUCCEEDED for j in jobs)
    assert not [key for key in redis.keys("rq:job:*")]
    assert redis.llen("rq:queue:default") == 0


def test_same_message_delivered_100_times_runs_once(run_worker, redis: Redis) -> None:
    job = record.enqueue("once")
    for _ in range(99):
        redis.rpush("rq:queue:high", str(job.pk))
    assert redis.llen("rq:queue:high") == 100
    worker = run_worker("high")
    assert Call.objects.filter(label="once").count() == 1
    assert worker.outcomes[Outcome.SUCCEEDED] == 1
    assert worker.outcomes[Outcome.SKIPPED] == 99
    assert Job.objects.get(pk=job.pk).status == JobStatus.SUCCEEDED


def test_re_pushing_a_finished_job_does_not_run_it_again(run_worker) -> None:
    job = record.enqueue("again")
    run_worker("high")
    push([job])
    run_worker("high")
    assert Call.objects.filter(label="again").count() == 1


def test_unknown_job_id_is_refused(run_worker, redis: Redis, caplog) -> None:
    redis.rpush("rq:queue:default", "not-a-uuid", "0b9c1c36-9d0c-4a39-8d44-4a8f3c1f6d2e")
    with caplog.at_level(logging.INFO, logger="django_asyncjobs"):
        worker = run_worker("default")
    assert worker.outcomes[Outcome.REFUSED] == 2
    dropped = [r.getMessage() for r in caplog.records if r.name == "django_asyncjobs.worker"]
    assert dropped == [
        'message.dropped content=not-a-uuid reason="not a job id"',
        'message.dropped content=0b9c1c36-9d0c-4a39-8d44-4a8f3c1f6d2e reason="no such job"',
    ]


def test_row_naming_an_unregistered_function_is_refused_not_imported(run_worker, settings) -> None:
    job = Job.objects.create(name="os.system", queue="default", args=["echo pwned"])
    push([job])  # pushing must not need the function either
    run_worker("default")
    job.refresh_from_db()
    assert (job.status, job.attempts) == (JobStatus.SCHEDULED, 0)  # put back for a worker that has the code
    assert "No job is registered as 'os.system'" in job.error
    settings.ASYNCJOBS = {**settings.ASYNCJOBS, "UNKNOWN_JOB_TIMEOUT": 0}
    Job.objects.filter(pk=job.pk).update(run_at=job.created_at)
    run_worker("default")
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "No job is registered as 'os.system'" in job.error


def test_failure_is_recorded_with_traceback(run_worker) -> None:
    job = always_fails.enqueue()
    run_worker()
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.attempts == 1
    assert "ValueError: this job always fails" in job.error
    assert "Traceback" in job.error


def test_retries_until_success(run_worker) -> None:
    job = flaky.enqueue("flaky-ok", fail_times=2)
    run_worker()
    job.refresh_from_db()
    assert (job.status, job.attempts, job.result) == (JobStatus.SUCCEEDED, 3, "ok")
    assert Call.objects.filter(label="flaky-ok").count() == 3
    assert "flaky failure 2" in job.error  # the last failed attempt stays visible


def test_retries_end_failed_after_max_attempts(run_worker) -> None:
    job = flaky.enqueue("flaky-bad", fail_times=5)
    run_worker()
    job.refresh_from_db()
    assert (job.status, job.attempts) == (JobStatus.FAILED, 3)
    assert "flaky failure 3" in job.error
    assert Call.objects.filter(label="flaky-bad").count() == 3


def test_retry_with_backoff_is_scheduled(run_worker) -> None:
    from django_asyncjobs.engine.functions import JobOptions

    before = timezone.now()
    original = flaky.options
    flaky.options = JobOptions(max_attempts=3, retry_backoff=60, retry_jitter=False)
    try:
        job = flaky.enqueue("flaky-later", fail_times=1)
        run_worker()
    finally:
        flaky.options = original
    job.refresh_from_db()
    assert job.status == JobStatus.SCHEDULED
    assert job.attempts == 1
    assert job.run_at is not None and job.run_at >= before + timedelta(seconds=60)


def test_per_call_max_attempts_overrides_the_decorator(run_worker) -> None:
    job = flaky.enqueue("flaky-once", fail_times=1, max_attempts=1)
    run_worker()
    job.refresh_from_db()
    assert (job.status, job.attempts) == (JobStatus.FAILED, 1)


def test_timeout_fails_the_attempt_with_a_clear_error(run_worker) -> None:
    job = sleeps.enqueue(5)
    run_worker()
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "JobTimeout" in job.error
    assert "maximum timeout value (1 seconds)" in job.error


def test_progress_is_persisted(run_worker) -> None:
    job = reports_progress.enqueue(4)
    run_worker()
    job.refresh_from_db()
    assert (job.status, job.progress, job.progress_message) == (JobStatus.SUCCEEDED, 100, "step 4 of 4")


def test_set_progress_validates() -> None:
    job = Job.objects.create(name="x", queue="default", status=JobStatus.RUNNING)
    with pytest.raises(ValueError, match="0 to 100"):
        job.set_progress(101)


def test_unserializable_return_value_fails_clearly(run_worker) -> None:
    job = returns_object.enqueue()
    run_worker()
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "return value" in job.error and "JSON" in job.error


def test_async_functions_run(run_worker) -> None:
    job = async_add.enqueue(20, 22)
    run_worker()
    job.refresh_from_db()
    assert (job.status, job.result) == (JobStatus.SUCCEEDED, 42)


def test_current_job_inside_a_job(run_worker) -> None:
    job = whoami.enqueue()
    run_worker()
    job.refresh_from_db()
    assert job.result["id"] == str(job.pk)
    assert job.result["attempts"] == 1


def test_delayed_job_runs_once_due(run_worker) -> None:
    job = add.enqueue(1, 1, delay=3600)
    run_worker()
    assert Job.objects.get(pk=job.pk).status == JobStatus.SCHEDULED
    Job.objects.filter(pk=job.pk).update(run_at=timezone.now() - timedelta(seconds=1))
    run_worker()
    job.refresh_from_db()
    assert (job.status, job.result) == (JobStatus.SUCCEEDED, 2)


def test_signals_are_sent(run_worker) -> None:
    seen: list[tuple[str, str]] = []

    def receiver(signal_name):
        def handler(sender, job, **kwargs):
            seen.append((signal_name, job.name.rsplit(".", 1)[-1]))

        return handler

    handlers = [
        (job_started, receiver("started")),
        (job_succeeded, receiver("succeeded")),
        (job_failed, receiver("failed")),
    ]
    for signal, handler in handlers:
        signal.connect(handler)
    try:
        add.enqueue(1, 2)
        run_worker()
        always_fails.enqueue()
        run_worker()
    finally:
        for signal, handler in handlers:
            signal.disconnect(handler)
    assert seen == [("started", "add"), ("succeeded", "add"), ("started", "always_fails"), ("failed", "always_fails")]


def test_run_job_directly_is_idempotent() -> None:
    job = add.enqueue(3, 4)
    assert run_job(str(job.pk)) == Outcome.SUCCEEDED
    assert run_job(str(job.pk)) == Outcome.SKIPPED


def test_async_job_reports_progress(run_worker) -> None:
    from tests.testapp.jobs import async_progress

    job = async_progress.enqueue()
    run_worker()
    job.refresh_from_db()
    assert (job.status, job.result) == (JobStatus.SUCCEEDED, "half way")


def test_failing_signal_receiver_does_not_stop_the_worker(run_worker) -> None:
    def broken(sender, job, **kwargs):
        raise RuntimeError("receiver bug")

    job_succeeded.connect(broken)
    try:
        jobs = add.enqueue_many([(1, 1), (2, 2)])
        worker = run_worker()
    finally:
        job_succeeded.disconnect(broken)
    assert worker.outcomes[Outcome.SUCCEEDED] == 2
    assert {Job.objects.get(pk=j.pk).status for j in jobs} == {JobStatus.SUCCEEDED}


def test_database_error_while_recording_does_not_stop_the_worker(run_worker) -> None:
    """A receiver of job_started that breaks the transaction stands in for a database outage."""
    from django.db import connection

    calls = []

    def break_connection(sender, job, **kwargs):
        if not calls:
            calls.append(job.pk)
            connection.close()
            raise RuntimeError("connection lost")

    job_started.connect(break_connection)
    try:
        _, second = add.enqueue_many([(1, 1), (2, 2)])
        worker = run_worker()
    finally:
        job_started.disconnect(break_connection)
    assert worker.outcomes[Outcome.SUCCEEDED] == 1
    assert Job.objects.get(pk=second.pk).status == JobStatus.SUCCEEDED


def test_foreign_rq_job_is_refused_and_left_in_redis(run_worker, redis: Redis) -> None:
    from rq import Queue

    foreign = Queue("default", connection=redis).enqueue("tests.testapp.jobs.add", 1, 2)
    worker = run_worker("default")
    assert worker.outcomes[Outcome.REFUSED] == 1
    assert redis.exists(f"rq:job:{foreign.id}")


def test_naive_run_at_when_use_tz_is_false(settings, run_worker) -> None:
    from datetime import datetime

    settings.USE_TZ = False
    job = add.enqueue(1, 2, run_at=datetime.now() + timedelta(hours=1))
    assert job.status == JobStatus.SCHEDULED


def test_jobs_with_a_priority_above_zero_are_pushed_to_the_front(redis: Redis) -> None:
    back = Job.objects.create(name=add.name, queue="default", args=[1, 1])
    front = [Job.objects.create(name=add.name, queue="default", args=[i, i], priority=p) for i, p in ((2, 1), (3, 5))]
    push([back, *front])
    assert [item.decode() for item in redis.lrange("rq:queue:default", 0, -1)] == [
        str(front[0].pk),
        str(front[1].pk),
        str(back.pk),
    ]


def test_every_failed_attempt_is_kept_with_its_worker_and_exception(run_worker) -> None:
    job = flaky.enqueue("kept", 2)
    worker = run_worker("default")
    job.refresh_from_db()
    assert (job.status, job.attempts) == (JobStatus.SUCCEEDED, 3)
    first, second = job.failed_attempts
    assert (first["attempt"], second["attempt"]) == (1, 2)
    assert first["worker"] == second["worker"] == worker.name
    assert first["exception_class"] == "builtins.RuntimeError"
    assert first["error"].endswith("RuntimeError: flaky failure 1\n")
    assert first["started_at"] <= first["finished_at"] <= second["started_at"]
