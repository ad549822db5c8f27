"""The dashboard as one self-contained HTML page: its style sheet inline, its charts inline SVG,
no script. Saved to a file it still shows everything, on a machine with no network at all.

No patient data: the report holds none (patients only as a count), and clinicians' free-text
comments are left out, since they may name a patient."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Sequence
from datetime import datetime
from html import escape

from cds.dashboard.charts import Category, Chart, Series, bar_chart, column_chart, rate_chart
from cds.dashboard.figures import (
    ACCEPTANCE,
    COLUMNS,
    OVERRIDES,
    SERIES,
    Figures,
    RuleFigures,
)
from cds.store import RuleStats

NONE = "\u2013"  # an en dash: no feedback, so no rate

STYLE = """
:root { font-family: system-ui, "DejaVu Sans", "Liberation Sans", Arial, sans-serif;
  color: #1a1a1a; background: #fff; line-height: 1.4; }
body { max-width: 60rem; margin: 0 auto; padding: 1rem 1.25rem 3rem; }
h1 { font-size: 1.6rem; margin: 0.5rem 0; }
h2 { font-size: 1.3rem; margin: 2rem 0 0.5rem; border-top: 2px solid #1a1a1a;
  padding-top: 0.75rem; }
h3 { font-size: 1.05rem; margin: 1.25rem 0 0.25rem; }
a { color: #0b4f8a; }
form { display: flex; flex-wrap: wrap; gap: 0.75rem 1.25rem; align-items: end;
  padding: 0.75rem; background: #f2f4f7; border: 1px solid #c9ced6; border-radius: 4px; }
form label { display: flex; flex-direction: column; font-size: 0.9rem; gap: 0.2rem; }
form input, form select, form button { font: inherit; padding: 0.3rem 0.45rem; }
form button { cursor: pointer; }
.hint { font-size: 0.85rem; color: #4a4f57; margin: 0.4rem 0; }
dl.totals { display: flex; flex-wrap: wrap; gap: 0.25rem 1.5rem; margin: 0.5rem 0; }
dl.totals div { display: flex; gap: 0.35rem; }
dl.totals dt { color: #4a4f57; }
dl.totals dd { margin: 0; font-weight: 600; font-variant-numeric: tabular-nums; }
figure { margin: 0.75rem 0 1.25rem; }
figcaption { font-weight: 600; margin-bottom: 0.25rem; }
svg.chart { width: 100%; height: auto; display: block; overflow: visible; }
svg.chart text { font-size: 11px; fill: #1a1a1a; }
svg.chart .tick, svg.chart .axis-label, svg.chart .none { fill: #4a4f57; }
svg.chart .grid { stroke: #e1e4e8; }
svg.chart .axis { stroke: #1a1a1a; }
/* A white halo keeps a value legible where a trend line crosses it. */
svg.chart .value { paint-order: stroke; stroke: #fff; stroke-width: 3px; }
details { margin-top: 0.4rem; }
summary { cursor: pointer; color: #0b4f8a; }
table { border-collapse: collapse; margin: 0.5rem 0; font-size: 0.9rem;
  font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #c9ced6; padding: 0.2rem 0.5rem; }
td { text-align: right; }
th[scope=row], td.text { text-align: left; }
thead th { background: #f2f4f7; }
@media print {
  body { max-width: none; padding: 0; }
  form, .screen-only { display: none; }
  a { color: inherit; text-decoration: none; }
  section.rule { break-inside: avoid-page; }
  figure, table { break-inside: avoid; }
  summary { color: inherit; list-style: none; font-style: italic; }
  details::details-content { content-visibility: visible; display: block; }
}
"""


def _digest(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


# Nothing runs and nothing loads: the one style element is allowed by its digest.
HEADERS = {
    "Content-Security-Policy": (
        f"default-src 'none'; style-src 'sha256-{_digest(STYLE)}'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _when(moment: datetime) -> str:
    return f'<time datetime="{moment.isoformat()}">{moment:%Y-%m-%d %H:%M} UTC</time>'


def _rate(stats: RuleStats | None) -> str:
    if stats is None or not stats.feedback:
        return NONE
    return f"{stats.accepted / stats.feedback * 100:.1f} % of {stats.feedback}"


def _cell(key: str, value: object, text: str | None = None) -> str:
    return (
        f'<td data-key="{key}" data-value="{escape(str(value))}">{escape(text or str(value))}</td>'
    )


def _count_cells(stats: RuleStats | None) -> str:
    cells = [_cell(key, getattr(stats, key) if stats is not None else 0) for key, _ in COLUMNS]
    rate = stats.acceptance_rate if stats is not None else None
    cells.append(_cell("acceptance_rate", "" if rate is None else rate, _rate(stats)))
    return "".join(cells)


def _count_headings(**renamed: str) -> list[str]:
    return [renamed.get(key, heading) for key, heading in COLUMNS] + ["Acceptance rate"]


def _table(kind: str, headings: Sequence[str], rows: str, **attrs: str) -> str:
    """A chart's numbers: ``data-table`` says which (the tests read the tables by it), ``attrs``
    are more ``data-`` attributes."""
    data = "".join(f' data-{name}="{escape(value)}"' for name, value in attrs.items())
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in headings)
    return (
        f'<table data-table="{kind}"{data}><thead><tr>{head}</tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )


def _described(
    labels: Sequence[str], series: Sequence[Series], values: Sequence[Sequence[int]]
) -> str:
    """Every number of a grouped chart, read out: "label: series value, ...; label: ..."."""
    return "; ".join(
        f"{label}: " + ", ".join(f"{s.label} {v[i]}" for s, v in zip(series, values, strict=True))
        for i, label in enumerate(labels)
    )


def _details(table: str) -> str:
    return f"<details><summary>Numbers behind this chart</summary>{table}</details>"


def _figure(caption: str, chart: str, table: str) -> str:
    return f"<figure><figcaption>{escape(caption)}</figcaption>{chart}{_details(table)}</figure>"


def _rule_label(rule: RuleFigures) -> Category:
    return Category(
        "/".join(str(k) for k in rule.key), f"{rule.key[1]} {rule.version}", f"({rule.key[0]})"
    )


def _overview(page: Figures) -> str:
    series = SERIES
    categories = [_rule_label(r) for r in page.rules]
    values = [[int(getattr(r.period, s.key)) for r in page.rules] for s in series]
    described = _described([c.label for c in categories], series, values)
    chart = bar_chart(
        Chart(
            "overview", "Every rule's counts for the period", f"Per rule and version: {described}"
        ),
        categories,
        series,
        values,
    )
    rows = "".join(
        f'<tr data-service="{escape(r.key[0])}" data-rule="{escape(r.key[1])}" '
        f'data-version="{escape(r.key[2] or "")}">'
        f'<td class="text">{escape(r.key[0])}</td>'
        f'<th scope="row"><a href="#{r.anchor}">{escape(r.key[1])}</a></th>'
        f'<td class="text">{escape(r.version)}</td>{_count_cells(r.period)}</tr>'
        for r in page.rules
    )
    table = _table("period", ["Service", "Rule", "Version", *_count_headings()], rows)
    return (
        '<section id="overview"><h2>All rules, whole period</h2>'
        + _figure("Counts per rule and version", chart, table)
        + "</section>"
    )


def _weekly(page: Figures, rule: RuleFigures) -> str:
    series = SERIES
    categories = [w.category for w in page.weeks]
    values = [[rule.count(s.key, w) for w in range(len(page.weeks))] for s in series]
    described = _described([f"week {week.key}" for week in page.weeks], series, values)
    chart = column_chart(
        Chart(
            f"{rule.anchor}-weekly", f"{rule.key[1]} {rule.version}: counts per ISO week", described
        ),
        categories,
        series,
        values,
    )
    rows = "".join(
        f'<tr data-week="{week.key}"><th scope="row">{week.key}</th>'
        f'<td class="text">{week.start:%Y-%m-%d %H:%M}\u2013{week.end:%Y-%m-%d %H:%M}</td>'
        f"{_count_cells(rule.weekly[w])}</tr>"
        for w, week in enumerate(page.weeks)
    )
    headings = ["Week", "Calls received (UTC)", *_count_headings(cards="Cards first shown")]
    service, rule_id, version = rule.key
    table = _table("weekly", headings, rows, rule=rule_id, service=service, version=version or "")
    return _figure("Per week", chart, table)


def _acceptance(page: Figures, rule: RuleFigures) -> str:
    categories = [w.category for w in page.weeks]
    rates = [rule.feedback(w) for w in range(len(page.weeks))]
    described = "; ".join(
        f"week {week.key}: " + (f"{part} accepted of {whole} answers" if whole else "no feedback")
        for week, (part, whole) in zip(page.weeks, rates, strict=True)
    )
    chart = rate_chart(
        Chart(
            f"{rule.anchor}-acceptance",
            f"{rule.key[1]} {rule.version}: acceptance rate per ISO week",
            described,
        ),
        categories,
        rates,
        ACCEPTANCE,
    )
    rows = "".join(
        f'<tr data-week="{week.key}"><th scope="row">{week.key}</th>'
        + _cell("accepted", part)
        + _cell("feedback", whole)
        + _cell("acceptance_rate", part / whole if whole else "", _rate(rule.weekly[w]))
        + "</tr>"
        for w, (week, (part, whole)) in enumerate(zip(page.weeks, rates, strict=True))
    )
    headings = ["Week", "Accepted", "Answers (accepted + overridden)", "Acceptance rate"]
    table = _table("acceptance", headings, rows)
    return _figure("Acceptance rate per week (of the answers received)", chart, table)


def _reasons(rule: RuleFigures) -> str:
    reasons = rule.period.top_override_reasons
    if not reasons:
        return '<p class="hint">No override reasons were given in this period.</p>'
    categories = [
        Category(
            f"{r.system or ''}|{r.code}", r.display or r.code, f"({r.code})" if r.display else ""
        )
        for r in reasons
    ]
    counts = [r.count for r in reasons]
    described = "; ".join(
        f"{c.label}{f' {c.sublabel}' if c.sublabel else ''}: {n}"
        for c, n in zip(categories, counts, strict=True)
    )
    chart = bar_chart(
        Chart(
            f"{rule.anchor}-reasons", f"{rule.key[1]} {rule.version}: override reasons", described
        ),
        categories,
        [OVERRIDES],
        [counts],
    )
    rows = "".join(
        f'<tr><td class="text" data-key="code">{escape(r.code)}</td>'
        f'<td class="text" data-key="display">{escape(r.display or "")}</td>'
        f'<td class="text" data-key="system">{escape(r.system or "")}</td>'
        + _cell("count", r.count)
        + "</tr>"
        for r in reasons
    )
    table = _table("reasons", ["Code", "Display", "System", "Overrides"], rows)
    return _figure("Override reasons, whole period (the most given first)", chart, table)


def _totals(stats: RuleStats) -> str:
    items = [(heading, str(getattr(stats, key))) for key, heading in COLUMNS]
    items.append(("Acceptance rate", _rate(stats)))
    return (
        '<dl class="totals">'
        + "".join(f"<div><dt>{escape(k)}</dt><dd>{escape(v)}</dd></div>" for k, v in items)
        + "</dl>"
    )


def _rule_section(page: Figures, rule: RuleFigures, rule_url: Callable[[str], str]) -> str:
    service, rule_id, _ = rule.key
    return (
        f'<section class="rule" id="{rule.anchor}" data-rule="{escape(rule_id)}" '
        f'data-version="{escape(rule.key[2] or "")}">'
        f'<h2><a href="{escape(rule_url(rule_id))}">{escape(rule_id)}</a> '
        f"version {escape(rule.version)} <small>({escape(service)})</small></h2>"
        + _totals(rule.period)
        + _weekly(page, rule)
        + _acceptance(page, rule)
        + _reasons(rule)
        + "</section>"
    )


def _form(page: Figures, since: str, until: str, services: Sequence[str]) -> str:
    chosen = page.report.service_id
    options = '<option value="">every service</option>' + "".join(
        f'<option value="{escape(s)}"{" selected" if s == chosen else ""}>{escape(s)}</option>'
        for s in services
    )
    return (
        '<form method="get" aria-label="Period">'
        '<label>From (inclusive)<input name="since" '
        f'value="{escape(since)}" placeholder="2026-05-01"></label>'
        '<label>To (a date: that whole day)<input name="until" '
        f'value="{escape(until)}" placeholder="2026-05-31"></label>'
        f'<label>Service<select name="service">{options}</select></label>'
        '<button type="submit">Show</button></form>'
        '<p class="hint screen-only">A date is a whole UTC day; an instant is '
        "2026-05-01T08:00:00Z. Left empty: the last 30 days up to now, as <code>cds report</code>."
        "</p>"
    )


def render_page(
    page: Figures,
    *,
    since: str = "",
    until: str = "",
    services: Sequence[str] = (),
    rule_url: Callable[[str], str],
) -> str:
    """The dashboard for ``page``; ``since`` and ``until`` as the reader gave them (the form
    shows them back), ``rule_url`` the page of a rule id."""
    report = page.report
    scope = escape(report.service_id) if report.service_id else "every service"
    body = (
        [_overview(page)] + [_rule_section(page, r, rule_url) for r in page.rules]
        if page.rules
        else ["<p>No cards were shown and no rule would have fired in this period.</p>"]
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Feedback dashboard \u2013 footpath-cds</title>"
        f"<style>{STYLE}</style></head><body><header><h1>Feedback dashboard</h1>"
        f'<p class="period">Calls received from {_when(report.start)} to {_when(report.end)} '
        f"(the end excluded), {scope}.</p>"
        + _form(page, since, until, services)
        + '<p class="hint">Per rule and version, per ISO week (UTC, the first and last cut at '
        "the period's bounds): times its cards were shown, times it would have fired in shadow, "
        "and the answers clinicians gave. A card and its answers count in the week the card was "
        "first shown, so the weeks add up to the period. Rates are over the answers received, "
        f"never over cards shown; {NONE}: no answer. The same numbers: "
        "<code>cds report --json --by week</code> for the same period.</p></header><main>"
        + "".join(body)
        + f"</main><footer><p>Feedback on unknown cards in this period: "
        f"{report.unmatched_feedback}</p></footer></body></html>"
    )
