"""Every governance record sets how long an overridden card may be snoozed: a default and a
maximum, ISO 8601 durations, the default within the maximum, a red flag's maximum one day."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from cds.catalogue import Catalogue, check
from cds.governance.schema import Snooze, format_duration, parse_duration
from tests.test_rule_file_errors import replace

TOPIC = "https://footpath-cds.example.org/CodeSystem/rule"
RED_FLAGS = ("RF-01", "RF-02", "RF-03")


def test_red_flags_are_snoozed_for_eight_hours_and_never_past_a_day(catalogue: Catalogue) -> None:
    for rule_id in RED_FLAGS:
        assert catalogue.governance.snooze_period(rule_id) == timedelta(hours=8)
        assert catalogue.governance.snooze_maximum(rule_id) == timedelta(hours=24)


def test_every_other_rule_is_snoozed_for_thirty_days_and_at_most_ninety(
    catalogue: Catalogue,
) -> None:
    others = set(catalogue.governance.records) - set(RED_FLAGS)
    assert len(others) == 14
    for rule_id in others:
        assert catalogue.governance.snooze_period(rule_id) == timedelta(days=30)
        assert catalogue.governance.snooze_maximum(rule_id) == timedelta(days=90)


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("P30D", timedelta(days=30)),
        ("PT24H", timedelta(hours=24)),
        ("P1DT12H", timedelta(days=1, hours=12)),
        ("PT90M", timedelta(minutes=90)),
        ("P2W", timedelta(weeks=2)),
        ("PT45S", timedelta(seconds=45)),
    ],
)
def test_iso_8601_durations_in_weeks_days_and_time_are_read(text: str, span: timedelta) -> None:
    assert parse_duration(text) == span


@pytest.mark.parametrize("text", ["P1M", "P1Y", "30 days", "P", "PT", "P1DT", "30", "-P1D"])
def test_a_duration_in_months_years_or_prose_is_refused_with_the_form_expected(text: str) -> None:
    with pytest.raises(ValueError, match="is not an ISO 8601 duration in weeks, days"):
        parse_duration(text)


def test_a_duration_is_written_back_in_the_form_it_is_read() -> None:
    for span in (timedelta(days=30), timedelta(hours=8), timedelta(days=1, minutes=5)):
        assert parse_duration(format_duration(span)) == span
    assert format_duration(timedelta(days=90)) == "P90D"
    assert format_duration(timedelta(hours=8)) == "PT8H"


def test_a_default_longer_than_the_maximum_is_refused() -> None:
    with pytest.raises(ValidationError, match="default P31D is longer than maximum P30D"):
        Snooze.model_validate({"default": "P31D", "maximum": "P30D"})


def test_a_zero_default_is_refused() -> None:
    with pytest.raises(ValidationError, match="default must be longer than zero"):
        Snooze.model_validate({"default": "PT0S", "maximum": "P30D"})


def test_a_red_flag_snoozed_past_a_day_is_a_problem_at_its_maximum(content_tree: Path) -> None:
    path = content_tree / "rules" / "governance" / "RF-02.yaml"
    place = replace(path, "maximum: PT24H", "maximum: PT25H")
    (problem,) = check(content_tree / "rules", content_tree / "cards", TOPIC)
    line = place.split(":")[0]
    assert problem.startswith(f"rules/governance/RF-02.yaml:{line}:"), problem
    assert "snooze.maximum: RF-02 is a red flag, snoozed for at most PT24H, not P1DT1H" in problem


def test_a_record_without_snooze_limits_cannot_load(content_tree: Path) -> None:
    path = content_tree / "rules" / "governance" / "DM-01.yaml"
    replace(path, "snooze:\n  default: P30D\n  maximum: P90D\n", "")
    (problem,) = check(content_tree / "rules", content_tree / "cards", TOPIC)
    assert problem.startswith("rules/governance/DM-01.yaml:")
    assert "snooze: the key 'snooze' is missing" in problem, problem


def test_a_duration_in_months_in_a_record_is_a_problem_at_its_line(content_tree: Path) -> None:
    path = content_tree / "rules" / "governance" / "OS-03.yaml"
    place = replace(path, "default: P30D", "default: P1M")
    (problem,) = check(content_tree / "rules", content_tree / "cards", TOPIC)
    assert problem.startswith(f"rules/governance/OS-03.yaml:{place.split(':')[0]}:"), problem
    assert "'P1M' is not an ISO 8601 duration" in problem
