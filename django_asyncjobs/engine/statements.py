"""The SQL text of the worker's hot-path transitions, built once per connection and count.

The worker claims and ends attempts thousands of times a second, so these statements
are not built by the ORM per job. Each says what a ``Job.objects.filter(...).update(...)``
of :mod:`.states` would, and only :mod:`.states` and :mod:`.batched` execute them, the claims
through the helpers here (``claim_rows``, ``claim_params``, ``claim_without_returning``).
Their text depends only on the connection and the count, so a
driver that prepares statements would prepare each once; with Django's defaults psycopg 3
prepares none (client-side binding, ``prepare_threshold`` ``None``), which keeps them safe
behind PgBouncer in transaction mode (docs/deployment.md#pgbouncer, check W002).

======================= ==================================================================
statement               what it says
======================= ==================================================================
``claim``               ``UPDATE job SET status = running, started_at = now,
                        heartbeat_at = now, attempts + 1, worker, progress 0 WHERE id = ?
                        AND status = queued RETURNING *``
``claim_many(n)``       the same for ``id IN (n ids)``, with ``heartbeat_at = NULL``: the
                        rows of a batch have not started yet (see ``states.claim_many``)
``succeed``             ``UPDATE job SET status = succeeded, result, progress 100,
                        finished_at WHERE id = ? AND worker = ? AND attempts = ? AND
                        status = running RETURNING has_dependants`` (where the
                        database has RETURNING: the jobs waiting for it are settled)
``succeed_many(n)``     PostgreSQL: the same for n rows in one statement, ``UPDATE ...
                        FROM (VALUES (id, worker, attempts, result, finished_at), ...)
                        RETURNING id, has_dependants`` (the rows written)
``count_down_group``    ``UPDATE jobgroup SET unfinished_hint = unfinished_hint - n WHERE id
                        = ? AND status = running RETURNING unfinished_hint`` (after a batch of
                        a group's jobs finished, where the database has RETURNING)
======================= ==================================================================
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F
from django.db.models.functions import Now

from ..models import Job, JobGroup, JobStatus
from ..times.clock import now_sql

#: Column names and the converters of each column's value, for ``Job.from_db``.
Converters = list[list[Callable[..., Any]]]


class Returning:
    """An ``UPDATE ... RETURNING`` of whole ``Job`` rows and how to read what it returns."""

    __slots__ = ("converters", "names", "sql")

    def __init__(self, sql: str, names: list[str], converters: Converters) -> None:
        self.sql = sql
        self.names = names
        self.converters = converters

    def jobs(self, connection: BaseDatabaseWrapper, alias: str, rows: Sequence[Sequence[Any]]) -> list[Job]:
        jobs = []
        for row in rows:
            values = list(row)
            for index, field_converters in enumerate(self.converters):
                for convert in field_converters:
                    values[index] = convert(values[index], None, connection)
            jobs.append(Job.from_db(alias, self.names, values))
        return jobs


_claims: dict[tuple[str, str, int, bool], Returning] = {}
_successes: dict[tuple[str, str], str] = {}


def claim(connection: BaseDatabaseWrapper, count: int = 1, *, started: bool | None = None) -> Returning:
    """The claim of one id (``count`` 1) or of ``count`` ids. Parameters: status running,
    the time (twice when ``started``; only where the database's clock is not in the SQL),
    worker, the ids, status queued. ``started`` (by default: one id alone) sets ``heartbeat_at``:
    the job runs now; otherwise it stays NULL while the rows wait their turn."""
    started = count == 1 if started is None else started
    key = (connection.alias, connection.vendor, count, started)
    statement = _claims.get(key)
    if statement is None:
        quote = connection.ops.quote_name
        fields = Job._meta.concrete_fields
        columns = ", ".join(quote(str(f.column)) for f in fields)
        now = now_sql(connection) or "%s"
        heartbeat = now if started else "NULL"
        ids = "= %s" if count == 1 else f"IN ({', '.join(['%s'] * count)})"
        sql = (
            f"UPDATE {quote(Job._meta.db_table)} SET {quote('status')} = %s, {quote('started_at')} = {now}, "
            f"{quote('heartbeat_at')} = {heartbeat}, {quote('unique_key')} = NULL, "
            f"{quote('attempts')} = {quote('attempts')} + 1, {quote('worker')} = %s, "
            f"{quote('progress')} = 0, {quote('progress_message')} = '' "
            f"WHERE {quote('id')} {ids} AND {quote('status')} = %s RETURNING {columns}"
        )
        converters = []
        for f in fields:
            expression = f.get_col(Job._meta.db_table)
            converters.append(connection.ops.get_db_converters(expression) + f.get_db_converters(connection))
        statement = _claims.setdefault(key, Returning(sql, [f.attname for f in fields], converters))
    return statement


def claim_without_returning(
    alias: str, pks: Sequence[uuid.UUID], worker_name: str, now: datetime | Now, *, started: bool | None = None
) -> int:
    """The claim where the database has no ``UPDATE ... RETURNING``: how many rows it moved
    (the caller reads them). ``heartbeat_at`` as :func:`.statements.claim` says."""
    started = len(pks) == 1 if started is None else started
    return (
        Job.objects.using(alias)
        .filter(pk__in=pks, status=JobStatus.QUEUED)
        .update(
            status=JobStatus.RUNNING,
            started_at=now,
            heartbeat_at=now if started else None,
            unique_key=None,
            attempts=F("attempts") + 1,
            worker=worker_name,
            progress=0,
            progress_message="",
        )
    )


def claim_rows(
    connection: BaseDatabaseWrapper,
    alias: str,
    pks: Sequence[uuid.UUID],
    worker_name: str,
    now: datetime | Now,
    *,
    started: bool | None = None,
) -> list[Job]:
    """The claim of ``pks`` as one ``UPDATE ... RETURNING`` (see :func:`.statements.claim`)."""
    statement = claim(connection, len(pks), started=started)
    with connection.cursor() as cursor:
        cursor.execute(statement.sql, claim_params(connection, pks, worker_name, now, started=started))
        rows = cursor.fetchall()
    return statement.jobs(connection, alias, rows)


def claim_params(
    connection: BaseDatabaseWrapper,
    pks: Sequence[uuid.UUID],
    worker_name: str,
    now: datetime | Now,
    *,
    started: bool | None = None,
) -> list[Any]:
    started = len(pks) == 1 if started is None else started
    field = Job._meta.pk
    assert field is not None
    # The database's clock is in the SQL (Now()), or on SQLite passed as a parameter:
    # for started_at, and for heartbeat_at of a single claim.
    times = [] if isinstance(now, Now) else [Job._meta.get_field("started_at").get_db_prep_value(now, connection)]
    return [
        JobStatus.RUNNING.value,
        *(times * (2 if started else 1)),
        worker_name,
        *(field.get_db_prep_value(pk, connection) for pk in pks),
        JobStatus.QUEUED.value,
    ]


def supports_returning(connection: BaseDatabaseWrapper) -> bool:
    if connection.vendor == "postgresql":
        return True
    if connection.vendor == "sqlite":
        return bool(connection.Database.sqlite_version_info >= (3, 35, 0))  # type: ignore[attr-defined]
    return False


def succeed(connection: BaseDatabaseWrapper) -> str:
    """The UPDATE of ``states.succeed``. Parameters: status succeeded, result, finished_at,
    id, worker, attempts, status running."""
    key = (connection.alias, connection.vendor)
    sql = _successes.get(key)
    if sql is None:
        quote = connection.ops.quote_name
        placeholder = getattr(Job._meta.get_field("result"), "get_placeholder", None)
        result = placeholder(None, None, connection) if placeholder else "%s"
        sql = _successes.setdefault(
            key,
            f"UPDATE {quote(Job._meta.db_table)} SET {quote('status')} = %s, {quote('result')} = {result}, "
            f"{quote('progress')} = 100, {quote('finished_at')} = %s WHERE {quote('id')} = %s "
            f"AND {quote('worker')} = %s AND {quote('attempts')} = %s AND {quote('status')} = %s"
            + (f" RETURNING {quote('has_dependants')}" if supports_returning(connection) else ""),
        )
    return sql


def succeed_params(connection: BaseDatabaseWrapper, job: Job, result: Any, finished_at: datetime) -> list[Any]:
    meta = Job._meta
    return [
        JobStatus.SUCCEEDED.value,
        meta.get_field("result").get_db_prep_save(result, connection=connection),
        meta.get_field("finished_at").get_db_prep_save(finished_at, connection=connection),
        meta.get_field("id").get_db_prep_value(job.pk, connection),
        job.worker,
        job.attempts,
        JobStatus.RUNNING.value,
    ]


_many_successes: dict[tuple[str, int], str] = {}


def succeed_many(connection: BaseDatabaseWrapper, count: int) -> str:
    """PostgreSQL's ``succeed`` of ``count`` rows. Parameters: status succeeded, then per row
    id, worker, attempts, result, finished_at, then status running."""
    key = (connection.alias, count)
    sql = _many_successes.get(key)
    if sql is None:
        quote = connection.ops.quote_name
        meta = Job._meta
        columns = ("id", "worker", "attempts", "result", "finished_at")
        casts = [str(meta.get_field(name).db_type(connection)) for name in columns]
        row = "(" + ", ".join(f"%s::{cast}" for cast in casts) + ")"
        table = quote(meta.db_table)
        matches = " AND ".join(f"{table}.{quote(name)} = v.{quote(name)}" for name in columns[:3])
        sql = _many_successes.setdefault(
            key,
            f"UPDATE {table} SET {quote('status')} = %s, {quote('result')} = v.{quote('result')}, "
            f"{quote('progress')} = 100, {quote('finished_at')} = v.{quote('finished_at')} "
            f"FROM (VALUES {', '.join([row] * count)}) AS v({', '.join(quote(name) for name in columns)}) "
            f"WHERE {matches} AND {table}.{quote('status')} = %s "
            f"RETURNING {table}.{quote('id')}, {table}.{quote('has_dependants')}",
        )
    return sql


def succeed_many_params(connection: BaseDatabaseWrapper, rows: Sequence[tuple[Job, Any, datetime]]) -> list[Any]:
    meta = Job._meta
    id_field, result_field, finished_field = (
        meta.get_field("id"),
        meta.get_field("result"),
        meta.get_field("finished_at"),
    )
    params: list[Any] = [JobStatus.SUCCEEDED.value]
    for job, result, finished_at in rows:
        params += [
            id_field.get_db_prep_value(job.pk, connection),
            job.worker,
            job.attempts,
            result_field.get_db_prep_save(result, connection=connection),
            finished_field.get_db_prep_save(finished_at, connection=connection),
        ]
    params.append(JobStatus.RUNNING.value)
    return params


_count_downs: dict[tuple[str, str], str] = {}


def count_down_group(connection: BaseDatabaseWrapper) -> str:
    """``groups.count_finished``'s UPDATE. Parameters: how many finished, the group's id, status running."""
    key = (connection.alias, connection.vendor)
    sql = _count_downs.get(key)
    if sql is None:
        quote = connection.ops.quote_name
        hint = quote("unfinished_hint")
        sql = _count_downs.setdefault(
            key,
            f"UPDATE {quote(JobGroup._meta.db_table)} SET {hint} = {hint} - %s "
            f"WHERE {quote('id')} = %s AND {quote('status')} = %s RETURNING {hint}",
        )
    return sql


def count_down_group_params(connection: BaseDatabaseWrapper, group_id: Any, count: int) -> list[Any]:
    field = JobGroup._meta.pk
    assert field is not None
    return [count, field.get_db_prep_value(group_id, connection), "running"]


#: Set on a ``Job`` whose group was counted down in the transaction of its outcome, and whether
#: that group's count reached 0 (then it may be done: ``groups.finish`` looks).
GROUP_COUNTED, GROUP_MAY_BE_DONE = "_asyncjobs_group_counted", "_asyncjobs_group_may_be_done"


def count_down_groups_params(connection: BaseDatabaseWrapper, jobs: Sequence[Job]) -> list[tuple[Any, list[Any]]]:
    """``(group id, parameters of count_down_group)`` for the groups of ``jobs``."""
    counts = Counter(job.group_id for job in jobs if job.group_id is not None)
    return [(group_id, count_down_group_params(connection, group_id, n)) for group_id, n in counts.items()]


def mark_counted(jobs: Sequence[Job], rows: Sequence[tuple[Any, Any]]) -> None:
    """Mark ``jobs`` of groups as counted down; ``rows``: (group id, the row its UPDATE returned)."""
    done = {group_id for group_id, row in rows if row is not None and row[0] <= 0}
    for job in jobs:
        if job.group_id is not None:
            setattr(job, GROUP_COUNTED, True)
            setattr(job, GROUP_MAY_BE_DONE, job.group_id in done)


def count_down_groups(connection: BaseDatabaseWrapper, jobs: Sequence[Job]) -> None:
    """In the transaction that writes ``jobs``' final outcomes: count them down on their groups
    (``JobGroup.unfinished_hint``, one UPDATE per group), and mark each job (:data:`GROUP_COUNTED`,
    :data:`GROUP_MAY_BE_DONE`). In that transaction, not after it: no durable commit of its own."""
    rows = []
    with connection.cursor() as cursor:
        for group_id, params in count_down_groups_params(connection, jobs):
            if supports_returning(connection):
                cursor.execute(count_down_group(connection), params)
                rows.append((group_id, cursor.fetchone()))
            else:
                running = JobGroup.objects.using(connection.alias).filter(pk=group_id, status="running")
                moved = running.update(unfinished_hint=F("unfinished_hint") - params[0])
                rows.append((group_id, running.values_list("unfinished_hint").first() if moved else None))
    mark_counted(jobs, rows)
