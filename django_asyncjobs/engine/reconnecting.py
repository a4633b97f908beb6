"""Writes a worker must not lose: when the connection breaks, reconnect and write again.

A worker holds one database connection for hours; a failover, a restart or
``pg_terminate_backend`` breaks it between two statements. The claim and the
outcome of an attempt are written through :func:`persist`: a few quick retries on
a new connection, then, while the database does not answer, waiting with backoff
(the worker runs no other job meanwhile, so it does not pop messages it could not
claim). Only a cold stop of the worker ends the waiting; recovery then repairs
the row. Values the database refuses (``DataError``, ``IntegrityError``) are not
retried: they would be refused again. An ``InternalError``, and any other error after
which the connection does not answer, counts as a break too: behind PgBouncer a server
killed as the worker commits reached psycopg as ``InternalError: received 2 results from
command 'COMMIT'``, a commit whose fate is just as unknown.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from django.db import (
    DatabaseError,
    DataError,
    IntegrityError,
    InterfaceError,
    InternalError,
    OperationalError,
    connections,
)

from ..exceptions import DatabaseAway
from ..logs import log_event, worker_logger

T = TypeVar("T")

#: Seconds before each quick retry on a new connection.
QUICK_RETRIES = (0.05, 0.2, 0.5, 1.0)
#: Longest wait between two tries while the database does not answer.
MAX_WAIT = 10.0
#: ``PQtransactionStatus`` of a connection that is bad (psycopg 2 and 3).
_TRANSACTION_UNKNOWN = 4

_stop_requested: contextvars.ContextVar[Callable[[], bool]] = contextvars.ContextVar(
    "asyncjobs_stop_requested", default=lambda: False
)


@contextmanager
def giving_up_when(stop_requested: Callable[[], bool] | None) -> Iterator[None]:
    """Within the block, :func:`persist` stops waiting for the database once ``stop_requested()``."""
    if stop_requested is None:
        yield
        return
    token = _stop_requested.set(stop_requested)
    try:
        yield
    finally:
        _stop_requested.reset(token)


def persist(write: Callable[[], T], *, what: str, alias: str) -> T:
    """``write()``, again on a new connection for as long as the connection fails.

    ``write`` must be safe to run again after a try whose fate is unknown (the
    statement may have committed before the connection broke): a conditional UPDATE
    that checks, on a later try, whether an earlier one was applied. Inside an
    atomic block (tests, callers' transactions) it runs once.
    """
    connection = connections[alias]
    if connection.in_atomic_block:
        return write()
    failures = 0
    delay = QUICK_RETRIES[0]
    while True:
        try:
            return write()
        except DatabaseError as exc:
            if not _connection_broke(exc, alias):
                raise
            failures += 1
            _drop(alias)
            if failures <= len(QUICK_RETRIES):
                delay = QUICK_RETRIES[failures - 1]
                fields = {"what": what, "reason": _first_line(exc), "retry_in_s": delay}
                log_event(worker_logger, logging.WARNING, "database.write_failed", **fields, connection="new")
            else:
                delay = min(delay * 2, MAX_WAIT)
                # No job is taken until it answers.
                fields = {"what": what, "reason": _first_line(exc), "retry_in_s": delay}
                log_event(worker_logger, logging.WARNING, "database.not_answering", **fields)
            if not _wait(delay):
                raise DatabaseAway(f"{what} could not be written before the worker stopped: {exc}") from exc


def _connection_broke(exc: DatabaseError, alias: str) -> bool:
    """Whether ``exc`` means the connection broke (rather than the database refusing the write)."""
    if isinstance(exc, OperationalError | InterfaceError | InternalError):
        # InternalError: the server's (class XX) or the driver's own confusion about the replies,
        # such as psycopg's "received 2 results from command 'COMMIT'" through PgBouncer when a
        # server dies as it commits. Either way the write's fate is unknown; a new connection
        # starts clean.
        return True
    if isinstance(exc, DataError | IntegrityError):
        return False
    connection = connections[alias]
    raw: Any = connection.connection
    if raw is None:  # Django closes a connection whose rollback failed after a failed commit
        return True
    if getattr(raw, "closed", False):
        return True
    info = getattr(raw, "info", None)  # psycopg: a connection in a bad state
    if info is not None and int(getattr(info, "transaction_status", 0)) == _TRANSACTION_UNKNOWN:
        return True
    # The driver may not have read the end of the connection yet: ask it (only on this error path).
    return not connection.is_usable()


def _drop(alias: str) -> None:
    with contextlib.suppress(DatabaseError):  # closing a broken connection may fail; no matter
        connections[alias].close()


def _wait(seconds: float) -> bool:
    """Sleep ``seconds`` unless a stop is requested meanwhile; ``False`` if it was."""
    stop_requested = _stop_requested.get()
    deadline = time.monotonic() + seconds
    while not stop_requested():
        left = deadline - time.monotonic()
        if left <= 0:
            return True
        time.sleep(min(left, 0.1))
    return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
