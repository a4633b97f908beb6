"""Aggregations used by the test suite (imported by tests/testapp/jobs.py).

Each writes a ``Call`` row per real execution, labelled with its name, so tests can
count how often a window ran.
"""

from __future__ import annotations

from datetime import datetime

from asgiref.sync import sync_to_async

from django_asyncjobs.aggregations.declarations import aggregation

from .models import Call


def _record(name: str, since: datetime, until: datetime) -> None:
    Call.objects.create(label=name, data={"since": since.isoformat(), "until": until.isoformat()})


@aggregation(name="tests.hourly", every="1h")
def hourly(since: datetime, until: datetime) -> None:
    _record("tests.hourly", since, until)


@aggregation(name="tests.inline", every="15m", enqueue=False)
def inline(since: datetime, until: datetime) -> None:
    _record("tests.inline", since, until)


@aggregation(name="tests.odd_hours_fail", every="1h", queue="low")
def odd_hours_fail(since: datetime, until: datetime) -> None:
    """Fails for the windows starting at an odd hour."""
    _record("tests.odd_hours_fail", since, until)
    if since.hour % 2:
        raise RuntimeError(f"odd hour {since.hour}")


@aggregation(name="tests.async_daily", every="1d")
async def async_daily(since: datetime, until: datetime) -> None:
    await sync_to_async(_record)("tests.async_daily", since, until)
