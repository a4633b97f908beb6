"""Running aggregations: each completed window once, inline or as a job, recorded.

Each window is an ``AggregationWindow`` row; its unique key ``(name, since)`` makes
recording a window a compare-and-set, so however many schedulers call
:func:`schedule_due_aggregations`, each window fires once. Declaring aggregations
(``@aggregation``, the registry, window alignment) is in :mod:`.aggregations`.
See docs/aggregation.md.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import DatabaseError, IntegrityError, router, transaction
from django.db.models import Q
from django.utils import timezone

from ..conf import app_settings
from ..engine.outcomes import Outcome
from ..exceptions import AsyncJobsError
from ..logs import aggregation_logger, log_event
from ..models import FINISHED_STATUSES, AggregationWindow, Job, WindowStatus
from ..times.zones import as_utc, db_datetime
from .declarations import Aggregation, get_aggregation, registered_aggregations


@dataclass(frozen=True)
class WindowResult:
    """What happened to one window; ``detail`` says why it was skipped, ``error`` why it failed."""

    since: datetime
    until: datetime
    outcome: Outcome
    detail: str = ""
    error: str = ""
    job: Job | None = field(default=None, compare=False)


def windows_between(name: str | Aggregation, since: datetime, until: datetime) -> list[tuple[datetime, datetime]]:
    """The windows of aggregation ``name`` overlapping ``[since, until)``, oldest first."""
    return get_aggregation(name).windows_between(since, until)


def _check_window(agg: Aggregation, since: datetime, until: datetime) -> datetime:
    since, until = as_utc(since, "since"), as_utc(until, "until")
    if agg.window_start(since) != since or until - since != agg.every:
        raise ValueError(
            f"[{since.isoformat()}, {until.isoformat()}) is not a window of {agg.name!r}: windows last "
            f"{agg.every} and start at multiples of it from 1970-01-01T00:00:00+00:00."
        )
    if until > as_utc(timezone.now(), "now"):
        raise ValueError(f"The window [{since.isoformat()}, {until.isoformat()}) of {agg.name!r} is not over yet.")
    return since


def window_statuses(name: str | Aggregation, since: datetime, until: datetime) -> dict[datetime, AggregationWindow]:
    """The recorded windows of aggregation ``name`` starting in ``[since, until)``, by start."""
    agg = get_aggregation(name)
    rows = AggregationWindow.objects.filter(
        name=agg.name, since__gte=db_datetime(as_utc(since, "since")), since__lt=db_datetime(as_utc(until, "until"))
    ).select_related("job")
    return {as_utc(row.since, "since"): row for row in rows}


def skip_reason(row: AggregationWindow | None, *, enqueue: bool, force: bool = False) -> str | None:
    """Why a window in state ``row`` would not be run (or enqueued); ``None`` if it would.

    Done windows are skipped, and windows running (or, to enqueue, pending) with a job
    that has not finished or with no job (run inline). A window left running by a job
    that finished (its worker died) is taken again.
    """
    if row is None or force or row.status == WindowStatus.FAILED:
        return None
    if row.status == WindowStatus.DONE:
        return "already done"
    job_live = row.job is not None and row.job.status not in FINISHED_STATUSES
    if row.status == WindowStatus.RUNNING and (row.job is None or job_live):
        return "already running"
    if row.status == WindowStatus.PENDING and enqueue and job_live:
        return "already enqueued"
    return None


def latest_windows(name: str | Aggregation) -> tuple[AggregationWindow | None, AggregationWindow | None]:
    """The latest recorded window of aggregation ``name``, and the latest one done."""
    recorded = AggregationWindow.objects.filter(name=get_aggregation(name).name).order_by("-since")
    return recorded.first(), recorded.filter(status=WindowStatus.DONE).first()


def run_window(name: str | Aggregation, since: datetime, until: datetime, *, force: bool = False) -> WindowResult:
    """Run one window in this process and record it. A window already done (or running)
    is skipped unless ``force``."""
    agg = get_aggregation(name)
    _check_window(agg, since, until)
    return claim_and_run(agg, as_utc(since, "since"), as_utc(until, "until"), force=force)


def claim_and_run(
    agg: Aggregation,
    since: datetime,
    until: datetime,
    *,
    force: bool = False,
    job_id: Any = None,
    reraise: bool = False,
) -> WindowResult:
    """Take the window (insert it as running, or move it to running), run it, record the outcome.

    Claimable: pending or failed windows, windows left running by a job that finished,
    the window of the claiming job itself (a retry), and with ``force`` any window.
    """
    rows = AggregationWindow.objects.filter(name=agg.name, since=db_datetime(since))
    claimable = Q(status__in=(WindowStatus.PENDING, WindowStatus.FAILED)) | Q(
        status=WindowStatus.RUNNING, job__status__in=FINISHED_STATUSES
    )
    if job_id is not None:
        claimable |= Q(status=WindowStatus.RUNNING, job_id=job_id)
    if not force:
        rows = rows.filter(claimable)
    fields = {"status": WindowStatus.RUNNING, "until": db_datetime(until), "job_id": job_id, "error": ""}
    if not rows.update(finished_at=None, **fields) and not record_window(agg, since, **fields):
        status = AggregationWindow.objects.filter(name=agg.name, since=db_datetime(since)).values_list(
            "status", flat=True
        )
        return WindowResult(since, until, Outcome.SKIPPED, detail=f"already {status.first() or 'recorded'}")
    return execute_window(agg, since, until, reraise=reraise)


def record_window(agg: Aggregation, since: datetime, **fields: Any) -> AggregationWindow | None:
    """Record a window; ``None`` if it is already recorded (the compare-and-set)."""
    try:
        with transaction.atomic(using=router.db_for_write(AggregationWindow)):
            return AggregationWindow.objects.create(name=agg.name, since=db_datetime(since), **fields)
    except IntegrityError:
        return None


def execute_window(agg: Aggregation, since: datetime, until: datetime, *, reraise: bool = False) -> WindowResult:
    running = AggregationWindow.objects.filter(name=agg.name, since=db_datetime(since), status=WindowStatus.RUNNING)
    try:
        agg(since, until)
    except Exception as exc:
        error = "".join(traceback.format_exception(exc))
        running.update(status=WindowStatus.FAILED, error=error, finished_at=timezone.now())
        fields = {"aggregation": agg.name, "since": since, "until": until, "error": f"{type(exc).__name__}: {exc}"}
        log_event(aggregation_logger, logging.ERROR, "window.failed", **fields)
        if reraise:
            raise
        return WindowResult(since, until, Outcome.FAILED, error=error)
    running.update(status=WindowStatus.DONE, finished_at=timezone.now())
    log_event(aggregation_logger, logging.DEBUG, "window.done", aggregation=agg.name, since=since, until=until)
    return WindowResult(since, until, Outcome.RAN)


def enqueue_window(name: str | Aggregation, since: datetime, until: datetime, *, force: bool = False) -> WindowResult:
    """Record the window as pending and enqueue its job, in one transaction.

    Skipped when the window is done or running, or pending with a job that has not
    finished, unless ``force``.
    """
    agg = get_aggregation(name)
    since = _check_window(agg, since, until)
    until = since + agg.every
    with transaction.atomic(using=router.db_for_write(AggregationWindow)):
        row = AggregationWindow.objects.select_for_update().filter(name=agg.name, since=db_datetime(since)).first()
        reason = skip_reason(row, enqueue=True, force=force)
        if reason is not None:
            return WindowResult(since, until, Outcome.SKIPPED, detail=reason)
        job = agg.job_function.enqueue(since.isoformat(), until.isoformat())
        fields = {"status": WindowStatus.PENDING, "job": job, "error": "", "finished_at": None}
        if row is None:
            AggregationWindow.objects.create(
                name=agg.name, since=db_datetime(since), until=db_datetime(until), **fields
            )
        else:
            AggregationWindow.objects.filter(pk=row.pk).update(**fields)
    return WindowResult(since, until, Outcome.ENQUEUED, job=job)


def backfill(
    name: str | Aggregation,
    windows: Iterable[tuple[datetime, datetime]],
    *,
    enqueue: bool = False,
    force: bool = False,
    on_result: Callable[[WindowResult], Any] | None = None,
) -> list[WindowResult]:
    """Run (or enqueue) each window in turn; ``on_result`` is called after each one."""
    agg = get_aggregation(name)
    results = []
    for since, until in windows:
        result = (enqueue_window if enqueue else run_window)(agg, since, until, force=force)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def schedule_due_aggregations(now: datetime | None = None, *, names: Iterable[str] | None = None) -> int:
    """Fire every completed window not yet recorded; returns the number fired by this call.

    The first time an aggregation is seen only its latest completed window fires;
    afterwards every window since the last recorded one, at most
    ``AGGREGATION_MAX_CATCH_UP`` (the most recent). Safe to call from many processes.
    """
    moment = as_utc(now or timezone.now(), "now")
    selected = [get_aggregation(n) for n in names] if names is not None else registered_aggregations().values()
    return sum(_schedule(agg, moment) for agg in selected)


def _schedule(agg: Aggregation, now: datetime) -> int:
    end = agg.last_completed(now)[1]
    latest = AggregationWindow.objects.filter(name=agg.name).order_by("-since").values_list("since", flat=True).first()
    first = end - agg.every if latest is None else as_utc(latest, "since") + agg.every
    if agg.window_start(first) != first:  # ``every`` changed since: go on from the new grid
        first = agg.window_start(first) + agg.every
    due = max(0, (end - first) // agg.every)
    limit = max(1, app_settings.AGGREGATION_MAX_CATCH_UP)  # E004 reports a bad value; never stall
    if due > limit:
        # Only the last AGGREGATION_MAX_CATCH_UP start; the others are for `manage.py asyncjobs_aggregate`.
        fields = {"aggregation": agg.name, "due": due, "since": first, "starting": limit}
        log_event(
            aggregation_logger, logging.WARNING, "windows.catch_up_limited", **fields, backfill="asyncjobs_aggregate"
        )
        first, due = end - limit * agg.every, limit
    fired = 0
    for index in range(due):
        since = first + index * agg.every
        until = since + agg.every
        try:
            if agg.enqueue:
                with transaction.atomic(using=router.db_for_write(AggregationWindow)):
                    window = record_window(agg, since, until=db_datetime(until), status=WindowStatus.PENDING)
                    if window is None:
                        continue
                    window.job = agg.job_function.enqueue(since.isoformat(), until.isoformat())
                    window.save(update_fields=["job"])
            else:
                if record_window(agg, since, until=db_datetime(until), status=WindowStatus.RUNNING) is None:
                    continue
                execute_window(agg, since, until)
        except (AsyncJobsError, DatabaseError) as exc:
            # E.g. QueueFull or the database away. An enqueued window's transaction rolled back,
            # so the next pass starts again from it.
            fields = {"aggregation": agg.name, "since": since, "until": until, "reason": str(exc)}
            log_event(aggregation_logger, logging.WARNING, "window.not_started", **fields)
            return fired
        fired += 1
    return fired
