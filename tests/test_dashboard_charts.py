"""The dashboard's charts are well-formed SVG drawn from numbers alone: a mark per number with
the number on it, series told apart by pattern and label as well as colour, text escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from cds.dashboard.charts import (
    Category,
    Chart,
    Series,
    bar_chart,
    column_chart,
    rate_chart,
    ticks,
)
from cds.dashboard.figures import figures
from cds.store import RuleStats, WeeklyReport, WeekStats

SVG = "{http://www.w3.org/2000/svg}"
SHOWN = Series("times_shown", "shown", "#0072B2", "solid")
OVERRIDDEN = Series("overridden", "overridden", "#D55E00", "cross")
WEEKS = [Category("2026-W10", "W10", "2 Mar"), Category("2026-W11", "W11", "9 Mar")]
CHART = Chart("c", "RB-01 1.0.0: counts per ISO week", "week 2026-W10: shown 3, overridden 0")


def _svg(markup: str) -> ET.Element:
    return ET.fromstring(markup)  # noqa: S314 (markup drawn by the code under test)


def _marks(svg: ET.Element, tag: str) -> list[ET.Element]:
    return [e for e in svg.iter(f"{SVG}{tag}") if e.get("class") in {"bar", "point"}]


def test_steps_are_round_and_reach_the_largest_value() -> None:
    assert ticks(0) == [0, 1]
    assert ticks(3) == [0, 1, 2, 3]
    assert ticks(7) == [0, 2, 4, 6, 8]
    assert ticks(23) == [0, 5, 10, 15, 20, 25]
    assert ticks(1234) == [0, 500, 1000, 1500]


def test_a_column_chart_has_a_bar_per_category_and_series_with_its_value_on_it() -> None:
    svg = _svg(column_chart(CHART, WEEKS, [SHOWN, OVERRIDDEN], [[3, 1], [0, 2]]))
    bars = _marks(svg, "rect")
    assert [(b.get("data-category"), b.get("data-series"), b.get("data-value")) for b in bars] == [
        ("2026-W10", "times_shown", "3"),
        ("2026-W10", "overridden", "0"),
        ("2026-W11", "times_shown", "1"),
        ("2026-W11", "overridden", "2"),
    ]
    heights = [float(b.get("height", "")) for b in bars]
    assert heights[1] == 0
    assert heights[0] == 3 * heights[2]
    values = [t.text for t in svg.iter(f"{SVG}text") if t.get("class") == "value"]
    assert values == ["3", "0", "1", "2"]
    titles = [b.find(f"{SVG}title").text for b in bars]  # type: ignore[union-attr]
    assert titles[0] == "W10: shown 3"


def test_a_chart_is_an_image_named_by_its_title_and_described_by_its_desc() -> None:
    svg = _svg(column_chart(CHART, WEEKS, [SHOWN], [[3, 1]]))
    assert svg.get("role") == "img"
    assert svg.get("aria-labelledby") == "c-title c-desc"
    assert svg.find(f"{SVG}title").text == CHART.title  # type: ignore[union-attr]
    assert svg.find(f"{SVG}desc").text == CHART.description  # type: ignore[union-attr]


def test_a_patterned_series_fills_its_bars_and_its_legend_swatch_alike() -> None:
    svg = _svg(column_chart(CHART, WEEKS, [SHOWN, OVERRIDDEN], [[3, 1], [0, 2]]))
    (pattern,) = svg.iter(f"{SVG}pattern")
    assert pattern.get("id") == "c-overridden"
    legend = {
        g.get("data-series"): g.find(f"{SVG}rect").get("fill")  # type: ignore[union-attr]
        for g in svg.iter(f"{SVG}g")
        if g.get("class") == "legend-item"
    }
    assert legend == {"times_shown": "#0072B2", "overridden": "url(#c-overridden)"}
    fills = {b.get("data-series"): b.get("fill") for b in _marks(svg, "rect")}
    assert fills == legend
    labels = [t.text for t in svg.iter(f"{SVG}text") if t.text in {"shown", "overridden"}]
    assert labels == ["shown", "overridden"]


def test_bars_too_narrow_for_a_number_leave_it_to_the_table() -> None:
    weeks = [Category(f"2026-W{n:02d}", f"W{n:02d}") for n in range(1, 53)]
    svg = _svg(column_chart(CHART, weeks, [SHOWN, OVERRIDDEN], [[1] * 52, [2] * 52]))
    assert len(_marks(svg, "rect")) == 104
    assert [t for t in svg.iter(f"{SVG}text") if t.get("class") == "value"] == []
    assert len([t for t in svg.iter(f"{SVG}text") if t.get("class") == "axis-label"]) == 13


def test_a_rate_chart_has_a_point_per_category_with_answers_and_says_where_none_came() -> None:
    weeks = [*WEEKS, Category("2026-W12", "W12", "16 Mar")]
    rate = Series("acceptance_rate", "acceptance rate", "#009E73", "solid")
    svg = _svg(rate_chart(CHART, weeks, [(1, 2), (0, 0), (3, 3)], rate))
    points = _marks(svg, "circle")
    assert [(p.get("data-category"), p.get("data-value")) for p in points] == [
        ("2026-W10", "1/2"),
        ("2026-W12", "3/3"),
    ]
    texts = [t.text for t in svg.iter(f"{SVG}text") if t.get("class", "").startswith("value")]
    assert texts == ["50 % of 2", "no feedback", "100 % of 3"]
    # Points either side of a week without answers are not joined: no rate is made up for it.
    assert list(svg.iter(f"{SVG}polyline")) == []


def test_a_bar_chart_writes_each_label_in_full_and_escapes_it() -> None:
    reasons = [Category("x|a", "Patient <declined> & left", "(a)"), Category("x|b", "b")]
    markup = bar_chart(CHART, reasons, [OVERRIDDEN], [[5, 1]])
    assert "Patient &lt;declined&gt; &amp; left (a)" in markup
    svg = _svg(markup)
    widths = [float(b.get("width", "")) for b in _marks(svg, "rect")]
    assert widths[0] == pytest.approx(5 * widths[1], abs=0.5)
    assert [t.text for t in svg.iter(f"{SVG}text") if t.get("class") == "value"] == ["5", "1"]


def _stats(rule: str, **counts: int) -> RuleStats:
    zero = dict.fromkeys(
        ("times_shown", "cards", "patients", "accepted", "overridden", "no_response"), 0
    )
    return RuleStats(
        rule_id=rule, rule_version="1.0.0", service_id="back-to-foot", **{**zero, **counts}
    )


def test_figures_give_every_rule_every_week_with_zero_where_no_call_named_it() -> None:
    start = datetime(2026, 3, 2, tzinfo=UTC)
    weeks = [
        WeekStats(
            week="2026-W10",
            start=start,
            end=start + timedelta(weeks=1),
            rules=[_stats("RB-01", times_shown=2)],
        ),
        WeekStats(
            week="2026-W11",
            start=start + timedelta(weeks=1),
            end=start + timedelta(weeks=2),
            rules=[],
        ),
    ]
    report = WeeklyReport(
        service_id=None,
        start=start,
        end=start + timedelta(weeks=2),
        rules=[_stats("RB-01", times_shown=2)],
        weeks=weeks,
    )
    (rule,) = figures(report).rules
    assert [rule.count("times_shown", w) for w in (0, 1)] == [2, 0]
    assert rule.feedback(1) == (0, 0)
    assert rule.anchor == "back-to-foot--RB-01--v1.0.0"
