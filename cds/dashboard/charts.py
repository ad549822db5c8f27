"""Charts as inline SVG, drawn here from numbers: no script, no network, nothing to load.

Every chart is an ``<svg role="img">`` labelled by its own ``<title>`` and ``<desc>``; each mark
carries a ``<title>`` (the browser's tooltip) and ``data-`` attributes naming what it shows. A
series is told apart by its fill pattern and its legend label as well as its colour, and every
bar or point wide enough carries its value, so a black-and-white printout reads the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH = 760
FONT = 11  # px, the labels' size; the page's stylesheet sets the family
LEGEND_HEIGHT = 28
# Values are written on bars at least this wide (a three-digit count at FONT px).
LABELLED_BAR = 14


@dataclass(frozen=True)
class Series:
    """One kind of count in a chart: ``key`` names it in ``data-series`` and the page's tables."""

    key: str
    label: str
    colour: str
    # How the bar is filled besides its colour: solid, hatch, dots, cross or lines.
    pattern: str


@dataclass(frozen=True)
class Chart:
    """What a chart is called: ``id`` (unique in the page), and the ``title`` and ``description``
    a screen reader announces (the description says every number the chart draws)."""

    id: str
    title: str
    description: str


@dataclass(frozen=True)
class Category:
    """One group of bars along an axis: a week, a rule, an override reason."""

    key: str
    label: str
    sublabel: str = ""


def _attrs(**values: object) -> str:
    return "".join(f' {name.replace("_", "-")}="{escape(str(v))}"' for name, v in values.items())


def _fill(chart_id: str, series: Series) -> str:
    return series.colour if series.pattern == "solid" else f"url(#{chart_id}-{series.key})"


# Each pattern's marks on a 6 px tile, over white so a printer shows the pattern, not a grey.
_MARKS = {
    "hatch": '<path d="M-1,1 l2,-2 M0,6 l6,-6 M5,7 l2,-2" stroke="{c}" stroke-width="1.6"/>',
    "dots": '<circle cx="3" cy="3" r="1.5" fill="{c}"/>',
    "cross": '<path d="M0,0 L6,6 M6,0 L0,6" stroke="{c}" stroke-width="1.1"/>',
    "lines": '<path d="M0,1.5 H6 M0,4.5 H6" stroke="{c}" stroke-width="1.2"/>',
}


def _defs(chart_id: str, series: Sequence[Series]) -> str:
    patterns = [
        f'<pattern id="{escape(chart_id)}-{escape(s.key)}" width="6" height="6" '
        f'patternUnits="userSpaceOnUse"><rect width="6" height="6" fill="#fff"/>'
        + _MARKS[s.pattern].format(c=escape(s.colour))
        + "</pattern>"
        for s in series
        if s.pattern != "solid"
    ]
    return f"<defs>{''.join(patterns)}</defs>" if patterns else ""


def _legend(chart_id: str, series: Sequence[Series], y: float = 8) -> str:
    parts, x = [], 0.0
    for s in series:
        parts.append(
            f'<g class="legend-item" data-series="{escape(s.key)}">'
            f'<rect x="{x:g}" y="{y:g}" width="14" height="14" fill="{_fill(chart_id, s)}" '
            f'stroke="{escape(s.colour)}"/>'
            f'<text x="{x + 19:g}" y="{y + 11:g}">{escape(s.label)}</text></g>'
        )
        x += 19 + len(s.label) * FONT * 0.6 + 18
    return f'<g class="legend">{"".join(parts)}</g>'


def ticks(maximum: int) -> list[int]:
    """Round steps from 0 to at least ``maximum`` (1, 2 or 5 times a power of ten), at most six."""
    step = 1
    while -(-maximum // step) > 5:
        step = _next_step(step)
    top = max(-(-maximum // step), 1) * step
    return list(range(0, top + 1, step))


def _next_step(step: int) -> int:
    # 1, 2, 5, 10, 20, 50, ...
    return step * 5 // 2 if str(step)[0] == "2" else step * 2


def _open(chart: Chart, height: float, kind: str) -> str:
    chart_id = chart.id
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-chart="{escape(kind)}"'
        f"{_attrs(id=chart_id, viewBox=f'0 0 {WIDTH} {height:g}', role='img')}"
        f' aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc">'
        f'<title id="{escape(chart_id)}-title">{escape(chart.title)}</title>'
        f'<desc id="{escape(chart_id)}-desc">{escape(chart.description)}</desc>'
    )


def _mark_title(category: Category, series: Series, value: object) -> str:
    return f"<title>{escape(category.label)}: {escape(series.label)} {escape(str(value))}</title>"


def column_chart(
    chart: Chart,
    categories: Sequence[Category],
    series: Sequence[Series],
    values: Sequence[Sequence[int]],
) -> str:
    """Grouped vertical bars: one group per category (a week), one bar per series in it;
    ``values[s][c]`` is series ``s`` in category ``c``."""
    left, top, bottom, height = 44.0, LEGEND_HEIGHT + 14, 40.0, 250.0
    plot_w, plot_h = WIDTH - left - 8, height - top - bottom
    steps = ticks(max((v for row in values for v in row), default=0))
    scale = plot_h / steps[-1]
    slot = plot_w / max(len(categories), 1)
    bar = slot * 0.8 / max(len(series), 1)
    base = top + plot_h
    parts = [_open(chart, height, "columns"), _defs(chart.id, series)]
    parts.append(_legend(chart.id, series))
    parts += [
        f'<line class="grid" x1="{left:g}" x2="{WIDTH - 8:g}" y1="{base - t * scale:.1f}" '
        f'y2="{base - t * scale:.1f}"/><text class="tick" x="{left - 6:g}" '
        f'y="{base - t * scale + 4:.1f}" text-anchor="end">{t}</text>'
        for t in steps
    ]
    every = -(-len(categories) // 14)  # at most 14 axis labels
    for c, category in enumerate(categories):
        x0 = left + c * slot + slot * 0.1
        if c % every == 0:
            parts.append(_axis_label(x0 + slot * 0.4, base, category))
        for s, one in enumerate(series):
            value = values[s][c]
            x, h = x0 + s * bar, value * scale
            parts.append(
                f'<rect class="bar"{_attrs(data_series=one.key, data_category=category.key)}'
                f' data-value="{value}" x="{x:.1f}" y="{base - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" fill="{_fill(chart.id, one)}" stroke="{escape(one.colour)}">'
                f"{_mark_title(category, one, value)}</rect>"
            )
            if bar >= LABELLED_BAR:
                parts.append(
                    f'<text class="value" x="{x + bar / 2:.1f}" y="{base - h - 3:.1f}" '
                    f'text-anchor="middle" aria-hidden="true">{value}</text>'
                )
    parts.append(
        f'<line class="axis" x1="{left:g}" x2="{WIDTH - 8:g}" y1="{base:g}" y2="{base:g}"/>'
    )
    return "".join(parts) + "</svg>"


def _axis_label(x: float, base: float, category: Category) -> str:
    sub = (
        f'<tspan x="{x:.1f}" dy="{FONT + 2}">{escape(category.sublabel)}</tspan>'
        if category.sublabel
        else ""
    )
    return (
        f'<text class="axis-label" x="{x:.1f}" y="{base + FONT + 6:g}" text-anchor="middle">'
        f"{escape(category.label)}{sub}</text>"
    )


def rate_chart(
    chart: Chart,
    categories: Sequence[Category],
    rates: Sequence[tuple[int, int]],
    series: Series,
) -> str:
    """A share per category as points on a 0-100 % axis, joined where consecutive; ``rates[c]``
    is (part, whole). A category with a whole of 0 has no point: it says "no feedback"."""
    left, top, bottom, height = 44.0, LEGEND_HEIGHT + 14, 40.0, 200.0
    plot_w, plot_h = WIDTH - left - 8, height - top - bottom
    slot = plot_w / max(len(categories), 1)
    base = top + plot_h
    parts = [_open(chart, height, "rate"), _legend(chart.id, [series])]
    parts += [
        f'<line class="grid" x1="{left:g}" x2="{WIDTH - 8:g}" y1="{base - p / 100 * plot_h:.1f}" '
        f'y2="{base - p / 100 * plot_h:.1f}"/><text class="tick" x="{left - 6:g}" '
        f'y="{base - p / 100 * plot_h + 4:.1f}" text-anchor="end">{p} %</text>'
        for p in (0, 25, 50, 75, 100)
    ]
    every = -(-len(categories) // 14)
    run: list[str] = []
    for c, (category, (part, whole)) in enumerate(zip(categories, rates, strict=True)):
        x = left + (c + 0.5) * slot
        if c % every == 0:
            parts.append(_axis_label(x, base, category))
        if not whole:
            parts.append(_line(run, series))
            run = []
            parts.append(
                f'<text class="value none" x="{x:.1f}" y="{base - 4:.1f}" text-anchor="middle">'
                "no feedback</text>"
                if slot >= 60
                else ""
            )
            continue
        y = base - part / whole * plot_h
        run.append(f"{x:.1f},{y:.1f}")
        shown = f"{part / whole * 100:.0f} % of {whole}"
        parts.append(
            f'<circle class="point"{_attrs(data_category=category.key)} data-value="{part}/{whole}"'
            f' cx="{x:.1f}" cy="{y:.1f}" r="4.5" fill="{escape(series.colour)}">'
            f"{_mark_title(category, series, shown)}</circle>"
        )
        if slot >= 60:
            above = y - 8 if y > top + 14 else y + 16
            parts.append(
                f'<text class="value" x="{x:.1f}" y="{above:.1f}" text-anchor="middle" '
                f'aria-hidden="true">{escape(shown)}</text>'
            )
    parts.append(_line(run, series))
    parts.append(
        f'<line class="axis" x1="{left:g}" x2="{WIDTH - 8:g}" y1="{base:g}" y2="{base:g}"/>'
    )
    return "".join(parts) + "</svg>"


def _line(points: list[str], series: Series) -> str:
    if len(points) < 2:
        return ""
    return (
        f'<polyline class="trend" points="{" ".join(points)}" fill="none" '
        f'stroke="{escape(series.colour)}" stroke-width="1.5" stroke-dasharray="4 3"/>'
    )


def bar_chart(
    chart: Chart,
    categories: Sequence[Category],
    series: Sequence[Series],
    values: Sequence[Sequence[int]],
) -> str:
    """Grouped horizontal bars, each group's label written above it in full (a rule with its
    version, an override reason's display): ``values[s][c]`` is series ``s`` in category ``c``."""
    bar, gap, label_h = 14.0, 10.0, FONT + 6
    group_h = label_h + bar * len(series) + gap
    maximum = max((v for row in values for v in row), default=0) or 1
    # Room on the right for the longest bar's value and series label.
    named = max(len(s.label) for s in series) + 1 if len(series) > 1 else 0
    left, right = 8.0, (len(str(maximum)) + named) * FONT * 0.62 + 10
    top = LEGEND_HEIGHT + 8 if len(series) > 1 else 8.0
    height = top + group_h * len(categories) + 4
    plot_w = WIDTH - left - right
    parts = [_open(chart, height, "bars"), _defs(chart.id, series)]
    if len(series) > 1:
        parts.append(_legend(chart.id, series))
    for c, category in enumerate(categories):
        y0 = top + c * group_h
        parts.append(
            f'<text class="bar-label" x="{left:g}" y="{y0 + FONT:g}">{escape(category.label)}'
            + (f" {escape(category.sublabel)}" if category.sublabel else "")
            + "</text>"
        )
        for s, one in enumerate(series):
            value, y = values[s][c], y0 + label_h + s * bar
            w = value / maximum * plot_w
            parts.append(
                f'<rect class="bar"{_attrs(data_series=one.key, data_category=category.key)}'
                f' data-value="{value}" x="{left:g}" y="{y:.1f}" width="{w:.1f}" '
                f'height="{bar - 2:g}" fill="{_fill(chart.id, one)}" stroke="{escape(one.colour)}">'
                f"{_mark_title(category, one, value)}</rect>"
                f'<text class="value" x="{left + w + 4:.1f}" y="{y + bar - 4:.1f}" '
                f'aria-hidden="true">{value}'
                + (f" {escape(one.label)}" if len(series) > 1 else "")
                + "</text>"
            )
    return "".join(parts) + "</svg>"
