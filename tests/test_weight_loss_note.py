"""The weight-loss card note names each window's weights with their first and last dates, read
from the window's own weights (oldest first), whatever their order in the chart and however
many share a day."""

from __future__ import annotations

import random

import pytest

from cds.rules import Tri
from cds.settings import PROJECT_ROOT
from cds.valuesets import ValueSets, load_valuesets
from tests.test_weight_loss import days_ago, measure


@pytest.fixture(scope="module")
def sets() -> ValueSets:
    return load_valuesets(PROJECT_ROOT / "rules" / "valuesets")


def _span(series: list[tuple[int, float]]) -> str:
    """A window's words as a reader of the chart writes them, from days ago and weights."""
    ordered = sorted(series, key=lambda pair: -pair[0])  # oldest first
    first, last = days_ago(ordered[0][0]).isoformat(), days_ago(ordered[-1][0]).isoformat()
    dates = first if first == last else f"{first} to {last}"
    count = f"{len(series)} weight" + ("s" if len(series) != 1 else "")
    listed = ", ".join(f"{kg:g}" for _, kg in ordered)
    return f"({count}, {dates}: {listed} kg)"


def test_each_window_reads_its_first_and_last_dates_in_any_chart_order(sets: ValueSets) -> None:
    rng = random.Random(18)
    for _ in range(40):
        # Distinct days per window (same-day weights order by the chart, not by value).
        baseline = [(day, float(rng.randint(88, 95))) for day in rng.sample(range(40, 300), 4)]
        current = [(day, float(rng.randint(70, 75))) for day in rng.sample(range(0, 10), 3)]
        if rng.random() < 0.5:
            current = current[:1]
        series = baseline + current
        rng.shuffle(series)
        result = measure(sets, [(days_ago(day), kg) for day, kg in series])
        assert result.truth is Tri.TRUE
        (note,) = result.notes
        assert f"earlier {_span(baseline)}" in note
        assert f"now {_span(current)}." in note


def test_a_window_of_one_day_names_that_day_once(sets: ValueSets) -> None:
    result = measure(sets, [(days_ago(100), 90.0), (days_ago(3), 80.0)])
    (note,) = result.notes
    assert f"(1 weight, {days_ago(100).isoformat()}: 90 kg)" in note
    assert f"(1 weight, {days_ago(3).isoformat()}: 80 kg)" in note
