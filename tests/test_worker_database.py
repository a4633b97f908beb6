"""The worker and a database that breaks under it or refuses what it writes.

Connections are killed with ``pg_terminate_backend`` from a connection of the test's own;
values are refused by PostgreSQL itself (NUL) or by a trigger. Real worker processes.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import OperationalError, connection

from django_asyncjobs import Job, JobStatus
from django_asyncjobs.engine.broker import get_queue
from tests.conftest import wait_for
from tests.faults import Output, needs_postgresql, pgbouncer_clients_waiting, side_connection, terminate_workers
from tests.testapp.jobs import REFUSED_RESULT, add, notes, stores, waits_for_file

pytestmark = pytest.mark.django_db(transaction=True)


# -- item 5: connections killed under the worker --------------------------------------------------


def test_connections_killed_during_300_jobs_leave_none_running_and_run_each_once(start_worker, tmp_path) -> None:
    needs_postgresql()
    runs = tmp_path / "runs"
    jobs = notes.enqueue_many([(str(runs), f"n{i}") for i in range(300)])
    process = start_worker("high", "--burst")
    output = Output(process)
    kills = 0
    started = time.monotonic()
    with side_connection(autocommit=True) as side:
        # The worker's first connection dies as soon as it appears: a burst that fast (through
        # PgBouncer, about a second) could otherwise end between two kills of the loop below.
        while process.poll() is None and not kills:
            kills += terminate_workers(side)
            time.sleep(0.001)
        while process.poll() is None:
            kills += terminate_workers(side)
            time.sleep(random.uniform(0.005, 0.03))
    elapsed = time.monotonic() - started
    text = output.wait(60)
    assert process.returncode == 0, text[-3000:]
    rows = Job.objects.filter(pk__in=[job.pk for job in jobs])
    assert Counter(rows.values_list("status", flat=True)) == {JobStatus.SUCCEEDED: 300}
    assert set(rows.values_list("attempts", flat=True)) == {1}
    ran = Counter(runs.read_text().split())
    assert len(ran) == 300 and max(ran.values()) == 1, [label for label, n in ran.items() if n > 1]
    assert kills > 0
    print(f"\n300 jobs, {kills} connections killed, {elapsed:.1f}s, 0 running, 0 duplicates")


def answered(query: Callable[[], bool]) -> Callable[[], bool]:
    """``query`` for ``wait_for``, false while the test's connection fails: PgBouncer answers
    "server login has been failing" for a while after the database refused it."""

    def attempt() -> bool:
        try:
            return query()
        except OperationalError:
            connection.close()
            return False

    return attempt


def test_the_worker_waits_for_the_database_and_takes_no_job_meanwhile(
    start_worker, subprocess_env, tmp_path, redis
) -> None:
    needs_postgresql()
    subprocess_env["ASYNCJOBS_TEST_BATCH_HOLD"] = "600"  # the batch stays with the worker meanwhile
    release = tmp_path / "release"
    first = waits_for_file.enqueue(str(release))
    later = add.enqueue_many([(i, i) for i in range(3)])
    process = start_worker("default")
    output = Output(process)
    wait_for(lambda: Job.objects.filter(pk=first.pk, status=JobStatus.RUNNING).exists(), what="the job to start")
    name = connection.settings_dict["NAME"]
    pooled = bool(os.environ.get("ASYNCJOBS_TEST_PGBOUNCER"))
    with side_connection(autocommit=True) as side, side_connection("postgres", autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            if pooled:
                # Every server connection PgBouncer pools for the database, not only the worker's:
                # it would lend the worker another one (the test's own), which still works.
                side.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            else:
                terminate_workers(side)
            release.touch()
            if pooled:
                # Behind PgBouncer the outcome's write does not fail: it waits in PgBouncer's queue
                # for a server connection (up to query_wait_timeout), and the worker with it.
                wait_for(lambda: pgbouncer_clients_waiting() >= 1, what="the worker to wait in PgBouncer")
            else:
                wait_for(lambda: output.count("database.not_answering") >= 2, what="the worker to wait")
            # The next ids came with the first in one batch: claimed, waiting their turn, not started.
            assert redis.llen(get_queue("default").key) == 0
            rows = side.execute(  # the side connection: through PgBouncer a query would wait too
                f"SELECT status, heartbeat_at FROM {Job._meta.db_table} WHERE id = ANY(%s)", [[j.pk for j in later]]
            ).fetchall()
            assert rows == [(JobStatus.RUNNING, None)] * 3
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    back = time.monotonic()
    wait_for(answered(lambda: Job.objects.get(pk=first.pk).status == JobStatus.SUCCEEDED), 60, what="the outcome")
    print(f"\noutcome written {time.monotonic() - back:.1f}s after the database took connections again")
    wait_for(
        lambda: Job.objects.filter(pk__in=[j.pk for j in later], status=JobStatus.SUCCEEDED).count() == 3,
        what="the jobs after it",
    )
    assert Job.objects.get(pk=first.pk).attempts == 1
    process.send_signal(signal.SIGTERM)
    text = output.wait(30)
    assert process.returncode == 0, text


# -- item 6: values the database refuses -------------------------------------------------------------


def test_values_the_database_refuses_never_leave_a_job_running(start_worker) -> None:
    result, error, progress = (stores.enqueue(kind) for kind in ("result", "error", "progress"))
    after = add.enqueue(1, 1)
    process = start_worker("--burst")
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output

    result.refresh_from_db()
    assert (result.status, result.attempts, result.result) == (JobStatus.FAILED, 1, None)  # not retried
    assert result.error.startswith("result could not be stored: "), result.error
    assert "NUL" in result.error
    assert result.failed_attempts[-1]["exception_class"] == "django_asyncjobs.exceptions.SerializationError"

    error.refresh_from_db()
    assert (error.status, error.attempts) == (JobStatus.FAILED, 3)  # an ordinary failure: retried
    assert "ValueError: bad\\x00value" in error.error
    assert all("bad\\x00value" in entry["error"] for entry in error.failed_attempts)

    progress.refresh_from_db()
    assert (progress.status, progress.progress_message) == (JobStatus.SUCCEEDED, "half\\x00way")
    after.refresh_from_db()
    assert after.status == JobStatus.SUCCEEDED


@contextmanager
def refusing(side: Any, value: str) -> Iterator[None]:
    """A trigger that makes PostgreSQL refuse (SQLSTATE 22023, a DataError) a row whose result is ``value``."""
    table = Job._meta.db_table
    side.execute(
        "CREATE OR REPLACE FUNCTION asyncjobs_test_refuse() RETURNS trigger AS $$ BEGIN "
        "RAISE EXCEPTION 'refused by the test trigger' USING ERRCODE = '22023'; END $$ LANGUAGE plpgsql"
    )
    side.execute(
        f"CREATE TRIGGER asyncjobs_test_refuse BEFORE UPDATE ON {table} FOR EACH ROW "
        f"WHEN (NEW.result = to_jsonb(%s::text)) EXECUTE FUNCTION asyncjobs_test_refuse()".replace(
            "%s", "'" + value.replace("'", "''") + "'"
        )
    )
    try:
        yield
    finally:
        side.execute(f"DROP TRIGGER asyncjobs_test_refuse ON {table}")
        side.execute("DROP FUNCTION asyncjobs_test_refuse()")


def test_a_write_the_database_still_refuses_ends_the_attempt_failed(start_worker) -> None:
    needs_postgresql()
    with side_connection(autocommit=True) as side, refusing(side, REFUSED_RESULT):
        job = stores.enqueue("refused")
        after = add.enqueue(1, 1)
        process = start_worker("--burst")
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    job.refresh_from_db()
    assert (job.status, job.attempts, job.result) == (JobStatus.FAILED, 1, None), job.error
    assert job.error.startswith("result could not be stored: "), job.error
    assert "refused by the test trigger" in job.error
    after.refresh_from_db()
    assert after.status == JobStatus.SUCCEEDED
