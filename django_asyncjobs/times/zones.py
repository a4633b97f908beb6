"""Datetimes in UTC and as the database stores them: the one place that converts them.

Django stores datetimes aware in UTC with ``USE_TZ``, else naive in ``TIME_ZONE``.
Arithmetic on times (windows, intervals, cron) is done aware in UTC, so that adding
a duration adds elapsed time, not wall-clock time; values go back to the database's
form with :func:`db_datetime`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.conf import settings
from django.utils import timezone


def to_utc(value: datetime) -> datetime:
    """``value`` aware in UTC. A naive value is read in ``TIME_ZONE``, as Django stores
    datetimes without ``USE_TZ``."""
    if timezone.is_naive(value):
        value = timezone.make_aware(value, timezone.get_default_timezone())
    return value.astimezone(UTC)


def as_utc(value: datetime, what: str) -> datetime:
    """``value`` (an argument named ``what``) aware in UTC; stricter than :func:`to_utc`:
    not a datetime is a ``TypeError``, and a naive value with ``USE_TZ`` a ``ValueError``."""
    if not isinstance(value, datetime):
        raise TypeError(f"{what} must be a datetime, got {value!r}")
    if timezone.is_naive(value) and settings.USE_TZ:
        raise ValueError(f"{what} must be timezone-aware (USE_TZ is True), got naive {value!r}")
    return to_utc(value)


def db_datetime(value: datetime) -> datetime:
    """``value`` as the database takes it: aware in UTC, or naive in ``TIME_ZONE`` without ``USE_TZ``."""
    if settings.USE_TZ:
        return value.astimezone(UTC)
    return timezone.make_naive(value, timezone.get_default_timezone())
