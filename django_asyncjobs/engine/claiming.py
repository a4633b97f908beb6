"""Claiming a job row: ``queued`` to ``running`` in one conditional UPDATE.

On PostgreSQL and SQLite >= 3.35 the UPDATE also returns the row
(``UPDATE ... RETURNING``), so a claim is one statement instead of an UPDATE and
a SELECT. It is on every job's path, so the SQL is built once per connection.
Other backends use the two ORM statements. ``started_at`` and ``heartbeat_at`` come
from the database's clock (``clock``), which recovery compares them with.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db import connections, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F
from django.db.models.functions import Now

from ..models import Job, JobStatus
from ..times.clock import now_sql, now_value

_statements: dict[tuple[str, str], tuple[str, list[str], list[list[Callable[..., Any]]]]] = {}


def claim(pk: uuid.UUID, worker_name: str) -> Job | None:
    """Move the row from ``queued`` to ``running``; ``None`` when it was not ``queued``."""
    alias = router.db_for_write(Job)
    connection = connections[alias]
    now = now_value(alias)
    if _supports_returning(connection):
        return _claim_returning(connection, alias, pk, worker_name, now)
    claimed = (
        Job.objects.using(alias)
        .filter(pk=pk, status=JobStatus.QUEUED)
        .update(
            status=JobStatus.RUNNING,
            started_at=now,
            heartbeat_at=now,
            attempts=F("attempts") + 1,
            worker=worker_name,
            progress=0,
            progress_message="",
        )
    )
    return Job.objects.using(alias).get(pk=pk) if claimed else None


def _supports_returning(connection: BaseDatabaseWrapper) -> bool:
    if connection.vendor == "postgresql":
        return True
    if connection.vendor == "sqlite":
        return bool(connection.Database.sqlite_version_info >= (3, 35, 0))  # type: ignore[attr-defined]
    return False


def _claim_returning(
    connection: BaseDatabaseWrapper, alias: str, pk: uuid.UUID, worker_name: str, now: datetime | Now
) -> Job | None:
    sql, names, converters = _statement(connection, alias)
    field = Job._meta.pk
    assert field is not None
    # The database's clock is in the SQL (Now()), or on SQLite passed as a parameter.
    times = [] if isinstance(now, Now) else [Job._meta.get_field("started_at").get_db_prep_value(now, connection)] * 2
    params = [
        JobStatus.RUNNING.value,
        *times,
        worker_name,
        field.get_db_prep_value(pk, connection),
        JobStatus.QUEUED.value,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    values = list(row)
    for index, field_converters in enumerate(converters):
        for convert in field_converters:
            values[index] = convert(values[index], None, connection)
    return Job.from_db(alias, names, values)


def _statement(connection: BaseDatabaseWrapper, alias: str) -> tuple[str, list[str], list[list[Callable[..., Any]]]]:
    key = (alias, connection.vendor)
    statement = _statements.get(key)
    if statement is None:
        quote = connection.ops.quote_name
        fields = Job._meta.concrete_fields
        columns = ", ".join(quote(str(f.column)) for f in fields)
        now = now_sql(connection) or "%s"
        sql = (
            f"UPDATE {quote(Job._meta.db_table)} SET {quote('status')} = %s, {quote('started_at')} = {now}, "
            f"{quote('heartbeat_at')} = {now}, "
            f"{quote('attempts')} = {quote('attempts')} + 1, {quote('worker')} = %s, "
            f"{quote('progress')} = 0, {quote('progress_message')} = '' "
            f"WHERE {quote('id')} = %s AND {quote('status')} = %s RETURNING {columns}"
        )
        converters = []
        for f in fields:
            expression = f.get_col(Job._meta.db_table)
            converters.append(connection.ops.get_db_converters(expression) + f.get_db_converters(connection))
        statement = _statements.setdefault(key, (sql, [f.attname for f in fields], converters))
    return statement
