"""What a worker survives: jobs raising BaseException, cancels at any moment, unreadable
messages, stop signals during database work. Real worker processes and real signals."""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone
from rq import Worker as RQWorker

from django_asyncjobs import Job, JobStatus
from django_asyncjobs.engine.broker import get_queue, keys, send_stop
from tests.conftest import wait_for
from tests.faults import Output, needs_postgresql, side_connection, worker_backends_waiting_on_a_lock
from tests.testapp.jobs import add, raises_base, waits, waits_for_file

pytestmark = pytest.mark.django_db(transaction=True)


# -- item 1: whatever a job raises is the job's failure, not the worker's end -------------------


def test_a_job_raising_system_exit_or_keyboard_interrupt_is_a_failed_attempt(start_worker) -> None:
    kinds = {"exit": "SystemExit", "builtin-exit": "SystemExit", "keyboard": "KeyboardInterrupt"}
    jobs = {kind: raises_base.enqueue(kind) for kind in kinds}
    after = add.enqueue(2, 2)
    process = start_worker("--burst")
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    for kind, job in jobs.items():
        job.refresh_from_db()
        assert (job.status, job.attempts) == (JobStatus.FAILED, 2), (kind, job.error)
        assert [entry["exception_class"] for entry in job.failed_attempts] == [f"builtins.{kinds[kind]}"] * 2
        assert kinds[kind] in job.error
    after.refresh_from_db()
    assert (after.status, after.result) == (JobStatus.SUCCEEDED, 4)


def test_sigint_while_a_job_runs_is_a_warm_stop(start_worker) -> None:
    job = waits.enqueue("warm-int", 1)
    process = start_worker()
    wait_for(lambda: Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).exists(), what="the job to start")
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED


def test_a_second_signal_is_a_cold_stop_that_records_the_interrupted_attempt(start_worker) -> None:
    job = waits.enqueue("cold", 60, max_attempts=2)
    process = start_worker()
    wait_for(lambda: Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).exists(), what="the job to start")
    process.send_signal(signal.SIGINT)
    time.sleep(1.5)  # a second signal within 1 s is taken for a duplicate of the first (pool + terminal)
    assert process.poll() is None  # warm: still running the job
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    job.refresh_from_db()
    assert (job.status, job.attempts) == (JobStatus.QUEUED, 1), job.error  # retried: an attempt was left
    assert job.failed_attempts[0]["exception_class"] == "django_asyncjobs.exceptions.JobInterrupted"


# -- item 2: a cancel interrupts only the job function -------------------------------------------


class RowLock:
    """Holds ``job``'s row (PostgreSQL) or the whole database (SQLite) from another connection,
    so that the worker's outcome write waits; the holder can cancel the job meanwhile."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.table = Job._meta.db_table
        self.pk = Job._meta.get_field("id").get_db_prep_value(job.pk, connection)
        if connection.vendor == "postgresql":
            self.db = side_connection()
            self.db.execute(f"SELECT id FROM {self.table} WHERE id = %s FOR UPDATE", [self.pk])
        else:
            import sqlite3

            self.db = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None, timeout=20)
            self.db.execute("BEGIN IMMEDIATE")

    def cancel(self) -> None:
        now = Job._meta.get_field("finished_at").get_db_prep_value(timezone.now(), connection)
        mark = "%s" if connection.vendor == "postgresql" else "?"
        self.db.execute(
            f"UPDATE {self.table} SET status = 'cancelled', finished_at = {mark} WHERE id = {mark}", [now, self.pk]
        )

    def release(self) -> None:
        self.db.execute("COMMIT") if connection.vendor == "sqlite" else self.db.commit()
        self.db.close()


def test_a_cancel_landing_while_the_outcome_is_written_does_not_stop_the_worker(start_worker, tmp_path) -> None:
    release = tmp_path / "release"
    job = waits_for_file.enqueue(str(release))
    process = start_worker("default")
    output = Output(process)
    running = wait_for(lambda: Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).first(), what="the job to start")
    lock = RowLock(job)
    try:
        release.touch()
        wait_for(lambda: Path(f"{release}.done").exists(), what="the job function to return")
        if connection.vendor == "postgresql":
            with side_connection(autocommit=True) as watch:
                wait_for(lambda: worker_backends_waiting_on_a_lock(watch), what="the outcome write to wait")
        lock.cancel()
        send_stop(job.queue, running.worker, str(job.pk))  # what Job.cancel() sends after its UPDATE
        time.sleep(1.0)  # the stop-job command reaches the worker while its outcome write waits
    finally:
        lock.release()
    after = add.enqueue(1, 1)
    wait_for(lambda: Job.objects.get(pk=after.pk).status == JobStatus.SUCCEEDED, what="the next job to run")
    assert process.poll() is None, output.text
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    process.send_signal(signal.SIGTERM)
    text = output.wait(30)
    assert process.returncode == 0, text


def test_cancels_at_random_moments_never_stop_the_worker(start_worker) -> None:
    import random

    process = start_worker("default")
    output = Output(process)
    cancelled = 0
    for index in range(25):
        job = waits.enqueue(f"r{index}", random.choice((0, 0.001, 0.01)))
        wait_for(
            lambda job=job: Job.objects.filter(pk=job.pk).exclude(status=JobStatus.QUEUED).exists(),
            what="the job to start",
        )
        time.sleep(random.random() * 0.01)
        cancelled += job.cancel()
        assert process.poll() is None, f"worker quit after {index + 1} jobs, {cancelled} cancels:\n{output.text}"
    after = add.enqueue(1, 1)
    wait_for(lambda: Job.objects.get(pk=after.pk).status == JobStatus.SUCCEEDED, what="the next job to run")
    assert not Job.objects.filter(status=JobStatus.RUNNING).exists()
    process.send_signal(signal.SIGTERM)
    output.wait(30)
    assert process.returncode == 0, output.text


# -- item 3: unreadable messages -------------------------------------------------------------------


def test_unreadable_messages_are_dropped_with_a_short_log_line(start_worker, redis) -> None:
    key = get_queue("default").key
    redis.rpush(key, b"\xff\xfe not UTF-8", "x" * 1_000_000, "not-a-job-id", b"\x00" * 40)
    job = add.enqueue(20, 22)
    process = start_worker("default", "--burst")
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output[:2000]
    job.refresh_from_db()
    assert (job.status, job.result) == (JobStatus.SUCCEEDED, 42)
    lines = output.splitlines()
    assert max(map(len, lines)) < 400, "a message was logged whole"
    assert sum("message.dropped" in line and 'reason="not a job id"' in line for line in lines) == 4, output


def test_bookkeeping_keys_overwritten_in_redis_do_not_stop_the_pops(start_worker, redis) -> None:
    # The counters ride in the pops' round trips: a key of another type fails its command only.
    bucket = int(time.time()) // keys.THROUGHPUT_BUCKET_SECONDS
    for ahead in range(0, 30):
        redis.rpush(keys.finished_key("default", bucket + ahead), "not a counter")
    redis.set(keys.tallies_key("default"), "not a hash")
    jobs = [add.enqueue(i, i) for i in range(30)]
    process = start_worker("default", "--burst")
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 0, output[:2000]
    rows = Job.objects.filter(pk__in=[job.pk for job in jobs])
    assert set(rows.values_list("status", "attempts")) == {(JobStatus.SUCCEEDED, 1)}
    assert "worker.stats_not_written" in output and "WRONGTYPE" in output


# -- item 4: a stop signal is never lost -------------------------------------------------------------


@contextmanager
def commits_of_promotions_wait(side: Any) -> Iterator[None]:
    """While active, the COMMIT of a transaction that moves a job from ``scheduled`` to ``queued``
    (the due-job promotion) waits until ``side`` lets go of an advisory lock: a deferred trigger."""
    table = Job._meta.db_table
    side.execute(
        "CREATE OR REPLACE FUNCTION asyncjobs_test_wait() RETURNS trigger AS $$ "
        "BEGIN PERFORM pg_advisory_xact_lock(4213); RETURN NULL; END $$ LANGUAGE plpgsql"
    )
    side.execute(
        f"CREATE CONSTRAINT TRIGGER asyncjobs_test_wait AFTER UPDATE ON {table} DEFERRABLE INITIALLY DEFERRED "
        "FOR EACH ROW WHEN (OLD.status = 'scheduled' AND NEW.status = 'queued') "
        "EXECUTE FUNCTION asyncjobs_test_wait()"
    )
    side.execute("SELECT pg_advisory_lock(4213)")
    try:
        yield
    finally:
        side.execute("SELECT pg_advisory_unlock(4213)")
        side.execute(f"DROP TRIGGER asyncjobs_test_wait ON {table}")
        side.execute("DROP FUNCTION asyncjobs_test_wait()")


def test_a_stop_signal_while_the_idle_loop_commits_stops_the_worker(start_worker, redis) -> None:
    """The signal lands while the due-job promotion's COMMIT waits: rq's StopRequested raised
    there became "can't change 'autocommit' now", which the promotion caught and logged."""
    needs_postgresql()
    job = add.enqueue(1, 1, delay=3600)
    with side_connection(autocommit=True) as side, commits_of_promotions_wait(side):
        Job.objects.filter(pk=job.pk).update(run_at=timezone.now())
        process = start_worker("default")
        output = Output(process)
        wait_for(lambda: worker_backends_waiting_on_a_lock(side), what="the promotion's commit to wait")
        process.send_signal(signal.SIGTERM)
        time.sleep(0.5)  # the signal lands while the commit waits
    text = output.wait(30)  # on a lost signal the worker runs on, and this gives up
    assert process.returncode == 0, text


def test_a_stop_signal_while_waiting_for_jobs_stops_the_worker(start_worker, redis) -> None:
    process = start_worker("default")
    wait_for(lambda: RQWorker.all(connection=redis), what="the worker to register")
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output


# -- item 9: the command's options and exit statuses --------------------------------------------------


@pytest.mark.parametrize("value", ["0", "-1"])
def test_max_jobs_below_one_is_refused(value: str) -> None:
    with pytest.raises(CommandError, match="--max-jobs must be at least 1"):
        call_command("asyncjobs_worker", "--burst", "--max-jobs", value)


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def collected(*names: str) -> Iterator[Collect]:
    handler = Collect()
    for name in names:
        logging.getLogger(name).addHandler(handler)
    try:
        yield handler
    finally:
        for name in names:
            logging.getLogger(name).removeHandler(handler)


def test_burst_says_done_once() -> None:
    from django_asyncjobs.worker import build_worker

    add.enqueue(1, 1)
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)}
    with collected("rq.worker", "django_asyncjobs") as log:
        try:
            build_worker(["default"]).work(burst=True, logging_level="INFO")
        finally:
            for sig, handler in saved.items():
                signal.signal(sig, handler)
    assert sum("done, quitting" in message for message in log.messages) == 1, log.messages


def test_a_worker_that_quits_on_an_error_exits_non_zero(start_worker) -> None:
    process = start_worker("--burst", "--worker-class", "tests.testapp.workers.BrokenWorker")
    output, _ = process.communicate(timeout=60)
    assert process.returncode not in (0, None), output
    process = start_worker("--burst", "--concurrency", "2", "--worker-class", "tests.testapp.workers.BrokenWorker")
    output, _ = process.communicate(timeout=60)
    assert process.returncode not in (0, None), output


def _worker_pids(redis: Any) -> set[int]:
    return {int(worker.pid) for worker in RQWorker.all(connection=redis) if worker.pid}


def test_the_concurrency_parent_restarts_a_child_that_died(start_worker, redis) -> None:
    import os

    process = start_worker("default", "--concurrency", "2")
    output = Output(process)
    first = wait_for(lambda: (pids := _worker_pids(redis)) and len(pids) == 2 and pids, what="two children")
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: _worker_pids(redis) - first, what="a new child")
    wait_for(lambda: output.has("restart"), what="the restart to be logged")
    job = add.enqueue(3, 4)
    wait_for(lambda: Job.objects.get(pk=job.pk).status == JobStatus.SUCCEEDED, what="a job to run")
    process.send_signal(signal.SIGTERM)
    text = output.wait(30)
    assert process.returncode == 0, text
