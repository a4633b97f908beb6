"""Groups of jobs with one completion callback (``enqueue_group``).

The group's row, its callback (waiting, like a dependant, without a ``run_at``) and its jobs
(one bulk INSERT, one pipelined push on commit) are written in one transaction. Once a job of
a group finished, whoever wrote its outcome calls :func:`finish` after the commit: if no job of
the group is left unfinished, one conditional UPDATE moves the group from ``running`` to
``succeeded`` or ``failed``, and in the same transaction its callback is released (or
cancelled when a job failed, unless ``then_any``). The UPDATE is conditional, so the callback
moves once even when several workers finish the last jobs at the same moment; of those, the
one that commits last sees every job finished. After a crash in between, the scheduler's
recovery pass finishes the group (:func:`finish_stranded`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from django.db import connections, router, transaction
from django.utils import timezone

from ..models import Job, JobGroup, JobStatus
from ..models.workflows import GroupStatus
from . import statements, states
from .broker import ring
from .calls import CallSpec, Signature, split_call
from .dependencies import announce_cancelled, settle_dependants_of
from .enqueueing import enqueue_calls
from .registry import job_function_by_name

if TYPE_CHECKING:
    from .functions import JobFunction

UNFINISHED_STATUSES = (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.RUNNING)


def enqueue_group(
    function: JobFunction[Any, Any] | str,
    calls: Iterable[CallSpec],
    *,
    then: Signature | None = None,
    then_any: bool = False,
    queue: str | None = None,
    max_attempts: int | None = None,
    owner: Any = None,
    strict: bool | None = None,
) -> JobGroup:
    """Enqueue one job of ``function`` per call as a :class:`JobGroup`, and ``then`` (``fn.s(...)``)
    to run once every one of them finished, with the group's id as its first argument. If one
    failed or was cancelled, ``then`` is cancelled, unless ``then_any``."""
    job_function = job_function_by_name(function) if isinstance(function, str) else function
    if then is not None and not isinstance(then, Signature):
        raise TypeError(f"then takes a signature such as my_job.s(1, 2), got {then!r}")
    if then is not None and {"after", "after_any"} & then.kwargs.keys():
        raise ValueError(
            "then= waits for its group: its signature takes no after= (then_any=True: whatever the outcome)"
        )
    if job_function.options.unique:
        raise ValueError(f"{job_function.name} is a unique job: its calls may return jobs outside the group")
    split = [split_call(call) for call in calls]
    alias = router.db_for_write(Job)
    authenticated = getattr(owner, "is_authenticated", owner is not None)
    with transaction.atomic(using=alias):
        group = JobGroup.objects.using(alias).create(
            name=job_function.name,
            size=len(split),
            unfinished_hint=len(split),
            callback_any=then_any,
            owner=owner if authenticated else None,
        )
        if then is not None:
            owned = {} if "owner" in then.kwargs else {"owner": group.owner}  # the group's, unless it names one
            group.callback = then.enqueue_waiting(f"waiting for group {group.pk}", **owned)
            group.save(update_fields=["callback"])
        if split:
            enqueue_calls(
                job_function, split, queue=queue, max_attempts=max_attempts, owner=owner, strict=strict, group=group
            )
        else:
            transaction.on_commit(lambda: finish([group.pk]), using=alias)
    return group


def count_finished(jobs: Sequence[Job]) -> int:
    """After the commit of final outcomes of jobs of groups: count those not counted in that
    transaction (:func:`.statements.count_down_groups`: a failure, a cancel) down on their groups,
    and :func:`finish` the groups that may be done; how many finished."""
    alias = router.db_for_write(Job)
    uncounted = [job for job in jobs if not getattr(job, statements.GROUP_COUNTED, False)]
    if uncounted:
        with transaction.atomic(using=alias):
            statements.count_down_groups(connections[alias], uncounted)
    maybe_done = [
        job.group_id for job in jobs if job.group_id is not None and getattr(job, statements.GROUP_MAY_BE_DONE, False)
    ]
    return finish(maybe_done) if maybe_done else 0


def finish(group_ids: Iterable[uuid.UUID]) -> int:
    """Finish each group of ``group_ids`` that has no unfinished job left, and release or cancel
    its callback; how many groups finished here."""
    alias = router.db_for_write(Job)
    finished = 0
    for group_id in dict.fromkeys(group_ids):
        jobs = Job.objects.using(alias).filter(group_id=group_id)
        if jobs.filter(status__in=UNFINISHED_STATUSES).exists():
            continue
        if _finish_one(group_id, jobs.filter(status=JobStatus.SUCCEEDED).count(), alias):
            finished += 1
    return finished


def _finish_one(group_id: uuid.UUID, succeeded: int, alias: str) -> bool:
    now = timezone.now()
    cancelled: Job | None = None
    with transaction.atomic(using=alias):
        groups = JobGroup.objects.using(alias).filter(pk=group_id, status=GroupStatus.RUNNING)
        group = groups.select_related("callback").first()
        if group is None:
            return False
        failed = group.size - succeeded  # a job deleted meanwhile (pruned, the admin's delete) did not succeed
        if not groups.update(status=GroupStatus.FAILED if failed else GroupStatus.SUCCEEDED, finished_at=now):
            return False
        callback = group.callback
        if callback is not None:
            if failed and not group.callback_any:
                reason = f"Cancelled: {failed} of the {group.size} jobs of group {group_id} failed or were cancelled."
                cancelled = callback if states.cancel_waiting(callback, now=now, error=reason) else None
            elif states.release(callback, now=now, args=[str(group_id), *callback.args]):
                transaction.on_commit(lambda: ring([callback]), using=alias)
    if cancelled is not None:
        announce_cancelled(cancelled)
        if cancelled.has_dependants:
            settle_dependants_of([cancelled.pk])
    return True


def finish_stranded(limit: int = 1000) -> int:
    """Finish the running groups that have no unfinished job (the recovery pass: a worker died
    between a job's outcome and :func:`finish`, or a group of no jobs); how many finished."""
    alias = router.db_for_write(Job)
    stranded = (
        JobGroup.objects.using(alias)
        .filter(status=GroupStatus.RUNNING)
        .exclude(jobs__status__in=UNFINISHED_STATUSES)
        .values_list("pk", flat=True)[:limit]
    )
    return finish(list(stranded))
