"""When a schedule is due: cron expressions (croniter, in a time zone) and fixed intervals.

Pure functions, no database: the model validates with them and the scheduler
computes the next run with them.
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta, tzinfo

from django.conf import settings
from django.utils import timezone

from .conf import app_settings


def validate_cron(expression: str) -> str:
    """``expression`` stripped; ``ValueError`` explaining what is wrong otherwise."""
    from croniter import croniter

    text = " ".join(str(expression).split())
    fields = text.split(" ") if text else []
    if len(fields) != 5:
        raise ValueError(
            f"Invalid cron expression {expression!r}: expected 5 fields (minute hour day-of-month month "
            f"day-of-week), got {len(fields)}."
        )
    if not croniter.is_valid(text):
        raise ValueError(f"Invalid cron expression {expression!r}: a field is out of range or malformed.")
    return text


def resolve_timezone(name: str | None) -> tzinfo:
    """The zone ``name``, else ``SCHEDULE_TIMEZONE``, else ``settings.TIME_ZONE``, else UTC."""
    chosen = name or app_settings.SCHEDULE_TIMEZONE or getattr(settings, "TIME_ZONE", None) or "UTC"
    try:
        return zoneinfo.ZoneInfo(str(chosen))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"Unknown time zone {chosen!r}: use an IANA name such as 'Europe/Paris' or 'UTC'.") from exc


def _aware(value: datetime) -> datetime:
    return value if timezone.is_aware(value) else value.replace(tzinfo=UTC)


def next_cron_time(expression: str, zone: tzinfo, after: datetime) -> datetime:
    """The first time strictly after ``after`` that matches ``expression`` in ``zone`` (in UTC)."""
    from croniter import croniter

    start = _aware(after).astimezone(zone)
    following: datetime = croniter(expression, start).get_next(datetime)
    return following.astimezone(UTC)


def next_interval_time(interval: timedelta, anchor: datetime, after: datetime) -> datetime:
    """The first ``anchor + k * interval`` strictly after ``after`` (runs stay on their grid)."""
    anchor, after = _aware(anchor), _aware(after)
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
        return next_cron_time(cron, resolve_timezone(timezone_name), after)
    if interval is None:
        raise ValueError("A schedule needs a cron expression or an interval.")
    return next_interval_time(interval, anchor or _aware(after) + interval, after)
