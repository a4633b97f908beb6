"""The SVG charts of the dashboard: scales, coordinates, gaps, escaping, accessible titles."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from django_asyncjobs.admin.charts import Frame, Point, format_number, nice_ceiling, nice_scale, render_chart

SVG = "{http://www.w3.org/2000/svg}"


def test_nice_scales_and_numbers() -> None:
    assert [nice_ceiling(v) for v in (0, 0.3, 1, 1.2, 2.1, 4, 7, 10, 1234)] == [1, 0.5, 1, 2, 2.5, 5, 10, 10, 2000]
    assert [nice_scale(v) for v in (0, 4, 3.3, 23, 200, 0.7)] == [
        (1, 0.5),
        (4, 1),
        (4, 1),
        (30, 10),
        (200, 50),
        (0.8, 0.2),
    ]
    assert [format_number(v) for v in (0, 0.25, 1.5, 12.34, 1250)] == ["0", "0.25", "1.5", "12.3", "1250"]


def test_a_line_chart_draws_its_points_with_gaps_and_accessible_titles() -> None:
    frame = Frame(width=400, height=200, left=50, right=10, top=10, bottom=40)  # plot: 340 x 150
    points = [Point("10:00", 1.0), Point("10:01", None), Point("10:02", 3.0), Point("10:03", 4.0)]
    svg = render_chart(
        "line", points, chart_id="c1", title="Wait <p95> & more", y_label="seconds", unit="s", frame=frame
    )
    root = ET.fromstring(str(svg))  # well-formed XML: the title's < and & are escaped

    assert root.get("role") == "img" and root.get("aria-labelledby") == "c1-title c1-desc"
    assert root.findtext(f"{SVG}title") == "Wait <p95> & more"
    assert root.findtext(f"{SVG}desc") == "4 points from 10:00 to 10:03. Highest: 4 s at 10:03."
    # The y axis goes up to 4 in steps of 1: y = 160 - value / 4 * 150; four slots 85 wide from x = 50.
    (line,) = root.findall(f"{SVG}polyline")  # the lone first point starts no line
    assert line.get("points") == "262.5,47.5 347.5,10.0"
    circles = [(c.get("cx"), c.get("cy"), c.findtext(f"{SVG}title")) for c in root.findall(f"{SVG}circle")]
    assert circles == [
        ("92.5", "122.5", "10:00: 1 s"),
        ("262.5", "47.5", "10:02: 3 s"),
        ("347.5", "10.0", "10:03: 4 s"),
    ]
    texts = [t.text for t in root.findall(f"{SVG}text")]
    assert texts[:5] == ["0", "1", "2", "3", "4"] and "seconds" in texts and "10:00" in texts


def test_a_bar_chart_draws_bars_proportional_to_the_values() -> None:
    frame = Frame(width=400, height=200, left=50, right=10, top=10, bottom=40)
    points = [Point("a", 0.0), Point("b", 2.0, tick=True), Point("c", 1.0)]
    root = ET.fromstring(str(render_chart("bar", points, chart_id="b", title="F", y_label="n")))
    heights = [float(rect.get("height", "")) for rect in root.findall(f"{SVG}rect")]
    assert heights[0] == 0 and heights[1] == pytest.approx(2 * heights[2])
    assert [rect.findtext(f"{SVG}title") for rect in root.findall(f"{SVG}rect")] == ["a: 0", "b: 2", "c: 1"]
    labels = [t.text for t in root.findall(f"{SVG}text")]
    assert "b" in labels and "a" not in labels and "c" not in labels  # only the marked point is labelled
    svg = render_chart("bar", [Point("a", None)], chart_id="e", title="Empty", y_label="n", frame=frame)
    root = ET.fromstring(str(svg))
    assert root.findall(f"{SVG}rect") == [] and root.findtext(f"{SVG}desc") == "1 points from a to a. No data."


def test_an_unknown_kind_of_chart_is_refused() -> None:
    with pytest.raises(ValueError, match="Unknown chart kind 'pie'"):
        render_chart("pie", [], chart_id="p", title="P", y_label="n")
