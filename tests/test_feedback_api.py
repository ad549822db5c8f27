"""Feedback endpoint: the spec's bodies are accepted and stored once; bad bodies are 400."""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from cds.clock import clock_for
from cds.settings import PROJECT_ROOT, Settings
from cds.store.schema import feedback
from tests.conftest import holding_audit_app, serving
from tests.examples import spec_example

pytestmark = pytest.mark.anyio

URL = "/cds-services/back-to-foot/feedback"
RF01_AT_SIGNING = PROJECT_ROOT / "tests/cases/back-to-foot-order-sign/rf-01-at-signing.json"


@pytest.mark.parametrize(
    "name",
    [
        "19-feedback-accepted.json",
        "20-feedback-overridden-no-reason.json",
        "21-feedback-overridden-with-reason.json",
    ],
)
async def test_the_spec_feedback_examples_are_accepted(
    client: httpx.AsyncClient, name: str
) -> None:
    """F-02, F-03, F-07: unknown card uuids are accepted and flagged."""
    response = await client.post(URL, json=spec_example(name))
    assert response.status_code == 200
    assert response.json() == {
        "stored": 1,
        "duplicates": 0,
        "unmatched": 1,
        "unknownSuggestions": 0,
    }


async def test_posting_the_same_feedback_twice_stores_it_once(client: httpx.AsyncClient) -> None:
    """F-04."""
    body = spec_example("19-feedback-accepted.json")
    await client.post(URL, json=body)
    again = await client.post(URL, json=body)
    assert again.status_code == 200
    assert again.json()["duplicates"] == 1
    assert again.json()["stored"] == 0


async def test_feedback_on_a_card_we_issued_is_matched_to_its_rule(
    client: httpx.AsyncClient, rb01_request: dict[str, Any]
) -> None:
    """F-08, C-07: the card uuid leads back to the rule id."""
    cards = (await client.post("/cds-services/back-to-foot", json=rb01_request)).json()["cards"]
    card = cards[0]
    body = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "accepted",
                "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
                "outcomeTimestamp": "2026-06-01T12:00:05.123Z",
            }
        ]
    }
    response = await client.post(URL, json=body)
    assert response.json() == {
        "stored": 1,
        "duplicates": 0,
        "unmatched": 0,
        "unknownSuggestions": 0,
    }


async def test_feedback_on_a_card_still_waiting_to_be_written_is_matched(
    settings: Settings, rb01_request: dict[str, Any]
) -> None:
    """F-08 with the audit writer holding its batch: feedback writes it first."""
    app = holding_audit_app(settings)
    async with serving(app) as client:
        answer = await client.post("/cds-services/back-to-foot", json=rb01_request)
        card = answer.json()["cards"][0]
        item = {
            "card": card["uuid"],
            "outcome": "overridden",
            "outcomeTimestamp": "2026-06-01T12:00:05Z",
        }
        response = await client.post(URL, json={"feedback": [item]})
    assert response.json() == {
        "stored": 1,
        "duplicates": 0,
        "unmatched": 0,
        "unknownSuggestions": 0,
    }


async def test_sandbox_shaped_feedback_without_display_is_accepted(
    client: httpx.AsyncClient,
) -> None:
    """SB-13: the sandbox sends reason {code, system} without display."""
    body = {
        "feedback": [
            {
                "card": "6f1e3b0a-8a39-4d0e-9b0c-0d1e2f3a4b5c",
                "outcome": "overridden",
                "outcomeTimestamp": "2026-03-31T12:00:00.123Z",
                "overrideReason": {"reason": {"code": "already-referred", "system": "urn:x"}},
            }
        ]
    }
    assert (await client.post(URL, json=body)).status_code == 200


@pytest.mark.parametrize(
    "item",
    [
        {"outcome": "accepted", "outcomeTimestamp": "2026-01-01T00:00:00Z"},
        {"card": "c", "outcome": "ignored", "outcomeTimestamp": "2026-01-01T00:00:00Z"},
        {"card": "c", "outcome": "accepted", "outcomeTimestamp": "2026-01-01T00:00:00Z"},
        {"card": "c", "outcome": "overridden", "outcomeTimestamp": "yesterday"},
        {"card": "c", "outcome": "overridden", "outcomeTimestamp": "2026-01-01T00:00:00"},
        {
            "card": "c",
            "outcome": "accepted",
            "acceptedSuggestions": [{}],
            "outcomeTimestamp": "2026-01-01T00:00:00Z",
        },
    ],
)
async def test_a_malformed_feedback_item_is_a_400(
    client: httpx.AsyncClient, item: dict[str, Any]
) -> None:
    """F-03 and the draft invariants cds-fb-1..3."""
    response = await client.post(URL, json={"feedback": [item]})
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"


async def test_feedback_for_an_unknown_service_is_a_404(client: httpx.AsyncClient) -> None:
    """F-07."""
    response = await client.post(
        "/cds-services/nope/feedback", json=spec_example("19-feedback-accepted.json")
    )
    assert response.status_code == 404


async def test_feedback_on_one_rules_card_from_each_service_is_matched_every_time(
    app: FastAPI,
) -> None:
    """F-08, C-07: RF-01 fires on every service; each card has its own uuid, and feedback sent
    to each service finds that service's card."""
    case = json.loads(RF01_AT_SIGNING.read_text(encoding="utf-8"))
    services = {
        "back-to-foot": "patient-view",
        "back-to-foot-order-sign": "order-sign",
        "back-to-foot-order-select": "order-select",
    }
    async with serving(app) as client:
        app.state.parts.clock = clock_for(case["now"])
        uuids = {}
        for number, (service, hook) in enumerate(services.items()):
            body = copy.deepcopy(case["request"])
            body["hook"] = hook
            body["hookInstance"] = f"0c6f2f39-4b55-4a3f-9d39-4f7f0a3c2b1{number}"
            if hook == "order-select":
                body["context"]["selections"] = ["ServiceRequest/draft-mri"]
            cards = (await client.post(f"/cds-services/{service}", json=body)).json()["cards"]
            (card,) = [c for c in cards if c["source"]["topic"]["code"] == "RF-01"]
            uuids[service] = card["uuid"]
        assert len(set(uuids.values())) == len(services)
        for service, uuid in uuids.items():
            item = {"card": uuid, "outcome": "overridden", "outcomeTimestamp": case["now"]}
            response = await client.post(
                f"/cds-services/{service}/feedback", json={"feedback": [item]}
            )
            assert response.json() == {
                "stored": 1,
                "duplicates": 0,
                "unmatched": 0,
                "unknownSuggestions": 0,
            }


async def test_feedback_accepting_a_suggestion_the_card_never_had_is_stored_and_flagged(
    client: httpx.AsyncClient, app: FastAPI, rb01_request: dict[str, Any]
) -> None:
    """F-08: the item is kept (never refused) and marked, so it is not read as accepted advice."""
    cards = (await client.post("/cds-services/back-to-foot", json=rb01_request)).json()["cards"]
    item = {
        "card": cards[0]["uuid"],
        "outcome": "accepted",
        "acceptedSuggestions": [{"id": "a-suggestion-this-card-never-had"}],
        "outcomeTimestamp": "2026-06-01T12:00:05Z",
    }
    response = await client.post(URL, json={"feedback": [item]})
    assert response.status_code == 200
    assert response.json() == {
        "stored": 1,
        "duplicates": 0,
        "unmatched": 0,
        "unknownSuggestions": 1,
    }
    async with app.state.parts.store.engine.connect() as conn:
        (row,) = (await conn.execute(sa.select(feedback))).all()
    assert (row.matched, row.unknown_suggestions) == (True, True)
    assert row.accepted_suggestion_ids == ["a-suggestion-this-card-never-had"]
