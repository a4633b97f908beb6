"""New ``Job`` rows written with one plain ``INSERT``, without ``Model.save()`` or ``bulk_create()``.

:func:`.states.enqueue` decides each new row's status and calls :func:`insert_jobs`. An
enqueue is on the request path, and Django's machinery around one INSERT (``save_base``,
the SQL compiler, ``bulk_create``'s transaction) cost more than the statement itself.
Here the SQL is built once per database alias, in one of two forms:

- ``INSERT ... VALUES (%s, ...), ...``: one job, or many on databases other than
  PostgreSQL. Each value goes through its field's ``get_db_prep_save``, unless it is a
  ``None``, ``str`` or ``int`` that the field would pass on unchanged.
- ``INSERT ... SELECT ... FROM json_populate_recordset(NULL::<table>, %s)``: many jobs on
  PostgreSQL, their rows as one JSON parameter. The same statement whatever the number
  of rows (thousands of placeholders cost psycopg more to bind than the server to insert).
  UUIDs and times travel as text (``isoformat()`` of what the field prepares), JSON columns
  as JSON; PostgreSQL converts them to the columns' types, and the columns a row leaves
  out (its ``None`` values) are ``NULL``.

What is skipped: ``pre_save``/``post_save`` (a single job still goes through ``save()``
while a receiver listens to them for ``Job``; ``bulk_create`` never sent them), and
nothing else a ``Job`` uses (none of its fields has a ``pre_save`` of its own such as
``auto_now``). The statement goes through Django's cursor: query logging,
``execute_wrapper()`` and error wrapping (``IntegrityError``) are those of any query.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from datetime import date, datetime, time
from typing import Any, NamedTuple

from django.db import connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, ForeignKey
from django.db.models.signals import post_save, pre_save

from ..models import Job

#: Most rows per INSERT (fewer where the database limits parameters: 39 on SQLite).
INSERT_BATCH = 500

#: Field types whose ``get_db_prep_save`` passes a ``str`` (or an ``int``) through as it is.
_PLAIN_TEXT = frozenset({"CharField", "TextField"})
_PLAIN_INT = frozenset(
    {"IntegerField", "SmallIntegerField", "BigIntegerField", "PositiveIntegerField", "PositiveSmallIntegerField"}
)

#: ``Column.plain`` of a JSON column in the JSON form: every value goes as it is.
_ANY = object


class Column(NamedTuple):
    attname: str
    name: str
    #: Values of this type (and ``None``) go as they are, without ``prepare``.
    plain: type | None
    #: The field's ``get_db_prep_save``.
    prepare: Callable[[Any, BaseDatabaseWrapper], Any]


class Statement:
    """The INSERT of ``Job`` rows on one database alias: its forms, its columns, its batch size."""

    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        quote = connection.ops.quote_name
        fields = Job._meta.concrete_fields
        table = quote(Job._meta.db_table)
        names = ", ".join(quote(str(field.column)) for field in fields)
        self.columns = [_column(field) for field in fields]
        self.values_head = f"INSERT INTO {table} ({names}) VALUES "
        self.values_row = "(" + ", ".join(["%s"] * len(fields)) + ")"
        self.from_json: str | None = None
        self.json_columns: list[Column] = []
        if connection.vendor == "postgresql":
            rows = f"json_populate_recordset(NULL::{table}, %s::json)"
            self.from_json = f"INSERT INTO {table} ({names}) SELECT {names} FROM {rows}"
            self.json_columns = [_json_column(field) for field in fields]
        limit = connection.features.max_query_params
        self.batch = max(1, min(INSERT_BATCH, limit // len(fields))) if limit else INSERT_BATCH


_statements: dict[tuple[str, str], Statement] = {}


def new_jobs(calls: Sequence[tuple[list[Any], dict[str, Any]]], **columns: Any) -> list[Job]:
    """Unsaved jobs, one per ``(args, kwargs)`` of ``calls``, all with ``columns`` (field names:
    related objects for foreign keys); the other fields hold their defaults.

    The same as ``Job(args=args, kwargs=kwargs, **columns)``, built as Django builds the rows
    it loads (values in field order): a third of the time.
    """
    plan = _plans.get(tuple(columns))
    if plan is None:
        plan = _plans.setdefault(tuple(columns), _Plan(tuple(columns)))
    template = list(plan.defaults)
    related = []
    for index, field, name in plan.given:
        value = columns[name]
        if field is not None and value is not None:
            related.append((field, value))
            value = _related_key(field, value)
        template[index] = value
    build: Callable[..., Job] = Job
    jobs = []
    for args, kwargs in calls:
        row = list(template)
        row[plan.args_at], row[plan.kwargs_at] = args, kwargs
        for index, default in plan.fresh:
            row[index] = default()
        job = build(*row)
        for field, value in related:
            field.set_cached_value(job, value)
        jobs.append(job)
    return jobs


def _related_key(field: ForeignKey[Any, Any], value: Any) -> Any:
    """The key ``field`` stores for the object ``value``; Django's errors for a wrong or unsaved one."""
    model = field.remote_field.model
    concrete = model._meta.concrete_model
    assert concrete is not None
    if not isinstance(value, concrete):
        raise ValueError(
            f'Cannot assign "{value!r}": "{Job.__name__}.{field.name}" must be a "{model._meta.object_name}" instance.'
        )
    key = getattr(value, field.target_field.attname)
    if key is None:
        raise ValueError(f"save() prohibited to prevent data loss due to unsaved related object '{field.name}'.")
    return key


class _Plan:
    """Where :func:`new_jobs` puts what, for one set of column names: built once."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.defaults: list[Any] = []
        #: The given columns: their place, the foreign key (for a related object), their name.
        self.given: list[tuple[int, ForeignKey[Any, Any] | None, str]] = []
        #: Defaults made anew for each job (``uuid4``, ``list``).
        self.fresh: list[tuple[int, Callable[[], Any]]] = []
        self.args_at = self.kwargs_at = -1
        for index, field in enumerate(Job._meta.concrete_fields):
            self.defaults.append(None)
            if field.name == "args":
                self.args_at = index
            elif field.name == "kwargs":
                self.kwargs_at = index
            elif field.name in names:
                self.given.append((index, field if isinstance(field, ForeignKey) else None, field.name))
            elif field.has_default() and callable(field.default):
                self.fresh.append((index, field.default))
            else:
                self.defaults[index] = field.get_default()


_plans: dict[tuple[str, ...], _Plan] = {}


def insert_jobs(jobs: Sequence[Job]) -> None:
    """INSERT the unsaved ``jobs`` (their columns as they are), as ``bulk_create`` would: in
    batches, all or none; each instance is then saved (not ``adding``).

    A single job goes through ``save()`` while ``pre_save``/``post_save`` receivers listen
    for ``Job``, as it always did (many jobs never did: ``bulk_create`` sends neither).
    """
    if len(jobs) == 1 and _save_signals_listened():
        jobs[0].save(force_insert=True)
        return
    if not jobs:
        return
    using = router.db_for_write(Job)
    connection = connections[using]
    statement = _statement(connection, using)
    batches = [jobs[start : start + statement.batch] for start in range(0, len(jobs), statement.batch)]
    if len(batches) == 1:
        _execute(connection, statement, jobs)
    else:
        with transaction.atomic(using=using, savepoint=False):
            for batch in batches:
                _execute(connection, statement, batch)
    for job in jobs:
        job._state.adding = False
        job._state.db = using


def _save_signals_listened() -> bool:
    """Whether ``save()`` would send ``pre_save`` or ``post_save`` to a receiver (Django's own test)."""
    return any(signal.receivers and signal.has_listeners(Job) for signal in (pre_save, post_save))


def _statement(connection: BaseDatabaseWrapper, alias: str) -> Statement:
    key = (alias, connection.vendor)
    statement = _statements.get(key)
    if statement is None:
        statement = _statements[key] = Statement(connection)
    return statement


def _execute(connection: BaseDatabaseWrapper, statement: Statement, jobs: Sequence[Job]) -> None:
    shared: dict[int, Any] = {}
    if len(jobs) > 1 and statement.from_json is not None:
        sql = statement.from_json
        rows = [_json_row(connection, statement.json_columns, job, shared) for job in jobs]
        params: list[Any] = [json.dumps(rows, separators=(",", ":"))]
    else:
        sql = statement.values_head + ", ".join([statement.values_row] * len(jobs))
        params = [value for job in jobs for value in _row(connection, statement.columns, job, shared)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _passes(value: Any, plain: type | None) -> bool:
    """Whether ``get_db_prep_save`` would return ``value`` unchanged (a TextChoices member too)."""
    return value is None or type(value) is plain or (plain is str and isinstance(value, str))


def _prepared(
    connection: BaseDatabaseWrapper, column: Column, value: Any, shared: dict[int, Any], as_json: bool = False
) -> Any:
    if type(value) is datetime:  # the jobs of one call share their times: one object, prepared once
        prepared = shared.get(id(value))
        if prepared is None:
            prepared = column.prepare(value, connection)
            prepared = shared[id(value)] = _as_json(prepared) if as_json else prepared
        return prepared
    prepared = column.prepare(value, connection)
    return _as_json(prepared) if as_json else prepared


def _row(connection: BaseDatabaseWrapper, columns: list[Column], job: Job, shared: dict[int, Any]) -> list[Any]:
    values = job.__dict__
    row = []
    for column in columns:
        value = values[column.attname]
        row.append(value if _passes(value, column.plain) else _prepared(connection, column, value, shared))
    return row


def _json_row(
    connection: BaseDatabaseWrapper, columns: list[Column], job: Job, shared: dict[int, Any]
) -> dict[str, Any]:
    """The row as a JSON object; ``NULL`` columns left out (``json_populate_recordset`` fills them in)."""
    values = job.__dict__
    row = {}
    for column in columns:
        value = values[column.attname]
        if value is None:
            continue
        if column.plain is not _ANY and not _passes(value, column.plain):
            value = _prepared(connection, column, value, shared, as_json=True)
        row[column.name] = value
    return row


def _column(field: Field[Any, Any]) -> Column:
    kind = field.get_internal_type()
    plain = str if kind in _PLAIN_TEXT else int if kind in _PLAIN_INT else None
    return Column(str(field.attname), str(field.column), plain, field.get_db_prep_save)


def _json_column(field: Field[Any, Any]) -> Column:
    column = _column(field)
    if field.get_internal_type() != "JSONField":
        return column
    if getattr(field, "encoder", None) is not None:
        raise NotImplementedError(f"{field}: a JSON field with an encoder")  # none of Job's has one
    return column._replace(plain=_ANY)


def _as_json(prepared: Any) -> Any:
    """A value as ``get_db_prep_save`` prepared it, in JSON (text that PostgreSQL casts back)."""
    if isinstance(prepared, uuid.UUID):
        return str(prepared)
    if isinstance(prepared, datetime | date | time):
        return prepared.isoformat()
    return prepared
