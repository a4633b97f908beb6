"""Filters for the dashboard templates: durations, rates, percentages, bar widths."""

from __future__ import annotations

from datetime import timedelta

from django import template

from ..admin.charts import format_number
from ..admin.display import format_timedelta

register = template.Library()

#: Shown for a figure that is not known.
EMPTY = "-"


@register.filter
def asyncjobs_seconds(value: float | None) -> str:
    """``0.25`` -> ``"250 ms"``, ``75`` -> ``"1 min 15 s"``."""
    if value is None:
        return EMPTY
    return format_timedelta(timedelta(seconds=value))


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
