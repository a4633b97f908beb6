"""Recovery with real processes: messages Redis lost, and jobs whose worker died."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from django_asyncjobs import Job, JobStatus
from django_asyncjobs.engine.broker import get_connection, get_queue
from django_asyncjobs.scheduling.recovery import recover
from tests.conftest import wait_for
from tests.testapp.jobs import add, record, sleeps_on_first_attempt, waits_for_release
from tests.testapp.models import Call

pytestmark = pytest.mark.django_db(transaction=True)


def queue_length(name: str) -> int:
    return int(get_connection(name).llen(get_queue(name).key))


def test_flushall_loses_nothing(redis, run_worker) -> None:
    jobs = record.enqueue_many([(f"flush-{i}",) for i in range(200)])
    assert queue_length("high") == 200
    redis.flushall()
    assert queue_length("high") == 0

    report = recover(grace=0)

    assert sorted(report.requeued) == sorted(str(job.pk) for job in jobs)
    assert queue_length("high") == 200
    run_worker("high")
    rows = Job.objects.filter(pk__in=[job.pk for job in jobs])
    assert {row.status for row in rows} == {JobStatus.SUCCEEDED}
    assert {row.attempts for row in rows} == {1}
    labels = list(Call.objects.filter(label__startswith="flush-").values_list("label", flat=True))
    assert sorted(labels) == sorted(f"flush-{i}" for i in range(200))  # each ran exactly once


def test_messages_still_waiting_are_not_pushed_twice() -> None:
    add.enqueue_many([(i, i) for i in range(5)])
    report = recover(grace=0)
    assert report.requeued == []
    assert queue_length("default") == 5


def test_a_message_popped_by_a_worker_that_died_before_claiming_is_pushed_again(run_worker) -> None:
    job = add.enqueue(2, 3)
    popped = get_connection("default").lpop(get_queue("default").key)
    assert popped.decode() == str(job.pk)  # taken, as by a worker killed right after the pop
    assert recover(grace=0).requeued == [str(job.pk)]
    run_worker("default")
    job.refresh_from_db()
    assert (job.status, job.result) == (JobStatus.SUCCEEDED, 5)


def test_recent_jobs_get_a_grace_period(redis) -> None:
    add.enqueue(1, 1)
    redis.flushall()
    assert recover(grace=3600).requeued == []


def test_dry_run_changes_nothing(redis) -> None:
    add.enqueue_many([(i, i) for i in range(3)])
    redis.flushall()
    report = recover(grace=0, dry_run=True)
    assert len(report.requeued) == 3
    assert queue_length("default") == 0


def test_worker_killed_mid_job_is_retried(start_worker, run_worker) -> None:
    job = sleeps_on_first_attempt.enqueue("survivor", max_attempts=2)
    process = start_worker("default")
    wait_for(lambda: Job.objects.get(pk=job.pk).status == JobStatus.RUNNING, what="the job to start")
    process.kill()  # SIGKILL: no chance to record anything
    process.wait()
    assert Job.objects.get(pk=job.pk).status == JobStatus.RUNNING  # what a dead worker leaves behind

    report = recover(heartbeat_timeout=0)

    assert report.lost == [str(job.pk)]
    assert report.retried == [str(job.pk)]
    run_worker("default")
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert job.attempts == 2
    assert "WorkerLost" in job.error  # the lost attempt stays on record
    assert list(Call.objects.filter(label="survivor").values_list("data", flat=True)) == [{"attempt": 2}]


def test_worker_killed_on_the_last_attempt_fails_the_job_with_the_reason(start_worker) -> None:
    job = sleeps_on_first_attempt.enqueue("doomed", max_attempts=1)
    process = start_worker("default")
    wait_for(lambda: Job.objects.get(pk=job.pk).status == JobStatus.RUNNING, what="the job to start")
    process.kill()
    process.wait()

    report = recover(heartbeat_timeout=0)

    assert report.failed == [str(job.pk)]
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error.startswith("WorkerLost: worker ")
    assert "during attempt 1 of 1" in job.error
    assert "no attempts are left" in job.error
    assert job.finished_at is not None


def test_a_live_worker_keeps_its_long_job(start_worker, subprocess_env) -> None:
    subprocess_env["ASYNCJOBS_TEST_HEARTBEAT_INTERVAL"] = "0.1"
    job = waits_for_release.enqueue("long")
    process = start_worker("default", "--burst")
    running = wait_for(lambda: Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).first(), what="the job to start")
    wait_for(lambda: Job.objects.get(pk=job.pk).heartbeat_at > running.started_at, what="a heartbeat after the start")

    assert recover(heartbeat_timeout=60).lost == []

    Call.objects.create(label="release")
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert job.error == ""


def test_recovery_does_not_touch_a_job_whose_worker_beat_meanwhile(start_worker) -> None:
    job = waits_for_release.enqueue("beating")
    process = start_worker("default", "--burst")
    wait_for(lambda: Job.objects.get(pk=job.pk).status == JobStatus.RUNNING, what="the job to start")
    stale = Job.objects.get(pk=job.pk)
    Job.objects.filter(pk=job.pk).update(heartbeat_at=stale.heartbeat_at.replace(year=2100))  # a newer beat

    from django_asyncjobs.engine.execution import Outcome, record_lost_attempt

    assert record_lost_attempt(stale, "WorkerLost: test") is Outcome.SKIPPED
    assert Job.objects.get(pk=job.pk).status == JobStatus.RUNNING
    Call.objects.create(label="release")
    process.communicate(timeout=60)
    assert Job.objects.get(pk=job.pk).status == JobStatus.SUCCEEDED


def test_recover_command_reports(redis, capsys) -> None:
    add.enqueue_many([(i, i) for i in range(4)])
    redis.flushall()
    call_command("asyncjobs_recover", "--dry-run", "--grace", "0")
    out = capsys.readouterr().out
    assert "Dry run. 4 queued job(s) missing from Redis would be pushed again." in out
    assert queue_length("default") == 0
    call_command("asyncjobs_recover", "--grace", "0", "--verbosity", "2")
    out = capsys.readouterr().out
    assert "4 queued job(s) missing from Redis were pushed again." in out
    assert out.count("pushed again: ") == 4
    assert queue_length("default") == 4


def test_recover_command_says_what_the_grace_period_left_unchecked(redis, capsys) -> None:
    add.enqueue_many([(i, i) for i in range(3)])
    redis.flushall()  # right after the enqueue: the jobs are younger than RECOVERY_GRACE
    call_command("asyncjobs_recover")
    out = capsys.readouterr().out
    assert "0 queued job(s) missing from Redis were pushed again." in out
    assert "3 queued job(s) younger than the grace period (60s) were not checked" in out
    assert "run with --grace 0" in out
    call_command("asyncjobs_recover", "--grace", "0")
    out = capsys.readouterr().out
    assert "3 queued job(s) missing from Redis were pushed again." in out
    assert "younger than the grace period" not in out
    assert queue_length("default") == 3


def test_recover_command_rejects_negative_durations() -> None:
    with pytest.raises(CommandError, match="--grace must be a number of seconds >= 0, got -1"):
        call_command("asyncjobs_recover", "--grace", "-1")


def test_a_worker_taken_for_dead_cannot_write_over_the_next_attempt() -> None:
    from django_asyncjobs.engine.outcomes import Outcome, record_failure, record_lost_attempt, record_success
    from django_asyncjobs.engine.states import claim

    job = add.enqueue(1, 1, max_attempts=3)
    first = claim(job.pk, "worker-a")
    assert first is not None
    assert record_lost_attempt(first, "WorkerLost: test") is Outcome.RETRYING
    second = claim(job.pk, "worker-b")
    assert second is not None and second.attempts == 2

    # worker-a was only slow; its outcome, whatever it is, must not touch attempt 2.
    assert record_failure(first, "late failure", retry=True, job_function=add) is Outcome.CANCELLED
    assert record_success(first, 2) is Outcome.CANCELLED
    first.set_progress(50)
    row = Job.objects.get(pk=job.pk)
    assert (row.status, row.worker, row.attempts, row.progress) == (JobStatus.RUNNING, "worker-b", 2, 0)
    assert record_success(second, 2) is Outcome.SUCCEEDED


def test_one_queue_gone_from_settings_does_not_stop_recovery(settings, start_worker) -> None:
    job = sleeps_on_first_attempt.enqueue("after-stray", max_attempts=2)
    process = start_worker("default")
    wait_for(lambda: Job.objects.get(pk=job.pk).status == JobStatus.RUNNING, what="the job to start")
    process.kill()
    process.wait()
    stray = Job.objects.create(name=add.name, queue="retired", enqueued_at=job.created_at.replace(year=2000))

    report = recover(grace=0, heartbeat_timeout=0)

    assert report.retried == [str(job.pk)]
    assert Job.objects.get(pk=stray.pk).status == JobStatus.QUEUED  # logged, left alone


def test_queues_too_deep_to_read_are_judged_by_their_message_hashes(redis, monkeypatch) -> None:
    from django_asyncjobs.engine.broker import reads

    monkeypatch.setattr(reads, "MEMBERSHIP_SCAN_LIMIT", 2)
    jobs = add.enqueue_many([(i, i) for i in range(5)])
    assert reads.waiting_ids("default") is None
    assert recover(grace=0).requeued == []
    redis.flushall()
    assert sorted(recover(grace=0).requeued) == sorted(str(job.pk) for job in jobs)


def test_heartbeat_for_jobs_run_by_other_workers(settings) -> None:
    from django_asyncjobs.engine.heartbeat import beating
    from django_asyncjobs.engine.states import claim

    settings.ASYNCJOBS = {**settings.ASYNCJOBS, "HEARTBEAT_INTERVAL": 0.05}
    job = add.enqueue(1, 1)
    claimed = claim(job.pk, "stock-rq-worker")
    assert claimed is not None
    with beating("stock-rq-worker", str(job.pk)):
        wait_for(
            lambda: Job.objects.get(pk=job.pk).heartbeat_at > claimed.heartbeat_at, what="a heartbeat from the thread"
        )


@pytest.mark.skipif("not __import__('os').environ.get('DATABASE_URL')", reason="needs PostgreSQL to cut a connection")
def test_the_heartbeat_reconnects_after_the_database_dropped_its_connection(settings) -> None:
    from django.db import connection

    from django_asyncjobs.engine.heartbeat import beating
    from django_asyncjobs.engine.states import claim

    settings.ASYNCJOBS = {**settings.ASYNCJOBS, "HEARTBEAT_INTERVAL": 0.05}
    job = add.enqueue(1, 1)
    assert claim(job.pk, "w") is not None

    def beat_time():
        return Job.objects.get(pk=job.pk).heartbeat_at

    with beating("w", str(job.pk)):
        first = beat_time()
        wait_for(lambda: beat_time() > first, what="a first heartbeat")
        with connection.cursor() as cursor:  # what a server restart or a failover does to it
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        cut = beat_time()
        wait_for(lambda: beat_time() > cut, what="a heartbeat over a new connection")
