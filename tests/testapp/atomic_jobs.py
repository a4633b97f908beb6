"""Jobs of the tests of atomic jobs (tests/test_atomic_jobs.py, tests/test_atomic_kills.py);
registered by ``jobs.py``, which imports this module."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from django.db import IntegrityError, connections, transaction

from django_asyncjobs import current_job, job

from .models import Call

#: How long a job of the kill test takes after its insert, in its transaction when atomic.
KILL_TEST_HOLD = float(os.environ.get("ASYNCJOBS_TEST_ATOMIC_HOLD", "0.02"))


@job(atomic=True, max_attempts=1)
def atomic_record(label: str, fail: bool = False, value: Any = None, unstorable: bool = False) -> Any:
    """Inserts a row, then raises if ``fail``, else returns ``value`` (an object JSON cannot
    hold if ``unstorable``)."""
    Call.objects.create(label=label)
    if fail:
        raise RuntimeError(f"{label} failed after its insert")
    return object() if unstorable else value


@job(atomic=True, max_attempts=1)
async def async_atomic_record(label: str, fail: bool = False) -> str:
    await Call.objects.acreate(label=label)
    if fail:
        raise RuntimeError(f"{label} failed after its insert")
    return label


@job(atomic=True, max_attempts=1)
def atomic_progress(label: str) -> int:
    """Reports progress, then answers how the row looks from another connection meanwhile:
    whether it can be locked (the heartbeat writes it) and the progress it shows."""
    this = current_job()
    assert this is not None
    this.set_progress(40, "almost half")
    Call.objects.create(label=label)
    seen: dict[str, Any] = {}

    def look() -> None:
        from django_asyncjobs.models import Job

        try:
            with connections["default"].cursor() as cursor:
                if connections["default"].vendor == "postgresql":
                    cursor.execute("SET lock_timeout = '2s'")
                    cursor.execute(
                        "SELECT progress FROM django_asyncjobs_job WHERE id = %s FOR UPDATE",
                        [this.pk],
                    )
                    seen["progress"] = cursor.fetchone()[0]
                else:
                    seen["progress"] = Job.objects.get(pk=this.pk).progress
        finally:
            connections.close_all()

    thread = threading.Thread(target=look)
    thread.start()
    thread.join()
    return int(seen["progress"])


@job(atomic=True, max_attempts=1)
def atomic_loses_its_attempt(label: str) -> str:
    """Inserts a row, then (from another connection) the row is taken from this attempt, as
    recovery does with a worker it took for dead."""
    from django_asyncjobs.models import Job

    this = current_job()
    assert this is not None
    Call.objects.create(label=label)

    def take() -> None:
        try:
            Job.objects.filter(pk=this.pk).update(worker="another-worker")
        finally:
            connections.close_all()

    thread = threading.Thread(target=take)
    thread.start()
    thread.join()
    return label


@job(atomic=True, max_attempts=1)
def atomic_holds(seconds: float) -> None:
    time.sleep(seconds)


def _insert_then_maybe_die(label: str, die: bool) -> str:
    """The kill test's job: one row per run; ``die``: the first run that gets past its insert
    kills its worker right there (before the outcome is written), as a crash there would. The
    first is told by a file of its own in ``ASYNCJOBS_TEST_DEATHS`` (a folder), created once."""
    Call.objects.create(label=label)
    if die:
        try:
            Path(os.environ["ASYNCJOBS_TEST_DEATHS"], label).touch(exist_ok=False)
        except FileExistsError:
            pass
        else:
            os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(KILL_TEST_HOLD)
    return label


atomic_insert = job(name="tests.atomic_insert", atomic=True, max_attempts=20)(_insert_then_maybe_die)
plain_insert = job(name="tests.plain_insert", max_attempts=20)(_insert_then_maybe_die)


def _raise_after_commit() -> None:
    raise RuntimeError("a callback of the job raised after its commit")


@job(atomic=True, max_attempts=2)
def atomic_callback_raises(label: str) -> str:
    """Inserts a row and registers an ``on_commit`` callback that raises: it runs after the
    job's transaction committed (its success with it)."""
    Call.objects.create(label=label)
    transaction.on_commit(_raise_after_commit)
    return label


@job(atomic=True, max_attempts=1)
def atomic_breaks_its_transaction(label: str) -> str:
    """Inserts a row, then a statement the database refuses, caught without a savepoint."""
    Call.objects.create(label=label)
    with contextlib.suppress(IntegrityError):
        Call.objects.create(pk=Call.objects.get(label=label).pk, label="duplicate")
    return label


@job(atomic=True, max_attempts=1)
def atomic_manages_its_transaction(how: str) -> str:
    """Inserts a row, then tries to end the job's transaction itself."""
    Call.objects.create(label=how)
    if how == "commit":
        transaction.commit()
    elif how == "autocommit":
        transaction.set_autocommit(True)
    elif how == "durable":
        with transaction.atomic(durable=True):
            Call.objects.create(label="durable")
    return how


@job(atomic=True, max_attempts=1)
def atomic_progress_then_fails(label: str) -> None:
    """Reports progress, inserts a row, then raises."""
    this = current_job()
    assert this is not None
    this.set_progress(40, "almost half")
    Call.objects.create(label=label)
    raise RuntimeError(f"{label} failed at 40%")


@job(atomic=True, max_attempts=2, retry_backoff=0)
def atomic_fails_once(label: str) -> int:
    """Inserts a row, then raises on its first attempt; returns its attempt."""
    this = current_job()
    assert this is not None
    Call.objects.create(label=label)
    if this.attempts == 1:
        raise RuntimeError(f"{label}: first attempt")
    return this.attempts


@job(atomic=True, max_attempts=1, timeout=1)
def atomic_times_out(label: str) -> None:
    """Inserts a row, then runs past its time limit (in short sleeps: a threaded worker's
    interrupt rises between two)."""
    Call.objects.create(label=label)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.05)


@job(atomic=True, max_attempts=2, retry_backoff=0)
def atomic_loses_its_connection(label: str) -> int:
    """Inserts a row; on its first attempt, its connection is then ended by the server
    (``pg_terminate_backend`` from another connection) and it writes again."""
    import psycopg

    this = current_job()
    assert this is not None
    Call.objects.create(label=label)
    if this.attempts == 1:
        connection = connections["default"]
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            (pid,) = cursor.fetchone()
        settings = connection.settings_dict
        with psycopg.connect(
            dbname=settings["NAME"], user=settings["USER"], host=settings["HOST"], port=settings["PORT"]
        ) as side:
            side.execute("SELECT pg_terminate_backend(%s)", [pid])
        Call.objects.create(label=f"{label}: after")
    return this.attempts
