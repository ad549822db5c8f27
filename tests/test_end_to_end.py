"""One real rule end to end over HTTP: prefetch -> record -> rules -> cards (RB-01)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.wire_rules import empty_values

pytestmark = pytest.mark.anyio


async def test_rb01_fires_for_foot_tingling_with_lumbar_stenosis(
    client: httpx.AsyncClient, rb01_request: dict[str, Any]
) -> None:
    """C-01, C-06, C-11: the card names its rule in source.topic.code."""
    response = await client.post("/cds-services/back-to-foot", json=rb01_request)
    assert response.status_code == 200, response.text
    cards = response.json()["cards"]
    topics = [card["source"]["topic"]["code"] for card in cards]
    assert "RB-01" in topics
    card = cards[topics.index("RB-01")]
    assert card["indicator"] == "info"
    assert len(card["summary"]) < 140
    assert "M48.062" in card["detail"] or "stenosis" in card["detail"].lower()
    assert card["selectionBehavior"] in ("at-most-one", "any")
    resource = card["suggestions"][0]["actions"][0]["resource"]
    assert resource["resourceType"] == "ServiceRequest"
    assert resource["status"] == "draft"
    assert resource["intent"] == "proposal"
    assert resource["subject"] == {"reference": "Patient/p1"}
    assert resource["code"]["coding"][0]["code"] == "308447003"
    assert empty_values(response.json()) == []


async def test_the_same_call_twice_gives_the_same_card_uuids(
    client: httpx.AsyncClient, rb01_request: dict[str, Any]
) -> None:
    """3.7: stable card uuids let the EHR de-duplicate."""
    first = (await client.post("/cds-services/back-to-foot", json=rb01_request)).json()
    second = (await client.post("/cds-services/back-to-foot", json=rb01_request)).json()
    assert [c["uuid"] for c in first["cards"]] == [c["uuid"] for c in second["cards"]]


async def test_a_refuted_lumbar_condition_gives_no_card(
    client: httpx.AsyncClient, rb01_request: dict[str, Any]
) -> None:
    """3.2: refuted data never fires a rule."""
    stenosis = rb01_request["prefetch"]["conditions"]["entry"][0]["resource"]
    stenosis["verificationStatus"]["coding"][0]["code"] = "refuted"
    response = await client.post("/cds-services/back-to-foot", json=rb01_request)
    assert response.status_code == 200
    assert response.json() == {"cards": []}


async def test_an_invalid_resource_in_a_prefetch_bundle_is_skipped_not_a_500(
    client: httpx.AsyncClient, rb01_request: dict[str, Any]
) -> None:
    """Bad input loses nothing: the broken Condition is skipped; the rest still fires RB-01."""
    rb01_request["prefetch"]["conditions"]["entry"].append(
        {"resource": {"resourceType": "Condition", "id": "broken", "code": "M54.16", "subject": 42}}
    )
    response = await client.post("/cds-services/back-to-foot", json=rb01_request)
    assert response.status_code == 200
    topics = [c["source"]["topic"]["code"] for c in response.json()["cards"]]
    assert "RB-01" in topics
