"""The worker's batch transitions: the forms of :mod:`.states` that move several rows at once.

==================== ============ ================ ================================================
from                 to           function         writes besides ``status``
==================== ============ ================ ================================================
queued               running      ``claim_many``   as ``states.claim``, but ``heartbeat_at`` NULL:
                                                   the rows wait their turn in the worker
running (this        succeeded    ``commit``       as ``states.succeed``, each row conditional on
attempt)                                           its attempt; then ``claim_many`` of the next
                                                   ids, all in ONE transaction (group commit)
running (this        queued       ``release``      attempts - 1, worker, started_at and
attempt), not                                      heartbeat_at cleared: claimed in a batch, never
started                                            started (the caller pushes the ids again)
==================== ============ ================ ================================================

Only this module and :mod:`.states` write ``status``. On PostgreSQL with psycopg 3 the
statements of a commit are sent in one pipeline: one round trip and one durable commit
for a whole batch instead of two per job.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import reduce
from operator import or_
from typing import Any

from django.db import DataError, IntegrityError, connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F, Q

from ..exceptions import OutcomeRefused
from ..models import Job, JobStatus
from ..times.clock import now_value
from . import statements, states
from .reconnecting import persist
from .unique import key_to_restore, update_holding_key


@dataclass(slots=True)
class Success:
    """A finished attempt whose ``succeeded`` is not written yet."""

    job: Job
    result: Any
    finished_at: datetime


def claim_many(pks: Sequence[uuid.UUID], worker_name: str, *, held: bool = False) -> list[Job]:
    """``queued`` → ``running`` for several rows in one statement: the rows claimed, in the
    order of ``pks`` (those not ``queued`` are left out). ``heartbeat_at`` stays NULL until a
    row's job has run for a heartbeat interval: recovery knows from the NULL that a lost row
    may never have started (``outcomes.record_lost_attempt``). One row alone is about to run
    and is claimed as :func:`.states.claim` does (its heartbeat set), unless ``held``: it may
    wait its turn (a threaded worker's row claimed ahead)."""
    if not pks:
        return []
    if len(pks) == 1 and not held:
        claimed = states.claim(pks[0], worker_name)
        return [] if claimed is None else [claimed]
    alias = router.db_for_write(Job)
    connection = connections[alias]
    now = now_value(alias)
    if statements.supports_returning(connection):
        rows = statements.claim_rows(connection, alias, pks, worker_name, now, started=False)
    else:
        statements.claim_without_returning(alias, pks, worker_name, now, started=False)
        rows = list(Job.objects.using(alias).filter(pk__in=pks, worker=worker_name, status=JobStatus.RUNNING))
    order = {pk: index for index, pk in enumerate(pks)}
    return sorted(rows, key=lambda job: order[job.pk])


def commit(successes: Sequence[Success], claim: Sequence[uuid.UUID], worker_name: str) -> tuple[list[bool], list[Job]]:
    """In one transaction: ``running`` → ``succeeded`` for each of ``successes`` (if its row
    still holds that attempt), then :func:`claim_many` of ``claim``. Returns whether each
    success was written, and the rows claimed. Tried again on a new connection when the
    connection breaks (a try whose fate is unknown is confirmed by reading the rows).
    Raises :class:`OutcomeRefused`, with nothing written, when the database refuses a
    result: the caller then writes the outcomes one by one."""
    alias = router.db_for_write(Job)
    tries = 0

    def write() -> tuple[list[bool], list[Job]]:
        nonlocal tries
        tries += 1
        if tries > 1:
            committed = _committed(successes, claim, worker_name, alias)
            if committed is not None:
                return committed
        if not successes:  # one statement: no transaction to open (an idle worker's next job)
            return [], claim_many(claim, worker_name)
        with transaction.atomic(using=alias):
            connection = connections[alias]
            if connection.vendor == "postgresql" and hasattr(connection.connection, "pipeline"):
                return _pipelined(connection, alias, successes, claim, worker_name)
            written, claimed = _succeed_all(connection, successes), claim_many(claim, worker_name)
            ended = [success.job for success, done in zip(successes, written, strict=True) if done]
            statements.count_down_groups(connection, ended)
            return written, claimed

    try:
        written, claimed = persist(write, what=f"the outcomes of {len(successes)} job(s)", alias=alias)
    except (DataError, IntegrityError) as exc:
        raise OutcomeRefused(states._reason(exc)) from exc
    for success, done in zip(successes, written, strict=True):
        if done:
            job = success.job
            job.status, job.result, job.progress, job.finished_at = (
                JobStatus.SUCCEEDED,
                success.result,
                100,
                success.finished_at,
            )
    return written, claimed


def _pipelined(
    connection: BaseDatabaseWrapper,
    alias: str,
    successes: Sequence[Success],
    claim: Sequence[uuid.UUID],
    worker_name: str,
) -> tuple[list[bool], list[Job]]:
    """PostgreSQL with psycopg 3: the successes in one ``UPDATE ... FROM (VALUES ...)`` and the
    claim, sent in one pipeline (one round trip; the commit is the second)."""
    raw = connection.connection
    # Driver errors become Django's (a broken connection: OperationalError, which persist retries).
    with connection.wrap_database_errors, raw.pipeline():
        succeeded = raw.cursor() if successes else None
        if succeeded is not None:
            rows = [(s.job, s.result, s.finished_at) for s in successes]
            succeeded.execute(
                statements.succeed_many(connection, len(rows)), statements.succeed_many_params(connection, rows)
            )
        # The groups of the successes counted down in the same round trip, as if all were written
        # (a row that left its attempt meanwhile: its group is looked at sooner, nothing more).
        counted = [
            (group_id, raw.cursor().execute(statements.count_down_group(connection), params))
            for group_id, params in statements.count_down_groups_params(connection, [s.job for s in successes])
        ]
        claimed = raw.cursor() if claim else None
        if claimed is not None:
            statement = statements.claim(connection, len(claim))
            claimed.execute(statement.sql, statements.claim_params(connection, claim, worker_name, now_value(alias)))
        done = dict(succeeded.fetchall()) if succeeded is not None else {}
        rows_claimed = claimed.fetchall() if claimed is not None else []
        statements.mark_counted([s.job for s in successes], [(group, cursor.fetchone()) for group, cursor in counted])
    jobs = statements.claim(connection, len(claim)).jobs(connection, alias, rows_claimed) if claim else []
    order = {pk: index for index, pk in enumerate(claim)}
    for success in successes:
        success.job.has_dependants = bool(done.get(success.job.pk, success.job.has_dependants))
    return [s.job.pk in done for s in successes], sorted(jobs, key=lambda job: order[job.pk])


def _succeed_all(connection: BaseDatabaseWrapper, successes: Sequence[Success]) -> list[bool]:
    with connection.cursor() as cursor:
        return [states.succeed_row(connection, cursor, s.job, s.result, s.finished_at) == 1 for s in successes]


def _committed(
    successes: Sequence[Success], claim: Sequence[uuid.UUID], worker_name: str, alias: str
) -> tuple[list[bool], list[Job]] | None:
    """What an earlier try committed, if it did (``None``: nothing of it is in the database)."""
    pks = [s.job.pk for s in successes]
    rows = Job.objects.using(alias).filter(pk__in=pks, status=JobStatus.SUCCEEDED)
    finished = {pk: (at, dependants) for pk, at, dependants in rows.values_list("pk", "finished_at", "has_dependants")}
    written = [finished.get(s.job.pk, (None, False))[0] == s.finished_at for s in successes]
    for success, done in zip(successes, written, strict=True):
        if done:
            success.job.has_dependants = finished[success.job.pk][1]
    claimed = list(Job.objects.using(alias).filter(pk__in=claim, status=JobStatus.RUNNING, worker=worker_name))
    if not any(written) and not claimed:
        return None
    order = {pk: index for index, pk in enumerate(claim)}
    return written, sorted(claimed, key=lambda job: order[job.pk])


def release(jobs: Sequence[Job]) -> list[Job]:
    """``running`` (this attempt, claimed in a batch and not started) → ``queued``, the attempt
    given back; a unique job holds its key again (:func:`.unique.update_holding_key`). Returns
    the jobs released; the caller pushes their ids to the front again."""
    if not jobs:
        return []
    alias = router.db_for_write(Job)
    condition = reduce(or_, (Q(**states.this_attempt(job)) for job in jobs))
    keys = {job.pk: key for job in jobs if (key := key_to_restore(job)) is not None}

    def write() -> list[Job]:
        mine = Job.objects.using(alias).filter(condition)
        pks = set(mine.values_list("pk", flat=True))
        if pks:
            Job.objects.using(alias).filter(condition, pk__in=pks).update(
                status=JobStatus.QUEUED,
                attempts=F("attempts") - 1,
                worker="",
                started_at=None,
                heartbeat_at=None,
                progress=0,
            )
        for pk in pks & keys.keys():
            update_holding_key(Job.objects.using(alias).filter(pk=pk, unique_key=None), {}, keys[pk], alias)
        return [job for job in jobs if job.pk in pks]

    def released() -> list[Job]:
        with transaction.atomic(using=alias):
            return write()

    return persist(released, what=f"the release of {len(jobs)} job(s)", alias=alias)
