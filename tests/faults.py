"""Helpers of the fault tests: watching a worker's output, reaching PostgreSQL from the side."""

from __future__ import annotations

import os
import subprocess
import threading
from typing import Any

import pytest
from django.db import connection

#: ``application_name`` of the worker subprocesses' database connections (tests/settings.py).
WORKER_APPLICATION = "asyncjobs-test-worker"


class Output:
    """Collects a subprocess's output in a thread, so a test can wait for a line while it runs."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def has(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines)

    def wait(self, timeout: float = 60) -> str:
        """Wait for the process to end; its whole output."""
        self.process.wait(timeout)
        self._thread.join(10)
        return "".join(self.lines)

    @property
    def text(self) -> str:
        return "".join(self.lines)


def needs_own_server_session(what: str) -> None:
    """Skip under ``make test-pgbouncer``: a test that tells connections apart by their server
    session (backend pid, ``pg_terminate_backend``) while a transaction pooler lends any session
    to any client."""
    if os.environ.get("ASYNCJOBS_TEST_PGBOUNCER"):
        pytest.skip(f"behind PgBouncer in transaction mode {what}")


def needs_postgresql() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL): the fault is PostgreSQL's")


def side_connection(database: str | None = None, **kwargs: Any) -> Any:
    """A psycopg connection of its own to the test database (not Django's, which the test uses),
    or to ``database`` on the same server. Under ``make test-pgbouncer`` it goes to PostgreSQL
    itself (``ASYNCJOBS_TEST_POSTGRES``, host:port), not through the pooler: the test's view from
    the side must not be lent a server connection the test is killing."""
    import psycopg

    db = connection.settings_dict
    host, port = db["HOST"], db["PORT"]
    if os.environ.get("ASYNCJOBS_TEST_POSTGRES"):
        host, _, port = os.environ["ASYNCJOBS_TEST_POSTGRES"].rpartition(":")
    return psycopg.connect(
        dbname=database or db["NAME"],
        user=db["USER"],
        password=db["PASSWORD"] or None,
        host=host,
        port=port,
        application_name="asyncjobs-test-side",
        # psycopg's own default (5) prepares statements, which PgBouncer before 1.21 breaks in
        # transaction mode ("prepared statement "_pg3_0" does not exist"); Django's is None.
        prepare_threshold=None,
        **kwargs,
    )


def terminate_workers(side: Any) -> int:
    """``pg_terminate_backend`` on every backend of the worker subprocesses; how many it ended."""
    rows = side.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = %s",
        [WORKER_APPLICATION],
    ).fetchall()
    return sum(1 for (ended,) in rows if ended)


def worker_backends_waiting_on_a_lock(side: Any) -> int:
    (count,) = side.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = %s AND wait_event_type = 'Lock'",
        [WORKER_APPLICATION],
    ).fetchone()
    return int(count)


def pgbouncer_clients_waiting() -> int:
    """Under ``make test-pgbouncer``: the clients of the test database that wait in PgBouncer for
    a server connection (``SHOW POOLS`` on its admin console, ``cl_waiting``)."""
    import psycopg

    db = connection.settings_dict
    with psycopg.connect(
        dbname="pgbouncer", user=db["USER"], host=db["HOST"], port=db["PORT"], autocommit=True
    ) as admin:
        cursor = psycopg.ClientCursor(admin)  # the admin console speaks the simple query protocol only
        cursor.execute("SHOW POOLS")
        assert cursor.description is not None
        columns = [column.name for column in cursor.description]
        pools = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    return sum(int(pool["cl_waiting"]) for pool in pools if pool["database"] == db["NAME"])
