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
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ..conf import app_settings
from ..logs import log_event, worker_logger
from . import broker

#: When Redis cannot count a start, the job waits this long and is asked about again.
UNCOUNTED_WAIT = 1.0

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_RATE = re.compile(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*(s|sec|second|m|min|minute|h|hour|d|day)s?\s*", re.ASCII)


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``count`` starts per ``period`` seconds."""

    count: int
    period: float

    @classmethod
    def parse(cls, value: Any) -> RateLimit:
        """``"100/m"``, ``"5/s"``, ``"10/30s"``, ``(100, 60)`` or ``(100, timedelta(minutes=1))``;
        ``ValueError`` naming ``rate_limit`` otherwise."""
        if isinstance(value, RateLimit):
            return value
        count: Any
        period: Any
        if isinstance(value, str):
            found = _RATE.fullmatch(value)
            if found is None:
                raise ValueError(f'rate_limit must look like "100/m", "5/s" or "10/30s", got {value!r}')
            count, period = int(found[1]), float(found[2] or 1) * _UNITS[found[3][0]]
        elif isinstance(value, tuple) and len(value) == 2:
            count, period = value
            period = period.total_seconds() if isinstance(period, timedelta) else period
        else:
            raise ValueError(f'rate_limit must be "N/unit" or (count, seconds), got {value!r}')
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"rate_limit's count must be a whole number >= 1, got {count!r}")
        if isinstance(period, bool) or not isinstance(period, int | float) or period <= 0:
            raise ValueError(f"rate_limit's period must be a number of seconds > 0, got {period!r}")
        return cls(count, float(period))

    def __str__(self) -> str:
        return f"{self.count}/{self.period:g}s"


def start_wait(name: str, limit: RateLimit | None) -> float:
    """Seconds before an attempt of job ``name`` may start under ``limit`` (0.0: now, and the
    start is counted)."""
    if limit is None:
        return 0.0
    try:
        connection = broker.get_connection(app_settings.DEFAULT_QUEUE)
        return broker.rate_wait(connection, name, limit.count, limit.period)
    except broker.RedisError as exc:
        fields = {"name": name, "reason": str(exc), "retry_in_s": UNCOUNTED_WAIT}
        log_event(worker_logger, logging.WARNING, "rate_limit.uncounted", **fields)
        return UNCOUNTED_WAIT


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
    return f"{job.name}:{key(*(job.args or []), **(job.kwargs or {}))}"


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
