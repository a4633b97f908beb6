"""Filters for the dashboard templates: durations, rates, percentages, bar widths."""

from __future__ import annotations

from datetime import timedelta

from django import template
from django.utils.safestring import SafeString

from ..admin.charts import format_number
from ..admin.display import compact_duration

register = template.Library()

#: Shown for a figure that is not known.
EMPTY = "-"


@register.filter
def asyncjobs_seconds(value: float | None) -> str | SafeString:
    """``0.25`` -> ``"250ms"``, ``75`` -> ``"1m15s"`` (short, for the queue table), the exact
    seconds as its tooltip."""
    if value is None:
        return EMPTY
    return compact_duration(timedelta(seconds=value))


@register.filter
def asyncjobs_number(value: float | None) -> str:
    return EMPTY if value is None else format_number(value)


@register.filter
def asyncjobs_percent(value: float | None) -> str:
    """A fraction as a percentage: ``0.125`` -> ``"12.5 %"``."""
    return EMPTY if value is None else f"{format_number(value * 100)} %"


@register.filter
def asyncjobs_bar_width(value: float | None) -> int:
    """A fraction as a bar's width in whole percent, 0 to 100."""
    return 0 if value is None else max(0, min(100, round(value * 100)))
