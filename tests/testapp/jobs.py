"""Jobs used by the test suite (found by ASYNCJOBS autodiscovery of ``jobs`` modules)."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
import uuid
from typing import Any

from django.db import DatabaseError, connection, transaction

from django_asyncjobs import current_job, job
from django_asyncjobs.conf import app_settings

from . import atomic_jobs as atomic_jobs  # registers its jobs too
from .models import Call


@job
def add(a: int, b: int) -> int:
    return a + b


@job(queue="high")
def record(label: str, **extra: Any) -> str:
    """Writes a row per run, so tests can count how often a function really ran."""
    Call.objects.create(label=label, data=extra)
    return label


@job(max_attempts=3)
def flaky(label: str, fail_times: int) -> str:
    """Fails ``fail_times`` times, then succeeds."""
    runs = Call.objects.filter(label=label).count()
    Call.objects.create(label=label)
    if runs < fail_times:
        raise RuntimeError(f"flaky failure {runs + 1}")
    return "ok"


@job
def always_fails() -> None:
    raise ValueError("this job always fails")


@job(max_attempts=1)
def raises(message: str) -> None:
    """Fails with ``message``: text a job controls, as log lines must treat it."""
    raise ValueError(message)


@job(timeout=1)
def sleeps(seconds: float) -> str:
    time.sleep(seconds)
    return "slept"


@job
def reports_progress(steps: int) -> int:
    this = current_job()
    assert this is not None
    for step in range(1, steps + 1):
        this.set_progress(step * 100 // steps, f"step {step} of {steps}")
    return steps


@job
def returns_object() -> Any:
    return object()


@job
async def async_add(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


@job
def whoami() -> dict[str, Any]:
    this = current_job()
    assert this is not None
    return {"id": str(this.pk), "attempts": this.attempts, "queue": this.queue, "setting": app_settings.TIMEOUT}


@job
def noop() -> None:
    return None


@job(timeout=60)
def waits(label: str, seconds: float) -> str:
    """Records its start, sleeps, then records its end: a job to cancel or kill mid-way."""
    Call.objects.create(label=f"{label}:start")
    time.sleep(seconds)
    Call.objects.create(label=f"{label}:end")
    return "done"


@job
async def async_progress() -> str:
    this = current_job()
    assert this is not None
    await this.aset_progress(50, "half way")
    return this.progress_message


@job(timeout=300)
def sleeps_on_first_attempt(label: str) -> str:
    """Hangs on its first attempt (until killed); records a Call on a later one."""
    this = current_job()
    assert this is not None
    if this.attempts == 1:
        time.sleep(300)
    Call.objects.create(label=label, data={"attempt": this.attempts})
    return label


@job(timeout=300)
def waits_for_release(label: str) -> str:
    """Runs until a Call labelled ``release`` exists: a long job the test ends when it wants."""
    while not Call.objects.filter(label="release").exists():
        time.sleep(0.05)
    Call.objects.create(label=label)
    return label


@job(timeout=300)
def steps_when_released(label: str, steps: int) -> int:
    """Reports progress step by step; step N waits for a Call labelled ``label:N``."""
    this = current_job()
    assert this is not None
    for step in range(1, steps + 1):
        while not Call.objects.filter(label=f"{label}:{step}").exists():
            time.sleep(0.05)
        time.sleep(app_settings.PROGRESS_INTERVAL)  # past the throttle, so that each step is written
        this.set_progress(step * 100 // steps, f"step {step} of {steps}")
    return steps


@job(max_attempts=2)
def raises_base(kind: str) -> None:
    """Raises what a worker must survive: SystemExit, exit(), KeyboardInterrupt."""
    if kind == "exit":
        sys.exit(3)
    if kind == "builtin-exit":
        exit()  # the site builtin, as a careless job would call it
    raise KeyboardInterrupt


@job
def waits_for_file(path: str) -> str:
    """Runs until ``path`` exists, then creates ``path + ".done"``: no database use in between."""
    while not os.path.exists(path):
        time.sleep(0.02)
    with open(path + ".done", "w"):
        pass
    return "released"


@job(queue="high", max_attempts=3)
def notes(path: str, label: str) -> str:
    """Appends ``label`` to the file ``path``: counts runs without touching the database."""
    with open(path, "a") as file:
        file.write(label + "\n")
    return label


#: What ``stores("refused")`` returns; the database refuses it in a test (a trigger).
REFUSED_RESULT = "refused by the database"


@job(max_attempts=3)
def stores(kind: str) -> Any:
    """Hands the worker a value the database refuses (NUL on PostgreSQL) as ``kind``:
    the result, the error message, or the progress message."""
    nul = chr(0)
    if kind == "result":
        return {"text": f"a{nul}b"}
    if kind == "error":
        raise ValueError(f"bad{nul}value")
    if kind == "progress":
        this = current_job()
        assert this is not None
        this.set_progress(50, f"half{nul}way")
        return "reported"
    return REFUSED_RESULT


if os.environ.get("ASYNCJOBS_TEST_NEW_CODE"):

    @job
    def deployed_later(label: str) -> str:
        """Registered only in workers started with ASYNCJOBS_TEST_NEW_CODE (a rolling deploy)."""
        Call.objects.create(label=label)
        return label


@job(schedule="*/15 * * * *")
def scheduled_ping() -> str:
    Call.objects.create(label="ping")
    return "pong"


from . import aggregations  # noqa: E402,F401  (registers the test aggregations)

#: Longest wait of the barrier jobs for the others: past it they fail (a test then fails, not hangs).
BARRIER_WAIT = 30.0


@job(timeout=120)
def meets(label: str, count: int, hold: float = 0.0) -> str:
    """Arrives at a barrier and waits until ``count`` jobs of ``label`` have arrived: they all
    succeed only if they ran at the same time. Then holds ``hold`` seconds more."""
    Call.objects.create(label=label, data={"thread": threading.current_thread().name})
    deadline = time.monotonic() + BARRIER_WAIT
    while Call.objects.filter(label=label).count() < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {Call.objects.filter(label=label).count()} of {count} arrived")
        time.sleep(0.02)
    time.sleep(hold)
    return threading.current_thread().name


@job(timeout=120)
async def async_meets(label: str, count: int) -> dict[str, str]:
    """:func:`meets` as a coroutine: the ORM through ``sync_to_async``, waiting with ``asyncio.sleep``."""
    from asgiref.sync import sync_to_async

    loop_thread = threading.current_thread().name
    orm_thread = await sync_to_async(lambda: threading.current_thread().name)()
    await Call.objects.acreate(label=label, data={"loop": loop_thread, "orm": orm_thread})
    deadline = time.monotonic() + BARRIER_WAIT
    while await Call.objects.filter(label=label).acount() < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only some of {count} arrived")
        await asyncio.sleep(0.02)
    this = current_job()
    assert this is not None
    return {"loop": loop_thread, "orm": orm_thread, "job": str(this.pk)}


@job(timeout=1, max_attempts=1)
def spins(label: str) -> str:
    """Runs Python code (short sleeps) until stopped: its time limit (1 s) ends it."""
    Call.objects.create(label=f"{label}:start")
    while True:
        time.sleep(0.01)


@job(timeout=1, max_attempts=1)
async def async_spins(label: str) -> str:
    await Call.objects.acreate(label=f"{label}:start")
    while True:
        await asyncio.sleep(0.01)


@job(timeout=300, max_attempts=2)
def spins_until(path: str, label: str) -> str:
    """Runs Python code until the file ``path`` exists (or it is interrupted)."""
    Call.objects.create(label=f"{label}:start")
    while not os.path.exists(path):
        time.sleep(0.01)
    Call.objects.create(label=f"{label}:end")
    return label


@job(timeout=300, max_attempts=2)
async def async_spins_until(path: str, label: str) -> str:
    await Call.objects.acreate(label=f"{label}:start")
    while not os.path.exists(path):
        await asyncio.sleep(0.01)
    await Call.objects.acreate(label=f"{label}:end")
    return label


@job
def returns_value(value: Any) -> Any:
    """Returns its argument: a result whose content the caller chose."""
    return value


#: id() of a driver connection -> (that connection, the token naming it). Holding the connection
#: keeps its id from being reused by a later one.
_connection_tokens: dict[int, tuple[Any, str]] = {}


@job
def connection_probe(leave: str = "", label: str = "") -> dict[str, Any]:
    """Which database connection ran it: a token naming the driver's connection object (the
    client's connection, which behind PgBouncer is not the server session: a temporary table
    or the backend pid would name whichever session the pool lent) and, on PostgreSQL, the
    backend's pid.

    ``leave`` is what the job leaves behind when it returns: ``"open"`` a transaction it
    began (with a ``Call`` row ``label`` in it), ``"broken"`` a transaction in error,
    ``"autocommit"`` autocommit turned off (with the row in its transaction).
    """
    connection.ensure_connection()
    raw = connection.connection
    _, token = _connection_tokens.setdefault(id(raw), (raw, uuid.uuid4().hex))
    pid = None
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]
    if leave == "autocommit":
        transaction.set_autocommit(False)
        Call.objects.create(label=label)
    elif leave in ("open", "broken"):
        with connection.cursor() as cursor:
            cursor.execute("BEGIN")
        Call.objects.create(label=label)
        if leave == "broken":
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT * FROM asyncjobs_no_such_table")
            except DatabaseError:
                pass
    return {"token": token, "pid": pid}


@job
def health_file_state(path: str) -> dict[str, Any]:
    """Whether the worker's health file exists while this job runs, and its modification time."""
    try:
        return {"exists": True, "mtime": os.stat(path).st_mtime}
    except FileNotFoundError:
        return {"exists": False, "mtime": None}


@job(timeout=1, max_attempts=1)
def overruns(path: str) -> str:
    """Swallows its ``JobTimeout`` (as a job blocked in C code would not see it), says so in
    ``path + ".overran"`` half a second later, and runs on until ``path`` exists."""
    while not os.path.exists(path):
        try:
            time.sleep(0.02)
        except BaseException:  # noqa: BLE001 - the point of this job
            time.sleep(0.5)  # past the time limit and the liveness grace (HEARTBEAT_INTERVAL, 0.2 s in the test)
            with open(path + ".overran", "w"):
                pass
    return "released"


@job
def makes_span(label: str) -> str:
    """Starts a span of its own (only the tracing tests enqueue it: they have OpenTelemetry)."""
    from opentelemetry import trace

    with trace.get_tracer("tests").start_as_current_span(label):
        return label


@job
async def async_makes_span(label: str) -> str:
    """:func:`makes_span` in an ``async def`` job (its coroutine runs on the worker's event loop)."""
    from opentelemetry import trace

    with trace.get_tracer("tests").start_as_current_span(label):
        await asyncio.sleep(0)
    return label


@job(unique_for=300)
def unique_report(account: int, *, fmt: str = "csv") -> int:
    """A unique job: one waiting per account and format (``unique_for``, five minutes)."""
    Call.objects.create(label=f"unique-{account}-{fmt}")
    return account


@job(debounce="30s")
def debounced_sync(account: int) -> int:
    """A debounced job: runs 30 s after the last enqueue for the account."""
    Call.objects.create(label=f"debounced-{account}")
    return account


@job(unique_for=300, max_attempts=1)
def unique_fails(account: int) -> None:
    raise ValueError(f"account {account}")


@job(rate_limit="5/h")
def limited(label: str) -> str:
    """Rate-limited: five starts an hour across all workers; records each run."""
    Call.objects.create(label=label)
    return label


@job(max_concurrency=1, timeout=60)
def exclusive(label: str, seconds: float = 0.1) -> str:
    """At most one runs at a time, across all workers: records when it ran."""
    started = time.time()
    time.sleep(seconds)
    Call.objects.create(label=label, data={"start": started, "end": time.time()})
    return label


@job(max_concurrency=1, concurrency_key=lambda account, label, count, hold=0.0: account, timeout=120)
def per_account(account: int, label: str, count: int, hold: float = 0.0) -> str:
    """One at a time per account: :func:`meets` (jobs of other accounts may run meanwhile)."""
    return str(meets.func(label, count, hold))


@job(max_concurrency=1, concurrency_key=lambda account: str(1 / account))
def bad_key(account: int) -> int:
    return account


@job
def group_done(group_id: str, label: str) -> dict[str, int]:
    """A group's callback: records one Call per run with the group's counts, and returns them."""
    from django_asyncjobs.models import JobGroup

    counts = JobGroup.objects.get(pk=group_id).counts()
    Call.objects.create(label=label, data={"group": group_id, "counts": counts})
    return counts


@job(rate_limit="50/h")
def fifty_per_hour(label: str) -> str:
    """Rate-limited: fifty starts an hour across all workers; records each run."""
    Call.objects.create(label=label)
    return label


@job(unique_for=300, rate_limit="1/h")
def unique_limited(label: str) -> str:
    """Unique and rate-limited (one start an hour): records each run."""
    Call.objects.create(label=label)
    return label


@job(max_concurrency=1, concurrency_key=lambda account: object())
def unstable_key(account: int) -> int:
    """A key function whose value is not a key: each call's would differ."""
    return account
