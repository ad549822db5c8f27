"""RF-03's measured weight loss (rules.md 3.3): medians of windows, so scale noise never fires."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from bench import weight_loss as bench
from cds.record import build_record
from cds.rules import ClauseInputs, Node, Tri, result_of
from cds.rules.policy import load_policy
from cds.settings import PROJECT_ROOT
from cds.valuesets import ValueSets, load_valuesets

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
# The windows a record reads Conditions by, as shipped in rules/policy/clinical.yaml.
WINDOWS = load_policy(PROJECT_ROOT / "rules").condition_windows
TODAY = NOW.date()
FACT = {
    "name": "measured_weight_loss",
    "valuesets": ["body-weight"],
    "percent": 5,
    "windows": {
        "latestWithin": "P90D",
        "current": "P14D",
        "baselineFrom": "P30D",
        "baselineTo": "P365D",
    },
}


@pytest.fixture(scope="module")
def sets() -> ValueSets:
    return load_valuesets(PROJECT_ROOT / "rules" / "valuesets")


def weight(n: int, day: date, kg: float, unit: str | None = "kg") -> dict[str, Any]:
    quantity: dict[str, Any] = {"value": kg}
    if unit is not None:
        quantity |= {"unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
    return {
        "resourceType": "Observation",
        "id": f"w{n}",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": day.isoformat(),
        "valueQuantity": quantity,
    }


def measure(
    sets: ValueSets, series: list[tuple[date, float]], *, unavailable: tuple[str, ...] = ()
) -> Any:
    raws = [weight(n, day, kg) for n, (day, kg) in enumerate(series)]
    record = build_record(sets, NOW, "p1", raws, windows=WINDOWS, unavailable=unavailable)
    return result_of(Node.model_validate({"fact": FACT}), ClauseInputs(record, {}))


def days_ago(days: int) -> date:
    return TODAY - timedelta(days=days)


WOBBLING = [80, 78, 82, 79, 81, 77.5, 80.5, 79.5, 81]


def test_a_stable_weight_wobbling_three_percent_over_a_year_is_no_loss(sets: ValueSets) -> None:
    series = [(days_ago(362 - 45 * i), kg) for i, kg in enumerate(WOBBLING[:-1])]
    series.append((days_ago(2), WOBBLING[-1]))
    # 82 kg then 77.5 kg 135 days later is a 5.5 % drop between two readings: pairs would fire.
    assert measure(sets, series).truth is Tri.FALSE


def test_a_real_loss_hidden_in_noise_is_found_and_the_card_shows_the_weights(
    sets: ValueSets,
) -> None:
    earlier = [84, 86.5, 81.5, 85.5, 82, 86, 83, 81.8, 85, 84.5]
    series = [(days_ago(346 - 30 * i), kg) for i, kg in enumerate(earlier)]
    series += [(days_ago(15), 80.5), (days_ago(11), 77), (days_ago(7), 79.5), (days_ago(2), 78)]
    result = measure(sets, series)
    assert result.truth is Tri.TRUE
    (note,) = result.notes
    assert note.startswith("Measured weight loss 6.5 % (threshold 5 %): median 84.2 kg earlier")
    assert "84, 86.5, 81.5, 85.5, 82, 86, 83, 81.8, 85, 84.5 kg" in note
    assert "median 78.8 kg now (4 weights" in note
    assert "80.5, 77, 79.5, 78 kg" in note
    assert [e.id for e in result.evidence] == ["w0", "w13"]


def test_a_single_pair_still_measures_a_loss(sets: ValueSets) -> None:
    result = measure(sets, [(days_ago(150), 80.0), (days_ago(20), 74.0)])
    assert result.truth is Tri.TRUE
    assert "7.5 %" in result.notes[0]


def test_a_loss_just_under_the_threshold_does_not_fire(sets: ValueSets) -> None:
    assert measure(sets, [(days_ago(150), 80.0), (days_ago(20), 76.1)]).truth is Tri.FALSE


def test_without_a_weight_in_the_last_90_days_there_is_no_current_weight(sets: ValueSets) -> None:
    assert measure(sets, [(days_ago(250), 80.0), (days_ago(91), 70.0)]).truth is Tri.FALSE
    assert measure(sets, [(days_ago(250), 80.0), (days_ago(89), 70.0)]).truth is Tri.TRUE


def test_the_baseline_is_30_to_365_days_before_the_latest_weight(sets: ValueSets) -> None:
    # 29 days apart is too close, 366 days too far: neither is a baseline.
    assert measure(sets, [(days_ago(31), 80.0), (days_ago(2), 70.0)]).truth is Tri.FALSE
    assert measure(sets, [(days_ago(368), 80.0), (days_ago(2), 70.0)]).truth is Tri.FALSE
    assert measure(sets, [(days_ago(32), 80.0), (days_ago(2), 70.0)]).truth is Tri.TRUE


def test_weights_dated_in_the_future_are_not_read(sets: ValueSets) -> None:
    series = [(days_ago(100), 80.0), (days_ago(2), 79.5), (TODAY + timedelta(days=5), 60.0)]
    assert measure(sets, series).truth is Tri.FALSE


def test_unobtainable_observations_leave_the_loss_unknown(sets: ValueSets) -> None:
    assert measure(sets, [], unavailable=("Observation",)).truth is Tri.UNKNOWN
    stable = [(days_ago(100), 80.0), (days_ago(2), 80.0)]
    assert measure(sets, stable, unavailable=("Observation",)).truth is Tri.UNKNOWN
    assert measure(sets, []).truth is Tri.FALSE


def test_a_window_of_many_weights_is_summarised_on_the_card_not_listed(sets: ValueSets) -> None:
    series = [(days_ago(300 - i), 82.0) for i in range(20)] + [(days_ago(2), 76.0)]
    (note,) = measure(sets, series).notes
    assert "median 82 kg earlier (20 weights, " in note
    assert "82, 82" not in note


@pytest.mark.parametrize(
    ("fact", "problem"),
    [
        ({k: v for k, v in FACT.items() if k != "windows"}, "needs percent and windows"),
        ({k: v for k, v in FACT.items() if k != "percent"}, "needs percent and windows"),
        ({**FACT, "within": "P12M"}, "windowed by windows, not within"),
        ({"name": "bilateral", "valuesets": ["radic"], "windows": FACT["windows"]}, "no windows"),
    ],
)
def test_the_weight_loss_constants_are_required_in_the_rule_file(
    fact: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValidationError, match=problem):
        Node.model_validate({"fact": fact})


def test_the_linear_time_benchmark_measures_a_loss_at_every_size() -> None:
    payload = bench.run([50, 500], budget_seconds=0.0)
    rows = payload["sizes"]
    assert [row["weights"] for row in rows] == [50, 500]
    assert rows[1]["size_ratio"] == 10
    assert all(row["fact_ms"] > 0 for row in rows)
