"""The rule report renders as an aligned table and as JSON with rates."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from cds.report import parse_bound, render_json, render_table, report_json
from cds.store import OverrideReasonCount, RuleReport, RuleStats

START = datetime(2025, 3, 1, tzinfo=UTC)
END = datetime(2025, 4, 1, tzinfo=UTC)


def report() -> RuleReport:
    return RuleReport(
        service_id="back-to-foot",
        start=START,
        end=END,
        unmatched_feedback=2,
        rules=[
            RuleStats(
                rule_id="RF-01",
                service_id="back-to-foot",
                shown=4,
                patients=3,
                accepted=1,
                overridden=2,
                top_override_reasons=[
                    OverrideReasonCount(
                        system="https://x.example/cs", code="dup", display="Duplicate", count=2
                    )
                ],
            ),
            RuleStats(
                rule_id="RF-02",
                service_id="back-to-foot",
                shown=0,
                patients=0,
                accepted=0,
                overridden=0,
            ),
        ],
    )


def test_the_table_has_one_aligned_row_per_rule_and_the_top_override_reasons() -> None:
    lines = render_table(report()).splitlines()
    header = next(line for line in lines if line.startswith("service"))
    rf01 = next(line for line in lines if "RF-01" in line and "back-to-foot" in line)
    assert rf01.endswith("25.0")
    assert len(rf01) == len(header)
    assert any(line.strip() == "2  dup (Duplicate)" for line in lines)
    assert lines[-1] == "Feedback on unknown cards in this period: 2"


def test_a_rule_with_no_cards_shown_has_no_acceptance_rate() -> None:
    rf02 = next(line for line in render_table(report()).splitlines() if "RF-02" in line)
    assert rf02.endswith("-")


def test_an_empty_report_says_so() -> None:
    empty = RuleReport(service_id=None, start=START, end=END, rules=[])
    assert "No cards were shown in this period." in render_table(empty)


def test_the_json_includes_counts_rates_and_utc_times() -> None:
    data = json.loads(render_json(report()))
    assert data == report_json(report())
    rf01 = data["rules"][0]
    assert (rf01["shown"], rf01["accepted"], rf01["acceptance_rate"]) == (4, 1, 0.25)
    assert data["rules"][1]["acceptance_rate"] is None
    assert data["start"] == "2025-03-01T00:00:00Z"


def test_cli_date_bounds_are_read_as_utc() -> None:
    assert parse_bound("2025-03-01") == START
    assert parse_bound("2025-03-01T10:00:00+02:00") == datetime(2025, 3, 1, 8, tzinfo=UTC)
