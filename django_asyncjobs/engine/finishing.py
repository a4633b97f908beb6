"""What follows the commit of a job's final outcome: the jobs that waited for it are settled
(:mod:`.dependencies`) and its group finished if it was the last (:mod:`.groups`).

Called by whoever wrote the outcome (a worker, a cancel), once per batch of outcomes. Nothing
here may fail the caller: an error is logged, and the scheduler's recovery pass does it later.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ..logs import jobs_logger, log_event
from ..models import Job
from .dependencies import settle_dependants_of, settle_stranded
from .groups import count_finished, finish_stranded


def jobs_finished(jobs: Sequence[Job], *, read_marks: bool = False) -> None:
    """Settle the dependants and finish the groups of ``jobs``, whose final outcome committed.

    ``read_marks``: read ``has_dependants`` from the rows, for an outcome whose UPDATE did not
    return it (failures and cancels; a dependant may have been added while the job ran).
    """
    if not read_marks and not any(job.has_dependants or job.group_id is not None for job in jobs):
        return
    try:
        if read_marks:
            marked = set(
                Job.objects.filter(pk__in=[job.pk for job in jobs], has_dependants=True).values_list("pk", flat=True)
            )
            for job in jobs:
                job.has_dependants = job.pk in marked
        with_dependants = [job.pk for job in jobs if job.has_dependants]
        if with_dependants:
            settle_dependants_of(with_dependants)
        in_groups = [job for job in jobs if job.group_id is not None]
        if in_groups:
            count_finished(in_groups)
    except Exception:  # noqa: BLE001 - the recovery pass settles what this missed
        log_event(jobs_logger, logging.ERROR, "job.settle_failed", jobs=len(jobs), exc_info=True)


def finished_jobs(jobs: Sequence[Job]) -> None:
    """:func:`jobs_finished` of the succeeded ``jobs`` of a batch that have dependants or a group."""
    waited_on = [job for job in jobs if job.has_dependants or job.group_id is not None]
    if waited_on:
        jobs_finished(waited_on)


def settle_all_stranded(limit: int = 1000) -> tuple[int, int]:
    """The recovery pass: (waiting jobs settled, groups finished) that no outcome's writer did."""
    return settle_stranded(limit), finish_stranded(limit)
