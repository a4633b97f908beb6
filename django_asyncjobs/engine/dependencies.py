"""Jobs that wait for other jobs (``after=``, chains): their dependency rows, and settling a
waiting job once what it waits for finished.

A dependant is INSERTed ``scheduled`` without a ``run_at`` (``states.enqueue(waiting=...)``),
with one :class:`~django_asyncjobs.models.JobDependency` row per job it waits for, in the
enqueue's transaction, which also marks those jobs ``has_dependants`` (an UPDATE that locks
their rows, so it is ordered with their outcome's UPDATE, which reads the mark back).

Settling happens after the commit that finished a job: whoever wrote the final outcome of a
row marked ``has_dependants`` calls :func:`settle_dependants_of`, and the enqueue of a
dependant settles it once committed (its dependencies may have finished already). Settling
is idempotent: a dependant moves at most once (``states.release`` and ``cancel_waiting`` are
conditional), and of two workers finishing its last two dependencies at once, the one that
commits last sees both finished. A crash between an outcome's commit and the settling leaves
the dependant waiting until the scheduler's recovery pass settles it (:func:`settle_stranded`).
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from functools import partial
from typing import Any

from django.db import router, transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from ..logs import jobs_logger, log_event
from ..models import FINISHED_STATUSES, Job, JobDependency, JobStatus
from ..signals import job_cancelled, job_finished, notify
from . import states
from .broker import ring
from .registry import registered

#: How many waiting jobs one statement reads.
CHUNK = 500


def dependency_ids(after: Iterable[Any]) -> tuple[uuid.UUID, ...]:
    """The ids of ``after``'s jobs (``Job`` rows, UUIDs or their text), without repeats."""
    if isinstance(after, Job | str | uuid.UUID):
        after = [after]
    ids: dict[uuid.UUID, None] = {}
    for item in after:
        if isinstance(item, Job):
            if item._state.adding:
                raise ValueError(f"after: job {item.name!r} is not saved (enqueue it first)")
            ids[item.pk] = None
        elif isinstance(item, uuid.UUID):
            ids[item] = None
        elif isinstance(item, str):
            try:
                ids[uuid.UUID(item)] = None
            except ValueError:
                raise ValueError(f"after: {item!r} is not a job id") from None
        else:
            raise TypeError(f"after takes jobs or job ids, got {item!r}")
    return tuple(ids)


def waiting_message(count: int) -> str:
    return f"waiting for {count} job{'s' if count != 1 else ''}"


def attach(jobs: Sequence[Job], after: Sequence[uuid.UUID], *, any_outcome: bool, pass_result: bool) -> None:
    """In the enqueue's transaction: ``jobs`` (just INSERTed, waiting) wait for ``after``."""
    alias = router.db_for_write(Job)
    chunks = [after[start : start + CHUNK] for start in range(0, len(after), CHUNK)]  # SQLite: 32,766 parameters
    marked = sum(Job.objects.using(alias).filter(pk__in=chunk).update(has_dependants=True) for chunk in chunks)
    if marked != len(after):
        found = {
            pk for chunk in chunks for pk in Job.objects.using(alias).filter(pk__in=chunk).values_list("pk", flat=True)
        }
        missing = [str(pk) for pk in after if pk not in found]
        more = f" and {len(missing) - 5:,} more" if len(missing) > 5 else ""
        raise ValueError(f"after: no job {', '.join(missing[:5])}{more}")
    links = [
        JobDependency(job=job, depends_on_id=pk, any_outcome=any_outcome, pass_result=pass_result)
        for job in jobs
        for pk in after
    ]
    JobDependency.objects.using(alias).bulk_create(links, batch_size=CHUNK)


def settle_dependants_of(pks: Iterable[uuid.UUID]) -> int:
    """:func:`settle` the jobs that wait for ``pks``; how many moved."""
    pks = list(pks)
    alias = router.db_for_write(Job)
    waiting: set[uuid.UUID] = set()
    for start in range(0, len(pks), CHUNK):
        links = JobDependency.objects.using(alias).filter(depends_on__in=pks[start : start + CHUNK])
        waiting.update(links.values_list("job_id", flat=True))
    return settle(waiting) if waiting else 0


def settle(pks: Iterable[uuid.UUID]) -> int:
    """Release each waiting job of ``pks`` whose dependencies all finished, or cancel it if one
    it needed failed or was cancelled (then its own dependants in turn); how many moved."""
    alias = router.db_for_write(Job)
    pending, moved = list(dict.fromkeys(pks)), 0
    while pending:
        chunk, pending = pending[:CHUNK], pending[CHUNK:]
        released, cancelled = _settle_chunk(chunk, alias)
        moved += len(released) + len(cancelled)
        if released:
            transaction.on_commit(partial(ring, released), using=alias)
        for job in cancelled:
            announce_cancelled(job)
        pending += _dependants([job.pk for job in cancelled if job.has_dependants], alias)
    return moved


def _settle_chunk(pks: Sequence[uuid.UUID], alias: str) -> tuple[list[Job], list[Job]]:
    rows = JobDependency.objects.using(alias).filter(
        job__in=pks, job__status=JobStatus.SCHEDULED, job__run_at__isnull=True
    )
    links: dict[uuid.UUID, list[tuple[Any, ...]]] = defaultdict(list)
    fields = ("job_id", "depends_on_id", "depends_on__name", "depends_on__status", "any_outcome", "pass_result")
    for row in rows.order_by("pk").values_list(*fields, "depends_on__result"):
        links[row[0]].append(row[1:])
    now = timezone.now()
    decided: dict[uuid.UUID, tuple[str, list[Any]]] = {}
    for pk, deps in links.items():
        broken = [(name, dep, status) for dep, name, status, any_outcome, _, _ in deps if _breaks(status, any_outcome)]
        if broken:
            name, dep, status = broken[0]
            decided[pk] = (f"Cancelled: job {name} {dep} it waited for {_verb(status)}.", [])
        elif all(status in FINISHED_STATUSES for _, _, status, _, _, _ in deps):
            decided[pk] = ("", [result for *_, passed, result in deps if passed])
    released, cancelled = [], []
    for job in Job.objects.using(alias).filter(pk__in=list(decided)):
        reason, results = decided[job.pk]
        if reason:
            if states.cancel_waiting(job, now=now, error=reason):
                cancelled.append(job)
        elif states.release(job, now=now, args=[*results, *job.args] if results else None):
            released.append(job)
    return released, cancelled


def _breaks(status: str, any_outcome: bool) -> bool:
    return not any_outcome and status in (JobStatus.FAILED, JobStatus.CANCELLED)


def _verb(status: str) -> str:
    return "failed" if status == JobStatus.FAILED else "was cancelled"


def _dependants(pks: Sequence[uuid.UUID], alias: str) -> list[uuid.UUID]:
    if not pks:
        return []
    return list(JobDependency.objects.using(alias).filter(depends_on__in=pks).values_list("job_id", flat=True))


def announce_cancelled(job: Job) -> None:
    """Log and signal the cancel of a waiting job by a failure (``job.error`` says which)."""
    fields = {"job": job.pk, "name": job.name, "queue": job.queue, "was": "waiting", "reason": job.error}
    log_event(jobs_logger, logging.INFO, "job.cancelled", **fields)
    notify(job_cancelled, job)
    notify(job_finished, job, job_function=registered(job.name))


def settle_stranded(limit: int = 1000) -> int:
    """Settle the waiting jobs that settling would move (the recovery pass: a worker that died
    between an outcome and the settling); how many moved."""
    alias = router.db_for_write(Job)
    return settle(list(decidable(Job.objects.using(alias)).order_by().values_list("pk", flat=True)[:limit]))


def decidable(jobs: QuerySet[Job]) -> QuerySet[Job]:
    """The jobs of ``jobs`` waiting for others that :func:`settle` would move: a job they need
    failed or was cancelled, or every job they wait for finished. Not those that must still wait:
    however many, they would take the places of the others in a bounded pass."""
    links = JobDependency.objects.filter(job=OuterRef("pk"))
    broken = Exists(links.filter(any_outcome=False, depends_on__status__in=(JobStatus.FAILED, JobStatus.CANCELLED)))
    all_finished = Exists(links) & ~Exists(links.exclude(depends_on__status__in=FINISHED_STATUSES))
    return jobs.filter(broken | all_finished, status=JobStatus.SCHEDULED, run_at__isnull=True)
