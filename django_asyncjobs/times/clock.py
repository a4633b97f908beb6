"""The database's clock: the one clock that times compared across hosts come from.

A heartbeat written by a worker is compared by recovery on another host, a due time
written by one process by the scheduler on another. If each used its own host's clock,
a host whose clock is 75 s fast would take live jobs for lost and fire schedules early.
So claims, heartbeats, due jobs and schedules, and recovery read the database's clock:

- **PostgreSQL** (and other servers): Django's ``Now()`` (``STATEMENT_TIMESTAMP()``)
  inside the statement that writes or compares, so the hot paths (claim, heartbeat)
  gain no statement; a scheduler or recovery pass reads it once (``SELECT``).
- **SQLite**: the database is a file on this machine, and SQLite's own clock
  (``'now'``) is this machine's clock read in this process. It is read here in Python
  (``datetime.now(UTC)``, not ``django.utils.timezone.now`` that tests may offset) and
  written as Django writes every datetime: SQLite's ``CURRENT_TIMESTAMP`` has whole
  seconds and, without ``USE_TZ``, is UTC where Django stores local time, so its text
  would not compare right with the stored values.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.apps import apps
from django.conf import settings
from django.db import connections, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.functions import Now
from django.db.models.sql import Query
from django.utils import timezone

from .zones import db_datetime


def _local_clock(connection: BaseDatabaseWrapper) -> bool:
    return connection.vendor == "sqlite"


def now_value(using: str) -> datetime | Now:
    """The current time as an ``UPDATE`` or a filter of database ``using`` should take it."""
    if _local_clock(connections[using]):
        return db_datetime(datetime.now(UTC))
    return Now()


def now_sql(connection: BaseDatabaseWrapper) -> str | None:
    """The SQL of the database's current time for a raw statement; ``None`` when it is
    passed as a parameter (``now_value``) instead."""
    if _local_clock(connection):
        return None
    query = Query(None)
    sql, params = query.get_compiler(connection=connection).compile(Now())
    assert not params
    return str(sql)


def database_now(using: str | None = None) -> datetime:
    """One read of the clock of database ``using`` (the one jobs are written to by default),
    as Django stores datetimes: aware in UTC, or naive in ``TIME_ZONE`` without ``USE_TZ``.
    No query on SQLite."""
    if using is None:
        using = router.db_for_write(apps.get_model("django_asyncjobs", "Job"))
    connection = connections[using]
    if _local_clock(connection):
        return db_datetime(datetime.now(UTC))
    sql = now_sql(connection)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {sql}{connection.features.bare_select_suffix}")
        value: datetime = cursor.fetchone()[0]
    if timezone.is_naive(value):  # a server without time zones: Django keeps it in UTC with USE_TZ
        value = value.replace(tzinfo=UTC) if settings.USE_TZ else timezone.make_aware(value)
    return db_datetime(value)
