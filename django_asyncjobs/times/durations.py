"""Durations written as ``"90s"``, ``"5m"``, ``"1h30m"``, ``"7d"``, a number of seconds,
or a ``timedelta``: for intervals, aggregation windows and ``--older-than``."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from django.utils.dateparse import parse_duration as parse_django_duration

_UNITS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_PART = re.compile(r"(\d+(?:\.\d+)?)([wdhms])")
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?[wdhms])+")

DURATION_HELP = 'a duration such as "90s", "5m", "1h30m", "7d" or "2w", a number of seconds, or a timedelta'


def parse_duration(value: Any, *, what: str = "duration") -> timedelta:
    """``value`` as a positive ``timedelta``; ``ValueError`` naming ``what`` otherwise."""
    result: timedelta | None = None
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        result = timedelta(seconds=value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        if _WHOLE.fullmatch(text):
            result = timedelta(seconds=sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(text)))
        elif text:
            result = parse_django_duration(value.strip())
    if result is None:
        raise ValueError(f"{what} must be {DURATION_HELP}; got {value!r}")
    if result <= timedelta(0):
        raise ValueError(f"{what} must be longer than zero; got {value!r}")
    return result


def format_duration(value: timedelta) -> str:
    """The shortest ``"1h30m"``-style spelling of ``value`` (whole seconds)."""
    seconds = int(value.total_seconds())
    parts = []
    for unit, size in _UNITS.items():
        if unit == "w":
            continue
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"
