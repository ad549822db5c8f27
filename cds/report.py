"""The per-rule feedback report as a plain-text table or JSON (``cds report``, admin route)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time
from typing import Any

from cds.store import RuleReport

_COLUMNS = ("service", "rule", "shown", "patients", "accepted", "overridden", "accept %")


def parse_bound(text: str) -> datetime:
    """A CLI date bound: ``2025-03-01`` is midnight UTC; a datetime without offset is UTC."""
    value = datetime.fromisoformat(text)
    if len(text) == 10:
        value = datetime.combine(value.date(), time())
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def report_json(report: RuleReport) -> dict[str, Any]:
    """The report as JSON-ready data (rates included, times in ISO 8601 UTC)."""
    data: dict[str, Any] = report.model_dump(mode="json")
    return data


def render_json(report: RuleReport) -> str:
    return json.dumps(report_json(report), indent=2, sort_keys=True) + "\n"


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f}"


def render_table(report: RuleReport) -> str:
    """An aligned text table, one line per rule, then each rule's top override reasons."""
    scope = report.service_id or "all services"
    lines = [
        f"Feedback report for {scope}, cards shown from {report.start.isoformat()} "
        f"to {report.end.isoformat()}",
        "",
    ]
    rows = [
        (
            s.service_id,
            s.rule_id,
            str(s.shown),
            str(s.patients),
            str(s.accepted),
            str(s.overridden),
            _percent(s.acceptance_rate),
        )
        for s in report.rules
    ]
    if not rows:
        lines.append("No cards were shown in this period.")
    else:
        widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(_COLUMNS)]

        def line(cells: tuple[str, ...]) -> str:
            text = [
                cell.ljust(w) if i < 2 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
            ]
            return "  ".join(text).rstrip()

        lines += [line(_COLUMNS), line(tuple("-" * w for w in widths))]
        lines += [line(row) for row in rows]
        reasons = [s for s in report.rules if s.top_override_reasons]
        if reasons:
            lines += ["", "Top override reasons:"]
            for stats in reasons:
                lines.append(f"  {stats.rule_id}:")
                lines += [
                    f"    {r.count:>5}  {r.code}" + (f" ({r.display})" if r.display else "")
                    for r in stats.top_override_reasons
                ]
    lines += ["", f"Feedback on unknown cards in this period: {report.unmatched_feedback}"]
    return "\n".join(lines) + "\n"
