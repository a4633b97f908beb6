"""Small server-side SVG charts (line and bar) for the dashboard: no script, no external asset.

Every text is escaped. A chart is an ``<svg role="img">`` labelled by its ``<title>``
and ``<desc>`` (what it shows, its range and its highest value), and each point
carries a ``<title>`` of its own, which browsers show as a tooltip. Colours come
from the classes (see ``static/django_asyncjobs/dashboard.css``), with plain
attributes as a fallback for a chart shown without the stylesheet.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe


@dataclass(frozen=True)
class Point:
    #: The x-axis text of the point, e.g. ``"14:05"``.
    label: str
    #: ``None``: nothing measured (a gap in a line, no bar).
    value: float | None
    #: Label this point on the x axis. When no point is marked, every n-th one is.
    tick: bool = False


@dataclass(frozen=True)
class Frame:
    """The chart's size and the margins around its plot area, in SVG user units."""

    width: int = 420
    height: int = 180
    left: int = 48
    right: int = 10
    top: int = 10
    bottom: int = 38

    @property
    def plot_width(self) -> float:
        return float(self.width - self.left - self.right)

    @property
    def plot_height(self) -> float:
        return float(self.height - self.top - self.bottom)

    @property
    def baseline(self) -> float:
        return float(self.height - self.bottom)

    def x(self, index: int, count: int) -> float:
        """The centre of the ``index``-th of ``count`` equal slots (bars and line points align)."""
        return self.left + (index + 0.5) * self.plot_width / max(count, 1)

    def y(self, value: float, top_value: float) -> float:
        return self.baseline - min(max(value, 0.0), top_value) / top_value * self.plot_height


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten that is at least ``value`` (1 for 0)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0):
        if value <= step * power * (1 + 1e-9):
            return step * power
    return 10 * power


def nice_scale(highest: float, intervals: int = 4) -> tuple[float, float]:
    """``(top, step)`` of a y axis from 0 showing ``highest``: a round step, at most
    ``intervals`` of them. ``(1, 0.5)`` when there is nothing above 0."""
    if highest <= 0 or not math.isfinite(highest):
        return 1.0, 0.5
    step = nice_ceiling(highest / intervals)
    return math.ceil(highest / step * (1 - 1e-9)) * step, step


def format_number(value: float) -> str:
    """Few significant digits, no exponent and no trailing zeros: ``1250``, ``12.5``, ``0.25``."""
    if abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _join(parts: Sequence[SafeString]) -> SafeString:
    """Concatenate pieces built with ``format_html`` (so already escaped)."""
    return mark_safe("".join(parts))


def _value_text(value: float | None, unit: str) -> str:
    if value is None:
        return "no data"
    return f"{format_number(value)} {unit}".strip()


def _description(points: Sequence[Point], unit: str) -> str:
    if not points:
        return "No data."
    measured = [(point.value, point.label) for point in points if point.value is not None]
    span = f"{len(points)} points from {points[0].label} to {points[-1].label}."
    if not measured:
        return f"{span} No data."
    highest, label = max(measured, key=lambda item: item[0])
    return f"{span} Highest: {_value_text(highest, unit)} at {label}."


def _axes(
    points: Sequence[Point], frame: Frame, scale: tuple[float, float], y_label: str, x_label: str, ticks: int
) -> SafeString:
    top_value, step = scale
    parts = []
    for index in range(round(top_value / step) + 1):
        value = step * index
        y = frame.y(value, top_value)
        parts.append(
            format_html(
                '<line class="asyncjobs-chart-grid" x1="{}" y1="{}" x2="{}" y2="{}" stroke="#ddd"/>'
                '<text class="asyncjobs-chart-tick" x="{}" y="{}" text-anchor="end">{}</text>',
                frame.left,
                f"{y:.1f}",
                frame.width - frame.right,
                f"{y:.1f}",
                frame.left - 6,
                f"{y + 4:.1f}",
                format_number(value),
            )
        )
    marked = [index for index, point in enumerate(points) if point.tick]
    every = max(1, math.ceil(len(points) / max(ticks, 1)))
    for index in marked or range(0, len(points), every):
        parts.append(
            format_html(
                '<text class="asyncjobs-chart-tick" x="{}" y="{}" text-anchor="middle">{}</text>',
                f"{frame.x(index, len(points)):.1f}",
                frame.baseline + 16,
                points[index].label,
            )
        )
    middle = frame.top + frame.plot_height / 2
    parts.append(
        format_html(
            '<line class="asyncjobs-chart-axis" x1="{}" y1="{}" x2="{}" y2="{}" stroke="#888"/>'
            '<text class="asyncjobs-chart-label" x="12" y="{}" text-anchor="middle" '
            'transform="rotate(-90 12 {})">{}</text>'
            '<text class="asyncjobs-chart-label" x="{}" y="{}" text-anchor="middle">{}</text>',
            frame.left,
            frame.baseline,
            frame.width - frame.right,
            frame.baseline,
            f"{middle:.1f}",
            f"{middle:.1f}",
            y_label,
            f"{frame.left + frame.plot_width / 2:.1f}",
            frame.height - 4,
            x_label,
        )
    )
    return _join(parts)


def _lines(points: Sequence[Point], frame: Frame, top_value: float, unit: str) -> SafeString:
    segments: list[list[str]] = [[]]
    markers = []
    for index, point in enumerate(points):
        if point.value is None:
            segments.append([])
            continue
        x, y = frame.x(index, len(points)), frame.y(point.value, top_value)
        segments[-1].append(f"{x:.1f},{y:.1f}")
        markers.append(
            format_html(
                '<circle class="asyncjobs-chart-point" cx="{}" cy="{}" r="2.5"><title>{}: {}</title></circle>',
                f"{x:.1f}",
                f"{y:.1f}",
                point.label,
                _value_text(point.value, unit),
            )
        )
    lines = [
        format_html(
            '<polyline class="asyncjobs-chart-line" points="{}" fill="none" stroke="currentColor"/>', " ".join(segment)
        )
        for segment in segments
        if len(segment) > 1
    ]
    return _join([*lines, *markers])


def _bars(points: Sequence[Point], frame: Frame, top_value: float, unit: str) -> SafeString:
    slot = frame.plot_width / max(len(points), 1)
    width = max(slot * 0.8, 1.0)
    parts = []
    for index, point in enumerate(points):
        if point.value is None:
            continue
        y = frame.y(point.value, top_value)
        parts.append(
            format_html(
                '<rect class="asyncjobs-chart-bar" x="{}" y="{}" width="{}" height="{}" fill="currentColor">'
                "<title>{}: {}</title></rect>",
                f"{frame.x(index, len(points)) - width / 2:.1f}",
                f"{y:.1f}",
                f"{width:.1f}",
                f"{frame.baseline - y:.1f}",
                point.label,
                _value_text(point.value, unit),
            )
        )
    return _join(parts)


def render_chart(
    kind: str,
    points: Sequence[Point],
    *,
    chart_id: str,
    title: str,
    y_label: str,
    x_label: str = "",
    unit: str = "",
    frame: Frame | None = None,
    x_ticks: int = 6,
) -> SafeString:
    """An inline ``<svg>`` chart of ``points``; ``kind`` is ``"line"`` or ``"bar"``.

    The y axis runs from 0 to a round value (:func:`nice_scale`). ``chart_id``
    must be unique in the page (it names the title and description).
    """
    if kind not in ("line", "bar"):
        raise ValueError(f"Unknown chart kind {kind!r}; use 'line' or 'bar'.")
    frame = frame or Frame()
    scale = nice_scale(max((p.value for p in points if p.value is not None), default=0.0))
    plot = (_lines if kind == "line" else _bars)(points, frame, scale[0], unit)
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" class="asyncjobs-chart asyncjobs-chart-{}" '
        'viewBox="0 0 {} {}" role="img" aria-labelledby="{}-title {}-desc">'
        '<title id="{}-title">{}</title><desc id="{}-desc">{}</desc>{}{}</svg>',
        kind,
        frame.width,
        frame.height,
        chart_id,
        chart_id,
        chart_id,
        title,
        chart_id,
        _description(points, unit),
        _axes(points, frame, scale, y_label, x_label, x_ticks),
        plot,
    )
