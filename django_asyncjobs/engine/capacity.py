"""Back pressure: when a queue is saturated, refuse new work early with a retry delay.

A queue is saturated when it holds ``MAX_DEPTH`` messages or more, or when its
oldest message has waited longer than ``MAX_AGE`` seconds (limits per queue in
``ASYNCJOBS["QUEUE_LIMITS"]``). The retry delay comes from Little's law: the
expected wait is the queue depth divided by the recent throughput (jobs finished
per second, counted by the workers), clamped to ``RETRY_AFTER_MIN``..``RETRY_AFTER_MAX``.

Reading a queue's state costs one Redis round trip, and each process keeps it
for ``BACKPRESSURE_CACHE_SECONDS``, so a check on the request path is usually free.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.signals import setting_changed
from django.db.models import F, FloatField, Sum
from django.dispatch import receiver
from django.utils import timezone

from ..conf import QueueLimits, app_settings
from ..exceptions import QueueFull
from ..logs import enqueue_logger, jobs_logger, log_event
from ..models import JobStats
from .broker import RedisError, queue_stats
from .tallies import count_refused

_cache: dict[str, tuple[float, QueueState]] = {}
_failures: dict[str, float] = {}
_lock = threading.Lock()


def estimate_wait(depth: int, throughput: float) -> float | None:
    """Little's law: seconds until a job added now starts. ``None`` when unknown (no throughput)."""
    if depth <= 0:
        return 0.0
    if throughput <= 0:
        return None
    return depth / throughput


def estimate_start(
    position: int, throughput: float, *, workers: int | None = None, run_time: float | None = None
) -> float | None:
    """Seconds until the job ``position`` messages from the head of its queue (0: next) starts.

    With the queue's live ``workers`` and its recent ``run_time`` (seconds per job), the
    workers start ``workers / run_time`` jobs a second (or the measured ``throughput``, if
    higher): the job starts after the ``position`` ahead of it, and half a run for the
    one running when it reached the head. On a quiet queue the measured throughput says
    only how little work there was, not how fast it goes, so it alone would make seconds
    minutes. Without them it is Little's law, as for a new job. ``None``: unknown, or no
    live worker (``workers == 0``): nothing starts it until one comes.
    """
    if workers == 0:
        return None
    if workers is not None and run_time is not None:
        rate = max(workers / max(run_time, MIN_RUN_TIME), throughput)
        return (position + 0.5) / rate
    return estimate_wait(position + 1, throughput)


#: Shortest run time :func:`estimate_start` divides by (a rollup may say 0 for no-op jobs).
MIN_RUN_TIME = 0.001
#: How far back :func:`recent_run_time` looks, and how long a process keeps what it found.
RUN_TIME_WINDOW = timedelta(hours=1)
RUN_TIME_CACHE_SECONDS = 60.0

_run_times: dict[str, tuple[float, float | None]] = {}


def recent_run_time(queue: str) -> float | None:
    """The median run time of ``queue``'s jobs over the last hour: the per-minute ``JobStats``
    medians, each weighted by its jobs (one indexed query, kept a minute per process);
    ``None`` when no rollup measured one."""
    now = time.monotonic()
    cached = _run_times.get(queue)
    if cached is not None and now - cached[0] < RUN_TIME_CACHE_SECONDS:
        return cached[1]
    finished = F("succeeded") + F("failed") + F("cancelled")
    totals = JobStats.objects.filter(
        queue=queue, period_start__gte=timezone.now() - RUN_TIME_WINDOW, run_p50__isnull=False
    ).aggregate(weighted=Sum(F("run_p50") * finished, output_field=FloatField()), jobs=Sum(finished))
    run_time = totals["weighted"] / totals["jobs"] if totals["jobs"] else None
    with _lock:
        _run_times[queue] = (now, run_time)
    return run_time


def clamp_retry_after(wait: float | None) -> int:
    """Whole seconds for ``Retry-After``: the wait within the configured bounds."""
    low, high = app_settings.RETRY_AFTER_MIN, app_settings.RETRY_AFTER_MAX
    if wait is None:
        return int(high)
    return int(min(high, max(low, math.ceil(wait))))


@dataclass(frozen=True)
class QueueState:
    queue: str
    depth: int
    #: Seconds the oldest waiting message has waited; ``None`` when the queue is empty.
    oldest_age: float | None
    #: Jobs finished per second, recently.
    throughput: float
    max_depth: int | None
    max_age: float | None

    @property
    def estimated_wait(self) -> float | None:
        return estimate_wait(self.depth, self.throughput)

    @property
    def retry_after(self) -> int:
        return clamp_retry_after(self.estimated_wait)

    def is_saturated(self, incoming: int = 0) -> bool:
        return bool(self.reason_for(incoming))

    @property
    def reason(self) -> str:
        return self.reason_for(0) or "not saturated"

    def reason_for(self, incoming: int) -> str:
        if self.max_depth is not None and self.depth + incoming > self.max_depth:
            return f"{self.depth} waiting, limit {self.max_depth}"
        if self.max_age is not None and self.oldest_age is not None and self.oldest_age > self.max_age:
            return f"oldest waiting {self.oldest_age:.0f}s, limit {self.max_age:g}s"
        return ""


def limits_for(queue: str) -> tuple[int | None, float | None]:
    limits = app_settings.QUEUE_LIMITS.get(queue) or QueueLimits()
    return limits.get("MAX_DEPTH"), limits.get("MAX_AGE")


def queue_state(queue: str, *, max_cache_age: float | None = None) -> QueueState:
    """The state of ``queue``, from this process's cache when fresh enough."""
    ttl = app_settings.BACKPRESSURE_CACHE_SECONDS if max_cache_age is None else max_cache_age
    now = time.monotonic()
    cached = _cache.get(queue)
    if cached is not None and now - cached[0] < ttl:
        return cached[1]
    stats = queue_stats(queue)
    max_depth, max_age = limits_for(queue)
    oldest_age = None
    if stats.oldest_enqueued_at is not None:
        oldest_age = max(0.0, (datetime.now(UTC) - stats.oldest_enqueued_at).total_seconds())
    state = QueueState(queue, stats.depth, oldest_age, stats.throughput, max_depth, max_age)
    with _lock:
        _cache[queue] = (now, state)
    return state


def check(queue: str, incoming: int = 1, *, name: str | None = None) -> None:
    """Raise :class:`QueueFull` if ``incoming`` more jobs (of the job function ``name``, if
    known) would overload ``queue``, and log it (``job.refused``).

    Free for queues without limits. If Redis cannot be reached the check lets the
    work through: the enqueue keeps its row for recovery, and refusing work because
    the doorbell is broken would turn a Redis outage into a site outage.
    """
    if limits_for(queue) == (None, None):
        return
    state = queue_state_or_none(queue)
    if state is None:
        return
    reason = state.reason_for(incoming)
    if reason:
        refused = QueueFull(state, reason)
        count_refused(queue, "enqueue")
        log_refused(refused, name=name, jobs=incoming)
        raise refused


def log_refused(refused: QueueFull, **fields: Any) -> None:
    """One ``job.refused`` line: work for a saturated queue turned away (an enqueue, a 503)."""
    fields.update(queue=refused.queue, reason=refused.reason, retry_after_s=refused.retry_after)
    log_event(jobs_logger, logging.WARNING, "job.refused", **fields)


def queue_state_or_none(queue: str) -> QueueState | None:
    """:func:`queue_state`, or ``None`` when Redis cannot be reached.

    A failure is remembered for ``BACKPRESSURE_CACHE_SECONDS`` too, so that during a
    Redis outage requests do not each wait for a connection attempt.
    """
    failed_at = _failures.get(queue)
    if failed_at is not None and time.monotonic() - failed_at < app_settings.BACKPRESSURE_CACHE_SECONDS:
        return None
    try:
        return queue_state(queue)
    except RedisError as exc:
        _failures[queue] = time.monotonic()
        log_event(enqueue_logger, logging.WARNING, "backpressure.unchecked", queue=queue, reason=str(exc))
        return None


def forget_state(queue: str) -> None:
    """Drop this process's cached state of ``queue`` (its depth just changed here)."""
    with _lock:
        _cache.pop(queue, None)


def forget_states() -> None:
    with _lock:
        _cache.clear()
        _failures.clear()
        _run_times.clear()


@receiver(setting_changed)
def _forget_on_settings_change(setting: str, **kwargs: Any) -> None:
    if setting in ("ASYNCJOBS", "RQ_QUEUES"):
        forget_states()
