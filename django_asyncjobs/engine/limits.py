"""Rate and concurrency limits: ``@job(rate_limit="100/m")``, at most that many of the job's
attempts start per period; ``@job(max_concurrency=N)`` (per ``concurrency_key`` when given),
at most N run at once. Both hold across every worker: they are kept in Redis
(:mod:`.broker.limits`). An attempt over a limit does not fail: its row goes back to
``scheduled``, due when the limit may allow a start, the attempt given back
(:func:`.outcomes.record_deferral`).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Any

from ..conf import app_settings
from ..logs import log_event, worker_logger
from ..times.rates import RateLimit
from . import broker

__all__ = ["RateLimit", "check_concurrency_keys", "concurrency_key", "free_slot", "start_wait", "take_slot"]

#: When Redis cannot count a start, the job waits this long and is asked about again.
UNCOUNTED_WAIT = 1.0


def start_wait(name: str, limit: RateLimit | None, queue: str) -> float:
    """Seconds before an attempt of job ``name`` on ``queue`` may start under ``limit`` and the
    queue's ``QUEUE_LIMITS`` ``RATE`` (0.0: now, and the start is counted against both)."""
    queue_rate = (app_settings.QUEUE_LIMITS.get(queue) or {}).get("RATE")
    if limit is None and queue_rate is None:
        return 0.0
    job = (name, (limit.count, limit.period)) if limit is not None else None
    per_queue = None
    if queue_rate is not None:
        parsed = _parsed(queue_rate)
        per_queue = (queue, (parsed.count, parsed.period))
    try:
        return broker.rate_wait(broker.get_connection(app_settings.DEFAULT_QUEUE), job=job, queue=per_queue)
    except broker.RedisError as exc:
        fields = {"name": name, "queue": queue, "reason": str(exc), "retry_in_s": UNCOUNTED_WAIT}
        log_event(worker_logger, logging.WARNING, "rate_limit.uncounted", **fields)
        return UNCOUNTED_WAIT


@lru_cache(maxsize=64)
def _parsed(text: str) -> RateLimit:
    return RateLimit.parse(text)


#: An attempt that finds every slot of its concurrency limit taken waits about this long
#: (spread by up to half as much again) and is asked about again.
SLOT_WAIT = 1.0


def concurrency_key(job: Any, limit: int | None, key: Callable[..., Any] | None) -> str | None:
    """The slots ``job`` runs in: its name, and ``key(*args, **kwargs)`` when given; ``None``
    when its function has no concurrency limit."""
    if limit is None:
        return None
    if key is None:
        return str(job.name)
    return f"{job.name}:{_slot_value(job.name, key(*(job.args or []), **(job.kwargs or {})))}"


def check_concurrency_keys(name: str, key: Callable[..., Any], calls: Iterable[tuple[Sequence[Any], Any]]) -> None:
    """At enqueue: ``key`` gives each call a slot (``ValueError`` if it raises, ``TypeError``
    if it returns neither a str nor an int), as a call whose slots cannot be known is refused."""
    for args, kwargs in calls:
        try:
            value = key(*args, **kwargs)
        except Exception as exc:
            raise ValueError(f"concurrency_key of {name} raised {type(exc).__name__}: {exc}") from exc
        _slot_value(name, value)


def _slot_value(name: str, value: Any) -> str | int:
    # Any other value's text may differ from call to call (an object's address): no limit at all.
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TypeError(f"concurrency_key of {name} must return a str or an int, got {type(value).__name__}")
    return value


def take_slot(job: Any, slots: str | None, limit: int | None, lease: float) -> float:
    """0.0 when ``job`` holds a slot of ``slots`` (or has no limit), else the seconds to wait."""
    if slots is None or limit is None:
        return 0.0
    try:
        if broker.take_slot(broker.get_connection(app_settings.DEFAULT_QUEUE), slots, str(job.pk), limit, lease):
            return 0.0
    except broker.RedisError as exc:
        fields = {"name": job.name, "reason": str(exc), "retry_in_s": SLOT_WAIT}
        log_event(worker_logger, logging.WARNING, "concurrency_limit.uncounted", **fields)
    return SLOT_WAIT * (1 + random.random() / 2)


def free_slot(job: Any, slots: str | None) -> None:
    """``job`` ended: its slot is free (if Redis cannot be told, when its lease ends)."""
    if slots is None:
        return
    try:
        broker.free_slot(broker.get_connection(app_settings.DEFAULT_QUEUE), slots, str(job.pk))
    except broker.RedisError as exc:
        log_event(worker_logger, logging.WARNING, "concurrency_limit.not_freed", name=job.name, reason=str(exc))
