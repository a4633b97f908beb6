"""Pruning: delete finished jobs older than a cut-off, with their stored files, in batches.

Safe on a large table and with workers running:

- Only finished rows (succeeded, failed, cancelled) are touched. A job never
  leaves those statuses, so nothing a worker or the scheduler does races with it.
- One status at a time, oldest first, ``batch_size`` rows per batch, each batch
  found by an index range scan (``finished_at`` or ``(status, finished_at)``)
  that starts where the last one ended (keyset pagination, no OFFSET, no rescans).
- Each batch is deleted by primary key in its own short transaction: locks are
  held for one batch, never for the whole run, and an interrupted run keeps what
  it already committed. Rows pointing at the deleted jobs (``Schedule.last_job``,
  ``AggregationWindow.job``) are set to NULL by the ORM for that batch only.
- Files (an offloaded view's stored response, uploads that were never
  discarded) are deleted before their rows: a failure leaves rows to retry on the
  next run, never files that no row names.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connections, router, transaction
from django.utils import timezone

from ..logs import log_event, pruning_logger
from ..models import FINISHED_STATUSES, Job, JobStatus
from ..offloading.requests import stored_uploads
from ..offloading.responses import OFFLOADED_VIEW_JOB, _storage, stored_response_file
from ..times.durations import format_duration
from ..validators import require_count
from .batches import keyset_batches

DEFAULT_BATCH_SIZE = 1000


@dataclass
class PruneReport:
    """What a prune run deleted (with ``dry_run``: would delete)."""

    cutoff: datetime
    statuses: tuple[str, ...]
    dry_run: bool = False
    #: Jobs per status, in the order the statuses were pruned.
    deleted: dict[str, int] = field(default_factory=dict)
    #: Stored files (response bodies, uploads) removed from ``OFFLOAD_STORAGE``.
    files_deleted: int = 0
    #: Batches that deleted (or would delete) at least one job.
    batches: int = 0

    @property
    def total(self) -> int:
        return sum(self.deleted.values())

    def summary(self) -> str:
        verb = "Would delete" if self.dry_run else "Deleted"
        counts = ", ".join(f"{count} {status}" for status, count in self.deleted.items())
        cutoff = f"{self.cutoff:%Y-%m-%d %H:%M:%S %Z}".rstrip()
        return (
            f"{verb} {self.total} job(s) finished before {cutoff} ({counts}) "
            f"and {self.files_deleted} stored file(s), in {self.batches} batch(es)."
        )


def check_statuses(statuses: str | Iterable[str]) -> tuple[str, ...]:
    """``statuses`` without duplicates; ``ValueError`` unless each is a finished status."""
    if isinstance(statuses, str):
        statuses = (statuses,)
    checked: list[str] = []
    allowed = ", ".join(FINISHED_STATUSES)
    for status in statuses:
        if status in JobStatus.values and status not in FINISHED_STATUSES:
            raise ValueError(f"Jobs with status {status!r} are not finished and cannot be pruned; choose {allowed}.")
        if status not in FINISHED_STATUSES:
            raise ValueError(f"Unknown status {status!r}; only finished jobs can be pruned: choose {allowed}.")
        if status not in checked:
            checked.append(str(status))
    if not checked:
        raise ValueError(f"Give at least one status to prune: {allowed}.")
    return tuple(checked)


def prune_jobs(
    older_than: timedelta,
    statuses: Sequence[str] = FINISHED_STATUSES,
    *,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
) -> PruneReport:
    """Delete jobs in ``statuses`` that finished more than ``older_than`` ago, and their stored files.

    ``progress`` is called after each batch with the number of jobs in it. With
    ``dry_run``, nothing is deleted and the report counts what would be.
    """
    if not isinstance(older_than, timedelta) or older_than <= timedelta(0):
        raise ValueError(f"older_than must be a timedelta longer than zero; got {older_than!r}")
    require_count(batch_size, "batch_size")
    report = PruneReport(cutoff=timezone.now() - older_than, statuses=check_statuses(statuses), dry_run=dry_run)
    db = router.db_for_write(Job)  # reads too: a lagging replica would only waste a batch
    for status in report.statuses:
        report.deleted[status] = 0
        for batch in _batches(db, status, report.cutoff, batch_size):
            files = [name for row in batch for name in _files_of(row)]
            if dry_run:
                count, files_deleted = len(batch), _count_existing(files)
            else:
                files_deleted = _delete_files(files)
                count = _delete_jobs(db, (status,), [row[0] for row in batch])
            report.deleted[status] += count
            report.files_deleted += files_deleted
            report.batches += 1
            fields = {"status": status, "jobs": count, "files": files_deleted, "dry_run": dry_run or None}
            log_event(pruning_logger, logging.DEBUG, "prune.batch", **fields)
            if progress is not None:
                progress(count)
    fields = {"jobs": report.total, "files": report.files_deleted, "batches": report.batches}
    fields.update(cutoff=report.cutoff, older_than=format_duration(older_than), dry_run=dry_run or None)
    log_event(pruning_logger, logging.INFO, "prune.done", **fields)
    return report


#: One job of a batch: pk, finished_at, name, result, args.
_Row = tuple[Any, datetime | None, str, Any, Any]


def _batches(db: str, status: str, cutoff: datetime, batch_size: int) -> Iterable[list[_Row]]:
    """Batches of jobs in ``status`` finished before ``cutoff``, oldest first.

    Each batch starts after the last row of the one before, so the scan never
    goes over rows it has seen (the dry run keeps them) and always ends.
    """
    candidates = Job.objects.using(db).filter(status=status, finished_at__lt=cutoff)
    fields = ("pk", "finished_at", "name", "result", "args")
    yield from keyset_batches(candidates, key=("finished_at", "pk"), fields=fields, batch_size=batch_size)


def _files_of(row: _Row) -> list[str]:
    """Stored files of one job: an offloaded view's stored response and the uploads it carried."""
    _, _, name, result, args = row
    if name != OFFLOADED_VIEW_JOB:
        return []
    files = []
    response_file = stored_response_file(result)
    if response_file is not None:
        files.append(response_file)
    if isinstance(args, list) and len(args) > 1:
        files.extend(stored_uploads(args[1]))
    return files


def _count_existing(files: list[str]) -> int:
    storage = _storage()
    return sum(1 for name in files if storage.exists(name))


def _delete_files(files: list[str]) -> int:
    """Delete the files that exist; a file already gone is not an error. The number deleted."""
    storage = _storage()
    deleted = 0
    for name in files:
        if storage.exists(name):
            storage.delete(name)
            deleted += 1
    return deleted


def delete_jobs_and_files(pks: Sequence[Any]) -> int:
    """Delete the finished jobs among ``pks`` with their stored files; the number deleted.

    For a selection (the admin's delete action); unfinished jobs are left alone.
    """
    db = router.db_for_write(Job)
    rows: list[_Row] = list(
        Job.objects.using(db)
        .filter(pk__in=list(pks), status__in=FINISHED_STATUSES)
        .values_list("pk", "finished_at", "name", "result", "args")
    )
    _delete_files([name for row in rows for name in _files_of(row)])
    return _delete_jobs(db, FINISHED_STATUSES, [row[0] for row in rows])


def _delete_jobs(db: str, statuses: Sequence[str], pks: list[Any]) -> int:
    """Delete the jobs ``pks`` (still in ``statuses``) in one transaction; the number deleted.

    Through the ORM, so that rows referring to them are set to NULL (or whatever
    their ``on_delete`` says) and delete signals are sent, for this batch only.
    """
    deleted = 0
    # One parameter per pk and per status, within what the database takes (SQLite: 999).
    limit = (connections[db].features.max_query_params or len(pks) + len(statuses)) - len(statuses)
    with transaction.atomic(using=db):
        for start in range(0, len(pks), limit):
            _, per_model = Job.objects.using(db).filter(pk__in=pks[start : start + limit], status__in=statuses).delete()
            deleted += per_model.get(Job._meta.label, 0)
    return deleted
