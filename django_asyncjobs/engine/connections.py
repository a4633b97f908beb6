"""A worker's database connections: kept from one job to the next, checked in between.

Django closes a connection at the end of a request once it is ``CONN_MAX_AGE`` old, and
its default ``0`` closes it after every request. That setting is for web processes: a
worker that followed it would reconnect for every job. Worker processes (the worker, its
heartbeat thread, the scheduler loop or thread) call :func:`refresh_connections` instead
of ``close_old_connections()`` before and after each job, beat or pass. For each
connection the current thread has open (outside an atomic block), it:

- rolls back a transaction left open (``BEGIN`` on a cursor, a failed statement inside
  one), and closes a connection whose autocommit was left off, as Django does
  (:func:`release_transactions`, also called as soon as a job function returns, so that
  its outcome is never written inside what the job left uncommitted);
- closes a connection that is unusable: after a database error (other than a refused
  value) it must answer ``SELECT 1``, as Django checks it; on PostgreSQL, a connection
  whose socket has something to read while idle (the server closed it, or sent a notice)
  must answer too, so that one killed while the worker waited is replaced before the next
  claim at no cost to the others; on a database other than SQLite and PostgreSQL a
  rollback is sent every time, which checks it and ends any transaction;
- closes a connection older than ``WORKER_CONN_MAX_AGE`` (``None``: kept; ``0``: closed
  every time, the per-job reconnect of ``CONN_MAX_AGE = 0``).

A closed connection is opened again by the next query. A connection that breaks while in
use is handled where it is used (:mod:`.reconnecting`).
"""

from __future__ import annotations

import logging
import select
import threading
import time
import weakref
from typing import Any

from django.db import DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper

from ..conf import app_settings
from ..logs import log_event, worker_logger

__all__ = ["refresh_connections", "release_transactions"]

#: ``PQtransactionStatus`` values (psycopg 2 and 3): no transaction, a query running.
_PG_IDLE_STATUSES = (0, 1)
#: ``PQtransactionStatus`` of a connection that is bad.
_PG_UNKNOWN = 4

#: Django's connection (one per thread and alias) -> its driver's connection, and when it was first seen.
_opened_at: weakref.WeakKeyDictionary[BaseDatabaseWrapper, tuple[Any, float]] = weakref.WeakKeyDictionary()
_opened_at_lock = threading.Lock()


def refresh_connections() -> None:
    """Before and after a job (a heartbeat, a scheduler pass): end what a job left open,
    close what is broken or older than ``WORKER_CONN_MAX_AGE``; keep the rest."""
    max_age = app_settings.WORKER_CONN_MAX_AGE
    for connection in _open_connections():
        if not _release(connection):
            continue
        if max_age == 0 or not _usable(connection) or _expired(connection, max_age):
            _close(connection)


def release_transactions() -> None:
    """Roll back a transaction a job left open; close a connection whose autocommit it left off."""
    for connection in _open_connections():
        _release(connection)


def _open_connections() -> list[BaseDatabaseWrapper]:
    # Inside an atomic block (a test, a caller's transaction) the transaction is not ours.
    opened = connections.all(initialized_only=True)
    return [connection for connection in opened if connection.connection is not None and not connection.in_atomic_block]


def _release(connection: BaseDatabaseWrapper) -> bool:
    """End what a job left open on ``connection``; ``False`` if that took closing it."""
    if connection.vendor == "postgresql" and _known_broken(connection.connection):
        _close(connection)  # no transaction to speak of: the driver saw it break
        return False
    if connection.get_autocommit() != connection.settings_dict["AUTOCOMMIT"]:
        _rolled_back(connection, "autocommit left off", closed=True)
        _close(connection)
        return False
    if connection.vendor not in ("postgresql", "sqlite"):
        return _rollback(connection)  # cannot tell whether one is open: end it, if any
    if not _in_transaction(connection):
        return True
    _rolled_back(connection, "transaction left open", closed=False)
    return _rollback(connection)


def _known_broken(raw: Any) -> bool:
    return bool(raw.closed) or int(raw.info.transaction_status) == _PG_UNKNOWN


def _in_transaction(connection: BaseDatabaseWrapper) -> bool:
    raw = connection.connection
    if connection.vendor == "sqlite":
        return bool(raw.in_transaction)
    return int(raw.info.transaction_status) not in _PG_IDLE_STATUSES  # in a transaction, or in error


def _rollback(connection: BaseDatabaseWrapper) -> bool:
    """Roll back on the driver's connection (Django's wrapper is in autocommit mode and
    would not); ``False`` if it failed and the connection was closed."""
    raw = connection.connection
    try:
        if connection.vendor == "postgresql":
            with raw.cursor() as cursor:  # psycopg 2 ignores rollback() in autocommit mode
                cursor.execute("ROLLBACK")
        else:
            raw.rollback()
    except Exception as exc:  # noqa: BLE001 - the driver's own errors: the connection is of no use
        log_event(worker_logger, logging.WARNING, "database.rollback_failed", reason=_first_line(exc))
        _close(connection)
        return False
    return True


def _usable(connection: BaseDatabaseWrapper) -> bool:
    if connection.errors_occurred:
        if not connection.is_usable():
            return False
        connection.errors_occurred = False
    if connection.vendor == "postgresql" and _has_something_to_read(connection.connection):
        return connection.is_usable()
    return True


def _has_something_to_read(raw: Any) -> bool:
    """Whether an idle PostgreSQL connection's socket is readable: the server closed it
    (or sent a notice); a healthy idle connection has nothing to say."""
    if raw.closed:
        return True
    try:
        readable, _, _ = select.select([raw.fileno()], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _expired(connection: BaseDatabaseWrapper, max_age: float | None) -> bool:
    if max_age is None:
        return False
    now = time.monotonic()
    raw = connection.connection
    with _opened_at_lock:
        seen = _opened_at.get(connection)
        if seen is None or seen[0] is not raw:  # first seen: after its first use
            seen = _opened_at[connection] = (raw, now)
    return now - seen[1] >= max_age


def _close(connection: BaseDatabaseWrapper) -> None:
    try:
        connection.close()
    except DatabaseError as exc:  # a broken connection that fails to close: the next query opens another
        log_event(worker_logger, logging.WARNING, "database.close_failed", reason=_first_line(exc))


def _rolled_back(connection: BaseDatabaseWrapper, what: str, *, closed: bool) -> None:
    fields = {"alias": connection.alias, "reason": what, "connection": "closed" if closed else "kept"}
    log_event(worker_logger, logging.WARNING, "database.transaction_rolled_back", **fields)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
