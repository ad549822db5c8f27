"""Precedence between the cards of one call, as rules/back-to-foot.yaml's `precedence` says:
a red flag suppresses the routine cards, one card owns each kind of suggestion, and the most
severe cards come first."""

from __future__ import annotations

from typing import Any

import pytest

from tests.hook_calls import (
    HookCalls,
    ago,
    icd,
    quantity,
    rule_of,
    sciatica_with_tingling,
    suggestion_labels,
)
from tests.requests import SNOMED, condition

pytestmark = pytest.mark.anyio
SERVICE = "back-to-foot"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """Module-wide, for the module's app (conftest's ``calls``)."""
    return "asyncio"


async def test_new_sciatica_with_tingling_alone_gets_the_first_contact_card(
    calls: HookCalls,
) -> None:
    assert set(await calls.fired(SERVICE, conditions=sciatica_with_tingling())) == {"RB-01"}


async def test_cauda_equina_suppresses_the_first_contact_card(calls: HookCalls) -> None:
    ces = icd("ces", "G83.4", "Cauda equina syndrome", ago(3))
    fired = await calls.fired(SERVICE, conditions=[*sciatica_with_tingling(), ces])
    assert set(fired) == {"RF-01"}


async def test_persistent_sciatica_with_severe_pain_replaces_the_first_contact_card(
    calls: HookCalls,
) -> None:
    pain = quantity("pain", "72514-3", 8, "{score}", ago(2))
    fired = await calls.fired(
        SERVICE, conditions=sciatica_with_tingling(onset_days=60), observations=[pain]
    )
    assert set(fired) == {"RB-02"}


async def test_diabetic_neuropathy_with_a_lumbar_source_suppresses_the_uncertainty_card(
    calls: HookCalls,
) -> None:
    polyneuropathy = icd("pn", "G62.9", "Polyneuropathy, unspecified", ago(100))
    diabetic = icd("dpn", "E11.42", "Type 2 diabetes mellitus with polyneuropathy", ago(100))
    # The same picture with a polyneuropathy of no named cause is RB-03's own.
    plain = await calls.fired(SERVICE, conditions=[*sciatica_with_tingling(), polyneuropathy])
    assert "RB-03" in plain
    assert "DM-02" not in plain
    fired = await calls.fired(SERVICE, conditions=[*sciatica_with_tingling(), diabetic])
    assert "DM-02" in fired
    assert "RB-03" not in fired


def foot_drop_on_old_sciatica(foot_drop_days: int) -> list[dict[str, Any]]:
    return [
        icd("radic", "M54.16", "Radiculopathy, lumbar region", ago(200)),
        icd("drop", "M21.371", "Foot drop, right foot", ago(foot_drop_days)),
    ]


async def test_a_card_left_without_suggestions_by_the_owner_of_its_kind_is_dropped(
    calls: HookCalls,
) -> None:
    # An old foot drop: RB-03 owns the EDX referral (RF-02 has not fired).
    old = await calls.fired(SERVICE, conditions=foot_drop_on_old_sciatica(40))
    assert set(old) == {"RB-02", "RB-03"}
    assert suggestion_labels(old["RB-03"]) == ["Referral for NCS with needle EMG"]
    # A new one: RF-02 ranks first for EDX, and RB-03, holding nothing else, is not shown.
    new = await calls.fired(SERVICE, conditions=foot_drop_on_old_sciatica(10))
    assert set(new) == {"RF-02"}
    assert "Referral for NCS with needle EMG" in suggestion_labels(new["RF-02"])


def diabetic_numb_foot_with_plantar_fasciitis() -> list[dict[str, Any]]:
    return [
        icd("dm", "E11.9", "Type 2 diabetes mellitus without complications", ago(400)),
        condition("numb", SNOMED, "309087008", "Paresthesia of foot", ago(10)),
        icd("pf", "M72.2", "Plantar fascial fibromatosis", ago(100)),
        icd("radic", "M54.16", "Radiculopathy, lumbar region", ago(20)),
    ]


async def test_one_card_owns_the_podiatry_referral_and_the_others_keep_their_cards(
    calls: HookCalls,
) -> None:
    fired = await calls.fired(SERVICE, conditions=diabetic_numb_foot_with_plantar_fasciitis())
    assert set(fired) == {"DM-01", "RB-01", "RB-04", "MIM-02"}
    assert "Referral to podiatry" in suggestion_labels(fired["DM-01"])
    # Podiatry is not one of the kinds that drop an emptied card: RB-04 stays, offering nothing.
    assert suggestion_labels(fired["RB-04"]) == []
    assert suggestion_labels(fired["MIM-02"]) == ["Referral for tibial/plantar NCS with needle EMG"]


async def test_cards_come_most_severe_first_then_in_the_services_rule_order(
    calls: HookCalls,
) -> None:
    cards = await calls.cards(SERVICE, conditions=diabetic_numb_foot_with_plantar_fasciitis())
    # DM-01 is listed after the RB and MIM rules, but its overdue foot exam makes it a warning.
    assert [(rule_of(c), c["indicator"]) for c in cards] == [
        ("DM-01", "warning"),
        ("RB-01", "info"),
        ("RB-04", "info"),
        ("MIM-02", "info"),
    ]
