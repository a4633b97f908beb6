"""No session state: what PgBouncer in transaction pooling mode asks of the package
(docs/deployment.md#pgbouncer). A pooler in that mode gives each transaction whichever
server connection is free, so nothing may outlive a transaction on the server: no prepared
statement, no cursor WITH HOLD, no session ``SET``.

These run in the normal suite (SQLite, PostgreSQL) and through a real PgBouncer
(``make test-pgbouncer``, tests/pgbouncer.py), with the worker, scheduler and recovery tests.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.conf import settings
from django.db import InternalError, ProgrammingError, connection

from django_asyncjobs.aggregations.stats import NAME
from django_asyncjobs.aggregations.windows import Outcome, run_window
from django_asyncjobs.checks import check_databases
from django_asyncjobs.engine import batched, states
from django_asyncjobs.engine.enqueueing import enqueue
from django_asyncjobs.engine.reconnecting import persist
from django_asyncjobs.models import Job, JobStats, JobStatus
from django_asyncjobs.times.clock import database_now

from .faults import needs_postgresql

MINUTE = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def prepared_statements() -> list[tuple[str, str]]:
    """The statements prepared on the server session of this transaction."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT name, statement FROM pg_prepared_statements")
        return list(cursor.fetchall())


@pytest.mark.django_db
@pytest.mark.skipif(not os.environ.get("ASYNCJOBS_TEST_PGBOUNCER"), reason="runs under make test-pgbouncer")
def test_the_run_goes_through_the_pooler() -> None:
    """Under ``make test-pgbouncer`` the tests' connections reach PostgreSQL through PgBouncer:
    the server listens on another port than the one the settings connect to."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT inet_server_port()")
        (server_port,) = cursor.fetchone()
    assert str(server_port) != str(connection.settings_dict["PORT"])


# One transaction (the test's): every statement on one server session, through PgBouncer too.
@pytest.mark.django_db
def test_the_hot_path_leaves_no_prepared_statement_on_the_server() -> None:
    needs_postgresql()
    worker = "pgbouncer-probe"
    pks = [enqueue("tests.testapp.jobs.add", n, 1).pk for n in range(24)]
    # psycopg 3 would prepare a statement from its fifth run (its default threshold): run each
    # statement of the hot path more often than that.
    for pk in pks[:6]:
        job = states.claim(pk, worker)
        assert job is not None
        assert states.succeed(job, result=1, now=database_now())
    for start in range(6, 24, 3):
        claimed = batched.claim_many(pks[start : start + 3], worker)
        successes = [batched.Success(job, 2, database_now()) for job in claimed]
        written, _ = batched.commit(successes, [], worker)
        assert written == [True, True, True]
    assert Job.objects.filter(status=JobStatus.SUCCEEDED).count() == 24
    assert prepared_statements() == []


@pytest.mark.django_db
def test_the_probe_sees_a_statement_prepared_on_the_server() -> None:
    """:func:`prepared_statements` is not blind: a statement psycopg prepares shows up."""
    needs_postgresql()
    import psycopg

    connection.ensure_connection()
    raw = connection.connection
    threshold, raw.prepare_threshold = raw.prepare_threshold, 0  # Django's None forbids preparing
    try:
        with psycopg.Cursor(raw) as cursor:  # a server-binding cursor: Django's own never prepares
            cursor.execute("SELECT 1 + %s", [1], prepare=True)
            try:
                assert [statement for _, statement in prepared_statements()] == ["SELECT 1 + $1"]
            finally:
                cursor.execute("DEALLOCATE ALL")  # not transactional: leave the pooled session clean
    finally:
        raw.prepare_threshold = threshold


@contextmanager
def atomic_state_of_job_reads() -> Iterator[list[bool]]:
    """Whether each query that reads the job table ran inside a transaction."""
    seen: list[bool] = []
    table = connection.ops.quote_name(Job._meta.db_table)

    def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if sql.lstrip().upper().startswith("SELECT") and f"FROM {table}" in sql:
            seen.append(connection.in_atomic_block)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        yield seen


@pytest.mark.django_db(transaction=True)
def test_the_stats_rollup_iterates_inside_one_transaction() -> None:
    """``iterator()`` outside a transaction declares a PostgreSQL cursor WITH HOLD, read chunk by
    chunk in later statements: behind PgBouncer those may reach another server connection."""
    for second in range(5):
        finished_at = MINUTE + timedelta(seconds=second)
        Job.objects.create(
            name="tests.testapp.jobs.noop",
            queue="default",
            status=JobStatus.SUCCEEDED,
            enqueued_at=finished_at - timedelta(seconds=2),
            started_at=finished_at - timedelta(seconds=1),
            finished_at=finished_at,
        )
    with atomic_state_of_job_reads() as in_transaction:
        assert run_window(NAME, MINUTE, MINUTE + timedelta(minutes=1)).outcome == Outcome.RAN
    assert in_transaction == [True]
    assert JobStats.objects.get(queue="default").succeeded == 5


def test_w002_prepared_statements_behind_a_transaction_pooler(monkeypatch: pytest.MonkeyPatch) -> None:
    postgres = {"ENGINE": "django.db.backends.postgresql", "NAME": "app"}
    pooled = {**postgres, "DISABLE_SERVER_SIDE_CURSORS": True}
    preparing = {"server_side_binding": True, "prepare_threshold": 5}
    cases = [
        ({**pooled, "OPTIONS": preparing}, ["asyncjobs.W002"]),
        ({**pooled, "OPTIONS": {**preparing, "prepare_threshold": None}}, []),  # Django's default
        ({**pooled, "OPTIONS": {"prepare_threshold": 5}}, []),  # client-side binding never prepares
        ({**postgres, "OPTIONS": preparing}, []),  # no sign of a pooler
        ({**pooled, "ENGINE": "django.db.backends.sqlite3"}, []),
    ]
    for database, expected in cases:
        monkeypatch.setitem(settings.DATABASES, "default", database)
        messages = check_databases()
        assert [message.id for message in messages] == expected, database
    monkeypatch.setitem(settings.DATABASES, "default", {**pooled, "OPTIONS": preparing})
    (message,) = check_databases()
    assert "DATABASES['default']" in message.msg and "prepare_threshold 5" in message.msg
    assert "max_prepared_statements" in (message.hint or "")


@pytest.mark.django_db(transaction=True)
def test_an_internal_error_is_a_break_written_again_on_a_new_connection(caplog: pytest.LogCaptureFixture) -> None:
    """Through PgBouncer a server killed as the worker commits reached psycopg as ``InternalError:
    received 2 results from command 'COMMIT'`` (the 300-job kill test of
    tests/test_worker_database.py, under ``make test-pgbouncer``): the commit's fate unknown, the
    write must be made again on a new connection, not end the worker's job with an error."""
    job = enqueue("tests.testapp.jobs.add", 1, 1)
    seen: list[Any] = []

    def write() -> int:
        connection.ensure_connection()
        seen.append(connection.connection)
        updated = Job.objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(status=JobStatus.CANCELLED)
        if len(seen) == 1:
            raise InternalError("received 2 results from command 'COMMIT'")
        return updated

    with caplog.at_level("WARNING", logger="django_asyncjobs"):
        assert persist(write, what="the probe", alias="default") == 0  # the first try's write was applied
    assert len(seen) == 2 and seen[0] is not seen[1]
    assert "database.write_failed" in caplog.text
    assert Job.objects.get(pk=job.pk).status == JobStatus.CANCELLED


@pytest.mark.django_db(transaction=True)
def test_an_error_of_the_statement_on_a_working_connection_is_raised_at_once() -> None:
    needs_postgresql()  # SQLite reports a missing table as an OperationalError
    tries: list[int] = []

    def write() -> None:
        tries.append(1)
        with connection.cursor() as cursor:
            cursor.execute("SELECT * FROM asyncjobs_no_such_table")

    with pytest.raises(ProgrammingError):
        persist(write, what="the probe", alias="default")
    assert tries == [1]
