"""Rates: at most ``count`` events per ``period`` seconds (``"100/m"``), for the rate limits
of jobs (``@job(rate_limit=...)``) and queues (``QUEUE_LIMITS`` ``RATE``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# A plural "s" only after a word: "ms" is not read as minutes.
_RATE = re.compile(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*(?:(sec|second|min|minute|hour|day)s?|(s|m|h|d))\s*", re.ASCII)
#: The longest period (a year): a start is remembered in Redis for a period.
MAX_PERIOD = 365 * 86400.0


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
            count, period = int(found[1]), float(found[2] or 1) * _UNITS[(found[3] or found[4])[0]]
        elif isinstance(value, tuple) and len(value) == 2:
            count, period = value
            period = period.total_seconds() if isinstance(period, timedelta) else period
        else:
            raise ValueError(f'rate_limit must be "N/unit" or (count, seconds), got {value!r}')
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"rate_limit's count must be a whole number >= 1, got {count!r}")
        if isinstance(period, bool) or not isinstance(period, int | float) or not 0 < period <= MAX_PERIOD:
            raise ValueError(f"rate_limit's period must be a number of seconds > 0, a year at most, got {period!r}")
        return cls(count, float(period))

    def __str__(self) -> str:
        return f"{self.count}/{self.period:g}s"
