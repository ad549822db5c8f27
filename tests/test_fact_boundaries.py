"""The edges of what the rules compute: each age, window and threshold exactly at its bound,
just inside it and just outside it (a second, a day or a hundredth away)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.hook_calls import (
    HookCalls,
    ago,
    born,
    icd,
    procedure,
    quantity,
    sciatica_with_tingling,
    weight,
)
from tests.requests import SNOMED

pytestmark = pytest.mark.anyio
SERVICE = "back-to-foot"
EDGES = ["exactly-at-the-bound", "just-inside", "just-outside"]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """Module-wide, for the module's app (conftest's ``calls``)."""
    return "asyncio"


def edges(days: float, *, inside_is_later: bool = True) -> list[tuple[str, bool]]:
    """``days`` before now, a second inside and a second outside a bound that far back."""
    step = -1 if inside_is_later else 1
    return [(ago(days), True), (ago(days, seconds=step), True), (ago(days, seconds=-step), False)]


# ---------------------------------------------------------------------------------- ages


@pytest.mark.parametrize(("days_later", "fires"), [(0, True), (-1, True), (1, False)], ids=EDGES)
async def test_the_lumbar_cards_start_on_the_sixteenth_birthday(
    calls: HookCalls, days_later: int, fires: bool
) -> None:
    patient = born(16, days_later=days_later)
    fired = await calls.fired(SERVICE, patient=patient, conditions=sciatica_with_tingling())
    assert set(fired) == ({"RB-01"} if fires else set())


@pytest.mark.parametrize(("days_later", "fires"), [(0, True), (-1, True), (1, False)], ids=EDGES)
async def test_the_weight_loss_red_flag_starts_on_the_sixteenth_birthday(
    calls: HookCalls, days_later: int, fires: bool
) -> None:
    conditions = [
        icd("lbp", "M54.50", "Low back pain, unspecified", ago(30)),
        icd("loss", "R63.4", "Abnormal weight loss", ago(10)),
    ]
    fired = await calls.fired(
        SERVICE, patient=born(16, days_later=days_later), conditions=conditions
    )
    assert set(fired) == ({"RF-03"} if fires else set())


# ------------------------------------------------------------------------ clause windows


@pytest.mark.parametrize(("onset", "fires"), edges(30), ids=EDGES)
async def test_a_foot_drop_is_new_for_30_days(calls: HookCalls, onset: str, fires: bool) -> None:
    drop = icd("drop", "M21.371", "Foot drop, right foot", onset)
    assert set(await calls.fired(SERVICE, conditions=[drop])) == ({"RF-02"} if fires else set())


@pytest.mark.parametrize(("onset", "fires"), edges(42, inside_is_later=False), ids=EDGES)
async def test_sciatica_is_persistent_from_42_days(
    calls: HookCalls, onset: str, fires: bool
) -> None:
    radic = icd("radic", "M54.16", "Radiculopathy, lumbar region", onset)
    pain = quantity("pain", "72514-3", 8, "{score}", ago(2))
    fired = await calls.fired(SERVICE, conditions=[radic], observations=[pain])
    assert set(fired) == ({"RB-02"} if fires else set())


@pytest.mark.parametrize(("performed", "current"), edges(365), ids=EDGES)
async def test_a_diabetic_foot_exam_counts_for_twelve_calendar_months(
    calls: HookCalls, performed: str, current: bool
) -> None:
    # 2025-06-01 to 2026-06-01 holds no 29 February: twelve months are 365 days here.
    neuropathy = icd("dpn", "E11.42", "Type 2 diabetes mellitus with polyneuropathy", ago(400))
    exam = procedure("exam", SNOMED, "401191002", performed)
    fired = await calls.fired(SERVICE, conditions=[neuropathy], procedures=[exam])
    assert fired["DM-01"]["indicator"] == ("info" if current else "warning")


@pytest.mark.parametrize(("recorded", "active"), edges(365), ids=EDGES)
async def test_a_condition_without_a_clinical_status_is_active_for_twelve_months(
    calls: HookCalls, recorded: str, active: bool
) -> None:
    radic, tingling = sciatica_with_tingling()
    undated = {k: v for k, v in radic.items() if k != "clinicalStatus"} | {
        "onsetDateTime": recorded
    }
    fired = await calls.fired(SERVICE, conditions=[undated, tingling])
    assert set(fired) == ({"RB-01"} if active else set())


# ------------------------------------------------------------------------ computed facts


@pytest.mark.parametrize(("second_side", "fires"), edges(14), ids=EDGES)
async def test_sciatica_on_both_sides_is_a_red_flag_when_the_second_side_is_14_days_old(
    calls: HookCalls, second_side: str, fires: bool
) -> None:
    left = icd("left", "M54.32", "Sciatica, left side", ago(100))
    right = icd("right", "M54.31", "Sciatica, right side", second_side)
    fired = await calls.fired(SERVICE, conditions=[left, right])
    assert set(fired) == ({"RF-01"} if fires else set())


@pytest.mark.parametrize(("earlier", "new"), edges(190), ids=EDGES)
async def test_incontinence_is_new_unless_on_record_90_days_before_the_back_problem(
    calls: HookCalls, earlier: str, new: bool
) -> None:
    # The back pain began 100 days ago: incontinence recorded more than 90 days before that
    # (190 days ago) is a chronic problem re-entered today, not a cauda equina sign.
    conditions = [
        icd("lbp", "M54.50", "Low back pain, unspecified", ago(100)),
        icd("then", "R32", "Unspecified urinary incontinence", earlier),
        icd("now", "R32", "Unspecified urinary incontinence", ago(2)),
    ]
    fired = await calls.fired(SERVICE, conditions=conditions)
    assert set(fired) == ({"RF-01"} if new else set())


def back_pain() -> list[dict[str, Any]]:
    return [icd("lbp", "M54.50", "Low back pain, unspecified", ago(400))]


async def weight_loss_fires(calls: HookCalls, *weights: dict[str, Any]) -> bool:
    fired = await calls.fired(SERVICE, conditions=back_pain(), observations=list(weights))
    assert set(fired) <= {"RF-03"}
    return "RF-03" in fired


@pytest.mark.parametrize(
    ("now_kg", "fires"), [(95.0, True), (94.99, True), (95.01, False)], ids=EDGES
)
async def test_a_weight_loss_of_five_percent_is_a_red_flag(
    calls: HookCalls, now_kg: float, fires: bool
) -> None:
    assert (
        await weight_loss_fires(
            calls, weight("before", 100.0, ago(60)), weight("now", now_kg, ago(1))
        )
        is fires
    )


async def loses_ten_percent(calls: HookCalls, *, baseline: str, latest: str) -> bool:
    """Whether 100 kg at ``baseline`` and 90 kg at ``latest`` are read as a weight loss."""
    before, after = weight("before", 100.0, baseline), weight("latest", 90.0, latest)
    return await weight_loss_fires(calls, before, after)


@pytest.mark.parametrize(("latest", "fires"), edges(90), ids=EDGES)
async def test_the_latest_weight_must_be_at_most_90_days_old(
    calls: HookCalls, latest: str, fires: bool
) -> None:
    assert await loses_ten_percent(calls, baseline=ago(150), latest=latest) is fires


@pytest.mark.parametrize(("baseline", "fires"), edges(31, inside_is_later=False), ids=EDGES)
async def test_a_baseline_weight_is_at_least_30_days_before_the_latest(
    calls: HookCalls, baseline: str, fires: bool
) -> None:
    assert await loses_ten_percent(calls, baseline=baseline, latest=ago(1)) is fires


@pytest.mark.parametrize(("baseline", "fires"), edges(366), ids=EDGES)
async def test_a_baseline_weight_is_at_most_365_days_before_the_latest(
    calls: HookCalls, baseline: str, fires: bool
) -> None:
    assert await loses_ten_percent(calls, baseline=baseline, latest=ago(1)) is fires


@pytest.mark.parametrize(("heavier", "counted"), edges(15), ids=EDGES)
async def test_the_current_weight_is_the_median_of_the_14_days_up_to_the_latest(
    calls: HookCalls, heavier: str, counted: bool
) -> None:
    # Counted, 110 kg lifts the current median to 100 kg: no loss against the 100 kg baseline.
    assert (
        await weight_loss_fires(
            calls,
            weight("before", 100.0, ago(100)),
            weight("heavier", 110.0, heavier),
            weight("latest", 90.0, ago(1)),
        )
        is not counted
    )


# --------------------------------------------------------------------- measured thresholds


@pytest.mark.parametrize(("score", "severe"), [(7, True), (7.5, True), (6.9, False)], ids=EDGES)
async def test_a_pain_score_of_7_is_severe(calls: HookCalls, score: float, severe: bool) -> None:
    radic = icd("radic", "M54.16", "Radiculopathy, lumbar region", ago(60))
    pain = quantity("pain", "72514-3", score, "{score}", ago(2))
    fired = await calls.fired(SERVICE, conditions=[radic], observations=[pain])
    assert set(fired) == ({"RB-02"} if severe else set())


@pytest.mark.parametrize(("hba1c", "diabetic"), [(6.5, True), (6.6, True), (6.4, False)], ids=EDGES)
async def test_an_hba1c_of_6_5_percent_is_diabetes(
    calls: HookCalls, hba1c: float, diabetic: bool
) -> None:
    tingling = icd("tingling", "R20.2", "Paresthesia of skin", ago(5))
    result = quantity("a1c", "4548-4", hba1c, "%", ago(30))
    fired = await calls.fired(SERVICE, conditions=[tingling], observations=[result])
    assert set(fired) == ({"DM-01"} if diabetic else set())
