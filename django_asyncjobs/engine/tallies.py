"""What the Prometheus metrics count, as counters in Redis (:mod:`.broker.tallies`).

Each counter is one field of the queue's hash, named ``<family>|<label>|...`` (the
last label may itself hold ``|``). The families and their labels:

==================  =========================  ====================================================
field               counted                    by
==================  =========================  ====================================================
``jobs|S|N``        jobs of name N that ended  the signals ``job_succeeded``, ``job_failed``
                    with final status S        (``will_retry`` false), ``job_cancelled``
``attempts|O|N``    attempts by outcome O      ``job_succeeded``, ``job_failed``
                    (succeeded, failed,
                    retried)
``wait|B``          attempts whose wait        ``job_succeeded``, ``job_failed`` (from the row's
(``wait_sum``)      (``enqueued_at`` to        ``enqueued_at`` and ``started_at``)
                    ``started_at``) fell in
                    bucket B
``run|B|N``         attempts of name N whose   the same (``started_at`` to the end; not for a
(``run_sum|N``)     run time fell in bucket B  worker lost, whose end is unknown)
``refused|W``       503s (W = middleware) and  ``count_refused``
                    refused enqueues (enqueue)
``recovery|E``      re-pushed messages         ``count_recovered``
                    (repushed), lost jobs
                    (lost), their workers
                    (lost_workers)
``schedule|S``      runs fired by schedule S   ``count_schedule_run``
==================  =========================  ====================================================

B is the index of the first bound of :data:`BUCKETS` the value is at most (``len(BUCKETS)``:
above them all); the metrics view adds them up into Prometheus' cumulative buckets. Job
names outside the registry are counted as :data:`OTHER_NAME`, and an offloaded view's rows
by their view only when it is one registered here (else by the job's name), so the number
of fields is bounded by the registered names and views, the buckets and the schedules.

Counting never fails the caller: a Redis error is logged and the increments dropped.
"""

from __future__ import annotations

import bisect
import logging
from datetime import datetime
from typing import Any

from django.utils import timezone

from ..logs import log_event, metrics_logger
from ..signals import job_cancelled, job_failed, job_succeeded
from . import broker
from .broker import tallies
from .registry import registered

#: Upper bounds (seconds) of the wait and run time histograms' buckets.
BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600,
)  # fmt: skip
#: The name label of jobs whose name is not registered in this process.
OTHER_NAME = "other"
SEPARATOR = "|"


def name_label(name: str, display_name: str | None = None) -> str:
    """``name`` when it is a registered job function's, else :data:`OTHER_NAME`; its row's
    ``display_name`` (an offloaded view) instead when the function counts rows by it."""
    job_function = registered(name)
    if job_function is None:
        return OTHER_NAME
    if display_name and job_function.counts_as(display_name):
        return display_name
    return name


def bucket_of(seconds: float) -> int:
    return bisect.bisect_left(BUCKETS, seconds)


def field(*parts: str) -> str:
    return SEPARATOR.join(parts)


def count_refused(queue: str, where: str) -> None:
    """One request answered 503 (``where`` = ``"middleware"``) or one enqueue refused with
    ``QueueFull`` (``"enqueue"``)."""
    _add(queue, {field("refused", where): 1})


def count_recovered(queue: str, *, repushed: int = 0, lost: int = 0, lost_workers: int = 0) -> None:
    """Recovery pushed ``repushed`` lost messages of ``queue`` again, and found ``lost`` jobs
    whose worker stopped sending heartbeats, of ``lost_workers`` workers (in one pass)."""
    increments = {
        field("recovery", "repushed"): repushed,
        field("recovery", "lost"): lost,
        field("recovery", "lost_workers"): lost_workers,
    }
    _add(queue, {key: amount for key, amount in increments.items() if amount})


def count_schedule_run(queue: str, schedule: str) -> None:
    _add(queue, {field("schedule", schedule): 1})


def count_attempt(job: Any, outcome: str, *, final: bool, now: datetime | None = None, ran: bool = True) -> None:
    """One attempt of ``job`` ended with ``outcome``; ``final``: the job ended with it
    (its status is final). ``ran``: the run time is known (not a worker lost)."""
    name = name_label(job.name, job.display_name)
    increments: dict[str, float] = {field("attempts", outcome, name): 1}
    if final:
        increments[field("jobs", str(job.status), name)] = 1
    started, enqueued = job.started_at, job.enqueued_at or job.created_at
    if started is not None and enqueued is not None:
        wait = max(0.0, (started - enqueued).total_seconds())
        increments[field("wait", str(bucket_of(wait)))] = 1
        increments["wait_sum"] = wait
        if ran:
            end = job.finished_at or now or timezone.now()
            run = max(0.0, (end - started).total_seconds())
            increments[field("run", str(bucket_of(run)), name)] = 1
            increments[field("run_sum", name)] = run
    _add(job.queue, increments)


def _add(queue: str, increments: dict[str, float]) -> None:
    if not increments:
        return
    try:
        tallies.add(queue, increments)
    except broker.RedisError as exc:
        log_event(metrics_logger, logging.WARNING, "metrics.not_counted", queue=queue, reason=str(exc))


def _on_succeeded(sender: Any, job: Any, **kwargs: Any) -> None:
    count_attempt(job, "succeeded", final=True)


def _on_failed(sender: Any, job: Any, will_retry: bool = False, **kwargs: Any) -> None:
    history = job.failed_attempts or []
    last = history[-1] if history and isinstance(history[-1], dict) else {}
    lost = str(last.get("exception_class", "")).endswith(".WorkerLost")
    count_attempt(job, "retried" if will_retry else "failed", final=not will_retry, ran=not lost)


def _on_cancelled(sender: Any, job: Any, **kwargs: Any) -> None:
    _add(job.queue, {field("jobs", "cancelled", name_label(job.name, job.display_name)): 1})


job_succeeded.connect(_on_succeeded, dispatch_uid="django_asyncjobs.tallies.succeeded")
job_failed.connect(_on_failed, dispatch_uid="django_asyncjobs.tallies.failed")
job_cancelled.connect(_on_cancelled, dispatch_uid="django_asyncjobs.tallies.cancelled")
