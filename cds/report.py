"""The per-rule feedback report as a plain-text table or JSON (``cds report``, admin route)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from cds.store import RuleReport, RuleStats, WeeklyReport
from cds.store.rule_report import MAX_WEEKS, week_edges

_COLUMNS = (
    "service",
    "rule",
    "version",
    "shown",
    "would fire",
    "snoozed",
    "cards",
    "patients",
    "no response",
    "accepted",
    "overridden",
    "accept rate",
    "override rate",
)
NONE = "\u2013"  # an en dash: no feedback, so no rate
# When neither bound is given, the report covers this many days up to now.
DEFAULT_WINDOW_DAYS = 30
BOUND_FORMAT = (
    "a date (2026-05-01, UTC) or an instant (2026-05-01T08:00:00Z; without an offset, UTC)"
)


def parse_bound(text: str, *, end: bool = False) -> datetime:
    """A report bound, from the CLI or the API alike.

    A date is a whole UTC day: as a start it is that day's midnight, as an end the next one, so
    ``--since 2026-05-01 --until 2026-05-31`` covers all of May. An instant without an offset
    is UTC. Raises ``ValueError`` for anything else.
    """
    text = text.strip()
    try:
        day = date.fromisoformat(text)
    except ValueError:
        moment = datetime.fromisoformat(text)
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    midnight = datetime.combine(day, time(), tzinfo=UTC)
    return midnight + timedelta(days=1) if end else midnight


def report_window(
    since: datetime | None, until: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    """[start, end): until defaults to now, since to DEFAULT_WINDOW_DAYS before the end."""
    end = until or now
    return since or end - timedelta(days=DEFAULT_WINDOW_DAYS), end


def check_weekly(start: datetime, end: datetime) -> None:
    """Raises ``ValueError`` (saying so) for a period too long to break down by week."""
    try:
        week_edges(start, end)
    except ValueError:
        raise ValueError(
            f"A period broken down by week spans at most {MAX_WEEKS} ISO weeks; "
            "choose a shorter one."
        ) from None


def report_json(report: RuleReport) -> dict[str, Any]:
    """The report as JSON-ready data (rates included, times in ISO 8601 UTC)."""
    data: dict[str, Any] = report.model_dump(mode="json")
    return data


def render_json(report: RuleReport) -> str:
    return json.dumps(report_json(report), indent=2, sort_keys=True) + "\n"


def _version(stats: RuleStats) -> str:
    return stats.rule_version or NONE  # calls audited before rules had versions


def _rate(part: int, stats: RuleStats) -> str:
    # With its denominator: "100 %" of one answer is not "100 %" of fifty.
    if not stats.feedback:
        return NONE
    return f"{part / stats.feedback * 100:.1f} % of {stats.feedback}"


def _aligned(columns: tuple[str, ...], rows: list[tuple[str, ...]], left: int) -> list[str]:
    """``rows`` under ``columns``, the first ``left`` columns left-aligned, the rest right."""
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]

    def line(cells: tuple[str, ...]) -> str:
        text = [
            cell.ljust(w) if i < left else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(text).rstrip()

    return [line(columns), line(tuple("-" * w for w in widths)), *(line(row) for row in rows)]


def _counts(s: RuleStats) -> tuple[str, ...]:
    return (
        str(s.times_shown),
        str(s.would_fire),
        str(s.snoozed),
        str(s.cards),
        str(s.patients),
        str(s.no_response),
        str(s.accepted),
        str(s.overridden),
        _rate(s.accepted, s),
        _rate(s.overridden, s),
    )


def render_table(report: RuleReport) -> str:
    """An aligned text table, one line per rule, then each rule's top override reasons; for a
    ``WeeklyReport``, then one line per week and rule."""
    scope = report.service_id or "all services"
    lines = [
        f"Feedback report for {scope}, calls received from {report.start.isoformat()} "
        f"to {report.end.isoformat()}",
        "",
    ]
    rows = [(s.service_id, s.rule_id, _version(s), *_counts(s)) for s in report.rules]
    if not rows:
        lines.append("No cards were shown in this period.")
    else:
        lines += _aligned(_COLUMNS, rows, left=3)
        lines += [
            "",
            "shown: times the rule's cards were shown (a card shown again to the same patient "
            "keeps its uuid); would fire: calls in which the rule, in shadow (draft), would have "
            "shown a card;",
            "snoozed: calls in which one of the rule's cards was not shown because an earlier "
            "override snoozed it;",
            "cards: distinct cards; no response: cards without any feedback;",
            f"version: the rule's version those calls ran ({NONE}: audited before versions);",
            f"rates: share of the feedback received (accepted + overridden); {NONE}: no feedback.",
        ]
        reasons = [s for s in report.rules if s.top_override_reasons]
        if reasons:
            lines += ["", "Top override reasons:"]
            for stats in reasons:
                lines.append(f"  {stats.rule_id} {_version(stats)}:")
                lines += [
                    f"    {r.count:>5}  {r.code}" + (f" ({r.display})" if r.display else "")
                    for r in stats.top_override_reasons
                ]
    if isinstance(report, WeeklyReport) and rows:
        lines += ["", *_weekly_lines(report)]
    lines += ["", f"Feedback on unknown cards in this period: {report.unmatched_feedback}"]
    return "\n".join(lines) + "\n"


def _weekly_lines(report: WeeklyReport) -> list[str]:
    rows = [
        (week.week, s.service_id, s.rule_id, _version(s), *_counts(s))
        for week in report.weeks
        for s in week.rules
    ]
    return [
        "Per ISO week (UTC; the first and last cut at the period's bounds):",
        "",
        *_aligned(("week", *_COLUMNS), rows, left=4),
        "",
        "A card and its feedback count in the week the card was first shown in this period, so "
        "the weeks add up to the period's",
        "numbers (patients aside: a patient may come back another week).",
    ]
