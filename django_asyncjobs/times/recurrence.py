"""When a schedule is due: cron expressions (croniter, in a time zone) and fixed intervals.

Pure functions, no database: the model validates with them and the scheduler
computes the next run with them.
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta, tzinfo

from croniter import CroniterBadDateError, croniter
from django.conf import settings

from ..conf import app_settings
from .zones import db_datetime, to_utc


def validate_cron(expression: str) -> str:
    """``expression`` stripped; ``ValueError`` explaining what is wrong otherwise."""
    text = " ".join(str(expression).split())
    fields = text.split(" ") if text else []
    if len(fields) != 5:
        raise ValueError(
            f"Invalid cron expression {expression!r}: expected 5 fields (minute hour day-of-month month "
            f"day-of-week), got {len(fields)}."
        )
    if not croniter.is_valid(text):
        raise ValueError(f"Invalid cron expression {expression!r}: a field is out of range or malformed.")
    try:
        croniter(text, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except CroniterBadDateError:
        raise ValueError(f"Invalid cron expression {expression!r}: it matches no date (e.g. February 30).") from None
    return text


def resolve_timezone(name: str | None) -> tzinfo:
    """The zone ``name``, else ``SCHEDULE_TIMEZONE``, else ``settings.TIME_ZONE``, else UTC."""
    chosen = name or app_settings.SCHEDULE_TIMEZONE or getattr(settings, "TIME_ZONE", None) or "UTC"
    try:
        return zoneinfo.ZoneInfo(chosen)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"Unknown time zone {chosen!r}: use an IANA name such as 'Europe/Paris' or 'UTC'.") from exc


def next_cron_time(expression: str, zone: tzinfo, after: datetime, previous: datetime | None = None) -> datetime:
    """The first time strictly after ``after`` that matches ``expression`` in ``zone`` (in UTC).

    When clocks go back, a wall-clock time happens twice; like cron, a schedule runs
    at it once: a time whose local wall-clock reading equals ``previous``'s is skipped.
    """
    iterator = croniter(expression, to_utc(after).astimezone(zone))
    following: datetime = iterator.get_next(datetime)
    if previous is not None:
        previous_local = to_utc(previous).astimezone(zone).replace(tzinfo=None)
        while following.replace(tzinfo=None) == previous_local:
            following = iterator.get_next(datetime)
    return following.astimezone(UTC)


def next_interval_time(interval: timedelta, anchor: datetime, after: datetime) -> datetime:
    """The first ``anchor + k * interval`` strictly after ``after`` (runs stay on their grid)."""
    anchor, after = to_utc(anchor), to_utc(after)
    if anchor > after:
        return anchor
    steps = (after - anchor) // interval + 1
    return anchor + steps * interval


def next_run_time(
    *, cron: str, interval: timedelta | None, timezone_name: str, after: datetime, anchor: datetime | None = None
) -> datetime:
    """The next run after ``after`` of a schedule with ``cron`` or ``interval``.

    An interval schedule keeps to the grid of ``anchor`` (its previous due time);
    without one its first run is one interval after ``after``.
    """
    if cron:
        return db_datetime(next_cron_time(cron, resolve_timezone(timezone_name), after, previous=anchor))
    if interval is None:
        raise ValueError("A schedule needs a cron expression or an interval.")
    start = to_utc(anchor) if anchor is not None else to_utc(after) + interval
    return db_datetime(next_interval_time(interval, start, after))


def runs_before(
    *, cron: str, interval: timedelta | None, timezone_name: str, first: datetime, before: datetime, limit: int
) -> tuple[int, datetime]:
    """How many runs from ``first`` (a run time, included) come before ``before``, and the
    first run at or after ``before``. Past ``limit`` runs of a cron schedule the count
    stops at ``limit`` (the run returned is still right)."""
    if interval is not None and not cron:
        start, end = to_utc(first), to_utc(before)
        count = -((start - end) // interval) if end > start else 0  # ceil((end - start) / interval)
        return count, db_datetime(start + count * interval)
    count, run = 0, first
    while to_utc(run) < to_utc(before):
        if count == limit:
            return count, next_run_time(
                cron=cron, interval=interval, timezone_name=timezone_name, after=before - timedelta(microseconds=1)
            )
        run = next_run_time(cron=cron, interval=interval, timezone_name=timezone_name, after=run, anchor=run)
        count += 1
    return count, run
