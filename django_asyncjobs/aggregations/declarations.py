"""Declaring aggregations: ``@aggregation``, the registry, and how windows are aligned.

Windows are ``[since, until)`` with ``until - since == every``, aligned to multiples of
``every`` counted from the Unix epoch (1970-01-01 00:00 UTC): hourly windows start on
the hour and daily windows at midnight UTC. Recording and running windows is in
:mod:`.aggregating`. See docs/aggregation.md.

No model is imported here, so ``@aggregation`` can be used in modules imported while
Django sets up.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from asgiref.sync import async_to_sync
from django.utils import timezone

from ..engine.functions import JobFunction, JobOptions, register
from ..engine.registry import source_of, unregister
from ..exceptions import AggregationNotRegistered, ConfigurationError
from ..times.durations import parse_duration
from ..times.zones import as_utc

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

AggregationFunc = Callable[[datetime, datetime], Any]

_aggregations: dict[str, Aggregation] = {}


@dataclass(frozen=True)
class Aggregation:
    """A registered aggregation. Calling it calls the function with ``(since, until)``."""

    name: str
    func: AggregationFunc
    every: timedelta
    enqueue: bool
    grace: timedelta
    job_function: JobFunction[[str, str], dict[str, str]]

    def __call__(self, since: datetime, until: datetime) -> Any:
        if inspect.iscoroutinefunction(self.func):
            return async_to_sync(self.func)(since, until)
        return self.func(since, until)

    def window_start(self, moment: datetime) -> datetime:
        """Start of the window containing ``moment`` (aware, UTC)."""
        moment = as_utc(moment, "moment")
        return EPOCH + ((moment - EPOCH) // self.every) * self.every

    def last_completed(self, now: datetime | None = None) -> tuple[datetime, datetime]:
        """The latest window that ended ``grace`` or more before ``now``."""
        until = self.window_start(as_utc(now or timezone.now(), "now") - self.grace)
        return until - self.every, until

    def windows_between(self, since: datetime, until: datetime) -> list[tuple[datetime, datetime]]:
        """The windows overlapping ``[since, until)``, oldest first."""
        return list(_iter_windows(self, since, until))


def _iter_windows(agg: Aggregation, since: datetime, until: datetime) -> Iterator[tuple[datetime, datetime]]:
    since, until = as_utc(since, "since"), as_utc(until, "until")
    if since >= until:
        raise ValueError(f"since ({since.isoformat()}) must be before until ({until.isoformat()})")
    start = agg.window_start(since)
    while start < until:
        yield start, start + agg.every
        start += agg.every


def aggregation(
    *,
    every: str | timedelta | float,
    name: str | None = None,
    queue: str | None = None,
    max_attempts: int | None = None,
    timeout: int | None = None,
    enqueue: bool = True,
    grace: str | timedelta | float | None = None,
) -> Callable[[AggregationFunc], Aggregation]:
    """Register ``func(since, until)`` as an aggregation run once per completed window.

    ``every``: the window length ("1h", "15m", "1d", seconds or a timedelta, whole
    seconds). ``enqueue=True`` runs each window as a job on ``queue`` (also registered
    as a job under ``name``); ``enqueue=False`` runs it in the scheduler's process.
    ``grace``: how long after its end a window becomes due (for rows committed late).
    """

    def decorate(func: AggregationFunc) -> Aggregation:
        return register_aggregation(
            func,
            every=every,
            name=name,
            queue=queue,
            max_attempts=max_attempts,
            timeout=timeout,
            enqueue=enqueue,
            grace=grace,
        )

    return decorate


def register_aggregation(
    func: AggregationFunc,
    *,
    every: str | timedelta | float,
    name: str | None = None,
    queue: str | None = None,
    max_attempts: int | None = None,
    timeout: int | None = None,
    enqueue: bool = True,
    grace: str | timedelta | float | None = None,
) -> Aggregation:
    """The function form of ``@aggregation``."""
    if not callable(func):
        raise TypeError(f"@aggregation decorates functions, got {func!r}")
    if name is None and "<locals>" in getattr(func, "__qualname__", ""):
        raise ConfigurationError(f"{func.__qualname__} is defined inside another function; give it a name=.")
    agg_name = name or f"{func.__module__}.{func.__qualname__}"
    what = f"@aggregation {agg_name!r}"
    try:
        period = parse_duration(every, what=f"{what}: every")
        settle = _parse_grace(grace, what)
        options = JobOptions(queue=queue, max_attempts=max_attempts, timeout=timeout)
    except ValueError as exc:
        raise ConfigurationError(str(exc) if str(exc).startswith(what) else f"{what}: {exc}") from None
    if period % timedelta(seconds=1):
        raise ConfigurationError(f"{what}: every must be a whole number of seconds, got {period}")
    if not isinstance(enqueue, bool):
        raise ConfigurationError(f"{what}: enqueue must be True or False, got {enqueue!r}")
    _check_signature(func, what)
    existing = _aggregations.get(agg_name)
    if existing is not None and source_of(existing.func) != source_of(func):
        raise ConfigurationError(
            f"Two functions are registered as aggregation {agg_name!r}: "
            f"{source_of(existing.func)} and {source_of(func)}."
        )
    job_function = register(_window_job(agg_name), name=agg_name, options=options, internal=True)
    registered = Aggregation(agg_name, func, period, enqueue, settle, job_function)
    _aggregations[agg_name] = registered
    return registered


def _parse_grace(grace: str | timedelta | float | None, what: str) -> timedelta:
    if grace is None or (not isinstance(grace, str | bool) and not grace):
        return timedelta(0)
    return parse_duration(grace, what=f"{what}: grace")


def _check_signature(func: AggregationFunc, what: str) -> None:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(EPOCH, EPOCH)
    except TypeError:
        raise ConfigurationError(f"{what}: the function must accept two arguments (since, until).") from None


def _window_job(name: str) -> Callable[[str, str], dict[str, str]]:
    def run_aggregation_window(since: str, until: str) -> dict[str, str]:
        # lazy: @aggregation is used in modules imported while apps load; these import the models
        from ..engine.execution import current_job
        from .windows import claim_and_run

        agg = get_aggregation(name)
        start, end = _parse_iso(since), _parse_iso(until)
        job = current_job()
        result = claim_and_run(agg, start, end, job_id=job.pk if job else None, reraise=True)
        return {"since": since, "until": until, "outcome": result.outcome, "detail": result.detail}

    run_aggregation_window.__qualname__ = f"aggregation[{name}]"
    return run_aggregation_window


def _parse_iso(value: str) -> datetime:
    return as_utc(datetime.fromisoformat(value), "window bound")


def registered_aggregations() -> dict[str, Aggregation]:
    """A copy of the registry: name to aggregation."""
    return dict(_aggregations)


def get_aggregation(name: str | Aggregation) -> Aggregation:
    if isinstance(name, Aggregation):
        return name
    try:
        return _aggregations[name]
    except KeyError:
        raise AggregationNotRegistered(name, _aggregations) from None


def unregister_aggregation(name: str) -> None:
    """Remove an aggregation and its job from the registries (for tests)."""
    if _aggregations.pop(name, None) is not None:
        unregister(name)
