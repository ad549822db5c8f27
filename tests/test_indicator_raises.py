"""A rule raises its card's indicator when the record says it is more urgent (a foot drop on
both sides, an overdue diabetic foot exam), and the orders the card suggests follow it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.hook_calls import HookCalls, ago, icd, priorities, procedure
from tests.requests import SNOMED, condition

pytestmark = pytest.mark.anyio
SERVICE = "back-to-foot"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """Module-wide, for the module's app (conftest's ``calls``)."""
    return "asyncio"


RIGHT_FOOT_DROP = icd("right", "M21.371", "Foot drop, right foot", ago(10))
LEFT_FOOT_DROP = icd("left", "M21.372", "Foot drop, left foot", ago(4))


async def test_a_new_foot_drop_on_one_side_is_a_warning_with_urgent_orders(
    calls: HookCalls,
) -> None:
    card = (await calls.fired(SERVICE, conditions=[RIGHT_FOOT_DROP]))["RF-02"]
    assert card["indicator"] == "warning"
    assert priorities(card) == {"urgent"}


async def test_a_new_foot_drop_on_both_sides_raises_it_to_critical_with_stat_orders(
    calls: HookCalls,
) -> None:
    fired = await calls.fired(SERVICE, conditions=[RIGHT_FOOT_DROP, LEFT_FOOT_DROP])
    assert fired["RF-02"]["indicator"] == "critical"
    assert priorities(fired["RF-02"]) == {"stat"}


async def test_a_foot_drop_with_cauda_equina_is_critical_too(calls: HookCalls) -> None:
    ces = icd("ces", "G83.4", "Cauda equina syndrome", ago(3))
    fired = await calls.fired(SERVICE, conditions=[RIGHT_FOOT_DROP, ces])
    assert set(fired) == {"RF-01", "RF-02"}
    assert fired["RF-02"]["indicator"] == "critical"


async def test_a_new_foot_drop_on_an_old_one_of_the_other_side_is_critical(
    calls: HookCalls,
) -> None:
    # Both sides are involved from the moment the second one appears: ten days ago.
    old_left = icd("left", "M21.372", "Foot drop, left foot", ago(400))
    fired = await calls.fired(SERVICE, conditions=[RIGHT_FOOT_DROP, old_left])
    assert fired["RF-02"]["indicator"] == "critical"


async def test_a_new_paresis_on_a_foot_drop_bilateral_for_months_stays_a_warning(
    calls: HookCalls,
) -> None:
    old_drops = [
        icd("right", "M21.371", "Foot drop, right foot", ago(200)),
        icd("left", "M21.372", "Foot drop, left foot", ago(150)),
    ]
    paresis = condition(
        "paresis",
        SNOMED,
        "102568007",
        "Paresis of lower extremity",
        ago(5),
        bodySite=[{"text": "Left leg"}],
    )
    fired = await calls.fired(SERVICE, conditions=[*old_drops, paresis])
    assert set(fired) == {"RF-02"}
    assert fired["RF-02"]["indicator"] == "warning"


def diabetic_polyneuropathy() -> list[dict[str, Any]]:
    return [icd("dpn", "E11.42", "Type 2 diabetes mellitus with polyneuropathy", ago(300))]


async def test_an_overdue_diabetic_foot_exam_raises_the_foot_protection_card_to_a_warning(
    calls: HookCalls,
) -> None:
    card = (await calls.fired(SERVICE, conditions=diabetic_polyneuropathy()))["DM-01"]
    assert card["indicator"] == "warning"


async def test_a_foot_exam_in_the_last_twelve_months_leaves_it_at_info(calls: HookCalls) -> None:
    exam = procedure("exam", SNOMED, "401191002", ago(300))
    fired = await calls.fired(SERVICE, conditions=diabetic_polyneuropathy(), procedures=[exam])
    assert fired["DM-01"]["indicator"] == "info"
    assert priorities(fired["DM-01"]) == {"routine"}
