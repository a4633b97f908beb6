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

from django.db import router
from django.utils import timezone

from ..engine.deletion import ROW_FIELDS, Row, count_existing, delete_files, delete_jobs, files_of
from ..logs import log_event, pruning_logger
from ..models import FINISHED_STATUSES, Job, JobGroup, JobStatus
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
    #: Finished groups with no job left, finished before the cutoff too.
    groups_deleted: int = 0

    @property
    def total(self) -> int:
        return sum(self.deleted.values())

    def summary(self) -> str:
        verb = "Would delete" if self.dry_run else "Deleted"
        counts = ", ".join(f"{count} {status}" for status, count in self.deleted.items())
        cutoff = f"{self.cutoff:%Y-%m-%d %H:%M:%S %Z}".rstrip()
        return (
            f"{verb} {self.total} job(s) finished before {cutoff} ({counts}) "
            f"and {self.files_deleted} stored file(s), in {self.batches} batch(es)"
            + (f"; {self.groups_deleted} finished group(s) with no job left." if self.groups_deleted else ".")
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
            files = [name for row in batch for name in files_of(row)]
            if dry_run:
                count, files_deleted = len(batch), count_existing(files)
            else:
                files_deleted = delete_files(files)
                count = delete_jobs(db, (status,), [row[0] for row in batch])
            report.deleted[status] += count
            report.files_deleted += files_deleted
            report.batches += 1
            fields = {"status": status, "jobs": count, "files": files_deleted, "dry_run": dry_run or None}
            log_event(pruning_logger, logging.DEBUG, "prune.batch", **fields)
            if progress is not None:
                progress(count)
    emptied = JobGroup.objects.using(db).filter(finished_at__lt=report.cutoff, jobs__isnull=True)
    report.groups_deleted = emptied.count() if dry_run else emptied.delete()[1].get(JobGroup._meta.label, 0)
    fields = {"jobs": report.total, "files": report.files_deleted, "batches": report.batches}
    fields.update(groups=report.groups_deleted or None)
    fields.update(cutoff=report.cutoff, older_than=format_duration(older_than), dry_run=dry_run or None)
    log_event(pruning_logger, logging.INFO, "prune.done", **fields)
    return report


def _batches(db: str, status: str, cutoff: datetime, batch_size: int) -> Iterable[list[Row]]:
    """Batches of jobs in ``status`` finished before ``cutoff``, oldest first.

    Each batch starts after the last row of the one before, so the scan never
    goes over rows it has seen (the dry run keeps them) and always ends.
    """
    candidates = Job.objects.using(db).filter(status=status, finished_at__lt=cutoff)
    yield from keyset_batches(candidates, key=("finished_at", "pk"), fields=ROW_FIELDS, batch_size=batch_size)
