"""The rule report renders as an aligned table and as JSON, with rates over the answers given."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from cds.report import (
    DEFAULT_WINDOW_DAYS,
    parse_bound,
    render_json,
    render_table,
    report_json,
    report_window,
)
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
                rule_version="1.2.0",
                service_id="back-to-foot",
                times_shown=9,
                cards=4,
                patients=3,
                accepted=1,
                overridden=3,
                no_response=1,
                top_override_reasons=[
                    OverrideReasonCount(
                        system="https://x.example/cs", code="dup", display="Duplicate", count=2
                    )
                ],
            ),
            RuleStats(
                rule_id="RF-02",
                service_id="back-to-foot",
                times_shown=2,
                cards=1,
                patients=1,
                accepted=0,
                overridden=0,
                no_response=1,
            ),
        ],
    )


def _row(rule: str) -> list[str]:
    line = next(line for line in render_table(report()).splitlines() if f" {rule} " in line)
    return [cell.strip() for cell in line.split("  ") if cell.strip()]


def test_the_table_has_one_aligned_row_per_rule_and_the_top_override_reasons() -> None:
    lines = render_table(report()).splitlines()
    header = next(line for line in lines if line.startswith("service"))
    rf01 = next(line for line in lines if "RF-01" in line and "back-to-foot" in line)
    assert len(rf01) == len(header)
    assert any(line.strip() == "2  dup (Duplicate)" for line in lines)
    assert lines[-1] == "Feedback on unknown cards in this period: 2"


def test_the_table_shows_times_shown_and_distinct_cards_apart() -> None:
    assert _row("RF-01")[3:9] == ["9", "0", "0", "4", "3", "1"]


def test_rates_are_over_the_answers_received_and_show_their_denominator() -> None:
    assert _row("RF-01")[9:] == ["1", "3", "25.0 % of 4", "75.0 % of 4"]


def test_a_rule_without_feedback_shows_a_dash_not_a_zero_rate() -> None:
    assert _row("RF-02")[9:] == ["0", "0", "\u2013", "\u2013"]


def test_each_row_names_the_rule_version_its_calls_ran_and_a_dash_before_versions() -> None:
    assert _row("RF-01")[:3] == ["back-to-foot", "RF-01", "1.2.0"]
    assert _row("RF-02")[:3] == ["back-to-foot", "RF-02", "\u2013"]
    assert any(line.strip() == "RF-01 1.2.0:" for line in render_table(report()).splitlines())


def _alone(**counts: int) -> tuple[str, list[str]]:
    """The table of a report with one RB-02 1.1.0-draft row of ``counts``: header, row cells."""
    zero = dict.fromkeys(("times_shown", "cards", "patients", "accepted", "overridden"), 0)
    stats = RuleStats(
        rule_id="RB-02",
        rule_version="1.1.0-draft",
        service_id="back-to-foot",
        no_response=0,
        **{**zero, **counts},
    )
    table = render_table(report().model_copy(update={"rules": [stats]}))
    header = next(line for line in table.splitlines() if line.startswith("service"))
    line = next(line for line in table.splitlines() if " RB-02 " in line)
    return header, [c.strip() for c in line.split("  ") if c.strip()]


def test_a_rule_in_shadow_shows_its_would_fire_count_beside_the_times_shown() -> None:
    header, cells = _alone(would_fire=7)
    assert "shown  would fire  snoozed  cards" in header
    assert cells[2:5] == ["1.1.0-draft", "0", "7"]


def test_a_snoozed_rule_shows_its_snoozed_count_beside_would_fire() -> None:
    _, cells = _alone(times_shown=2, snoozed=5, cards=1, patients=1, overridden=1)
    assert cells[2:6] == ["1.1.0-draft", "2", "0", "5"]
    assert "snoozed: calls in which one of the rule's cards was not shown" in render_table(report())


def test_an_empty_report_says_so() -> None:
    empty = RuleReport(service_id=None, start=START, end=END, rules=[])
    assert "No cards were shown in this period." in render_table(empty)


def test_the_json_includes_counts_rates_denominators_and_utc_times() -> None:
    data = json.loads(render_json(report()))
    assert data == report_json(report())
    rf01 = data["rules"][0]
    assert (rf01["times_shown"], rf01["cards"], rf01["no_response"]) == (9, 4, 1)
    assert (rf01["rule_version"], data["rules"][1]["rule_version"]) == ("1.2.0", None)
    assert (rf01["feedback"], rf01["acceptance_rate"], rf01["override_rate"]) == (4, 0.25, 0.75)
    rf02 = data["rules"][1]
    assert (rf02["feedback"], rf02["acceptance_rate"], rf02["override_rate"]) == (0, None, None)
    assert data["start"] == "2025-03-01T00:00:00Z"


def test_a_date_bound_is_a_whole_utc_day() -> None:
    assert parse_bound("2025-03-01") == START
    assert parse_bound("2025-03-31", end=True) == END


def test_an_instant_bound_keeps_its_offset_and_without_one_is_utc() -> None:
    assert parse_bound("2025-03-01T10:00:00+02:00") == datetime(2025, 3, 1, 8, tzinfo=UTC)
    assert parse_bound("2025-03-01T10:00:00Z", end=True) == datetime(2025, 3, 1, 10, tzinfo=UTC)
    assert parse_bound("2025-03-01T10:00:00") == datetime(2025, 3, 1, 10, tzinfo=UTC)


def test_a_bound_that_is_no_date_is_refused() -> None:
    with pytest.raises(ValueError, match="Invalid isoformat"):
        parse_bound("yesterday")


def test_the_default_window_is_the_last_thirty_days_up_to_now() -> None:
    assert DEFAULT_WINDOW_DAYS == 30
    assert report_window(None, None, END) == (datetime(2025, 3, 2, tzinfo=UTC), END)
    assert report_window(START, None, END) == (START, END)
