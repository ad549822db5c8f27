"""Golden clinical cases: every tests/cases/<service-id>/*.json runs through the HTTP API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from cds import hooks
from cds.app import create_app
from cds.catalogue import Catalogue
from cds.clock import clock_for
from cds.fhir import parse_resource
from cds.settings import PROJECT_ROOT, Settings
from tests.wire_rules import empty_values

CASES = sorted((PROJECT_ROOT / "tests" / "cases").glob("*/*.json"))
CASE_DATA = {path: json.loads(path.read_text(encoding="utf-8")) for path in CASES}
PUBLIC_BASE_URL = "https://cds.example.org"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def golden_app(
    tmp_path_factory: pytest.TempPathFactory, catalogue: Catalogue
) -> AsyncIterator[FastAPI]:
    """One app for every case; each case sets the evaluation clock to its own ``now``."""
    db = tmp_path_factory.mktemp("golden") / "cds.db"
    settings = Settings(
        env="test", database_url=f"sqlite+aiosqlite:///{db}", public_base_url=PUBLIC_BASE_URL
    )
    app = create_app(settings, catalogue=catalogue)
    async with app.router.lifespan_context(app):
        yield app


def codes_of(response: hooks.CdsResponse) -> set[str]:
    found = set()
    for card in response.cards:
        for suggestion in card.suggestions or []:
            for action in suggestion.actions or []:
                for coding in (action.resource or {}).get("code", {}).get("coding", []):
                    found.add(coding["code"])
    return found


def priorities_of(card: hooks.Card) -> set[str]:
    """The priorities of the ServiceRequests a card's suggestions create."""
    return {
        action.resource["priority"]
        for suggestion in card.suggestions or []
        for action in suggestion.actions or []
        if action.resource is not None
    }


def rule_of(card: hooks.Card) -> str:
    assert card.source.topic is not None
    return card.source.topic.code


def _request_body(case: Mapping[str, Any]) -> dict[str, Any]:
    """The case's request with its "unavailable" keys left out of prefetch (P-11: absent)."""
    body: dict[str, Any] = json.loads(json.dumps(case["request"]))
    for key in case.get("unavailable", []):
        body.get("prefetch", {}).pop(key, None)
    return body


@pytest.mark.anyio
@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
async def test_golden_case(path: Path, golden_app: FastAPI) -> None:
    """Each case through the HTTP API: rules fired and absent, codes, indicators, valid output."""
    case = CASE_DATA[path]
    expect: Mapping[str, Any] = case["expect"]
    # "rules" is the full set of rules whose cards come back, [] when none: a case that leaves
    # it out would let a spurious card pass, so it is refused rather than read as "none".
    assert "rules" in expect, f"{path.name}: expect.rules must list every rule that fires"
    golden_app.state.parts.clock = clock_for(case["now"])
    transport = httpx.ASGITransport(app=golden_app)
    async with httpx.AsyncClient(transport=transport, base_url="https://cds.example.org") as c:
        answer = await c.post(f"/cds-services/{path.parent.name}", json=_request_body(case))
    assert answer.status_code == expect.get("status", 200), answer.text
    if answer.status_code != 200:
        assert answer.json()["resourceType"] == "OperationOutcome"
        assert expect["rules"] == [], "an error answer carries no cards"
        return
    wire = answer.json()
    assert empty_values(wire) == []
    response = hooks.CdsResponse.model_validate(wire)
    # Encoded once by the flow, the answer is byte for byte what its wire dict encodes to.
    assert answer.content == orjson.dumps(hooks.to_wire(response))

    fired = {rule_of(card) for card in response.cards}
    # The full set: a spurious card fails the case as surely as a missing one.
    assert fired == set(expect["rules"]), f"{case['description']}: fired {sorted(fired)}"
    assert not set(expect.get("absent", [])) & fired, f"fired {sorted(fired)}"
    details = {rule_of(c): c.detail or "" for c in response.cards}
    for rule_id, phrases in expect.get("detailContains", {}).items():
        for phrase in phrases:
            assert phrase in details.get(rule_id, ""), f"{rule_id} detail lacks {phrase!r}"
    for rule_id, phrases in expect.get("detailLacks", {}).items():
        for phrase in phrases:
            assert phrase not in details.get(rule_id, ""), f"{rule_id} detail has {phrase!r}"
    assert set(expect.get("suggestionCodes", [])) <= codes_of(response)
    for code in expect.get("absentSuggestionCodes", []):
        assert code not in codes_of(response)
    indicators = {rule_of(c): c.indicator for c in response.cards}
    for rule_id, indicator in expect.get("indicators", {}).items():
        assert indicators.get(rule_id) == indicator
    cards = {rule_of(c): c for c in response.cards}
    for rule_id, card in cards.items():
        # Every card's last link is its rule's page, under the service's public URL.
        assert card.links is not None, f"{rule_id} has no links"
        about = card.links[-1]
        assert (about.label, about.url, about.type) == (
            "About this rule",
            f"{PUBLIC_BASE_URL}/rules/{rule_id}",
            "absolute",
        )
    for rule_id, behavior in expect.get("selectionBehavior", {}).items():
        assert cards[rule_id].selection_behavior == behavior
    for rule_id, priority in expect.get("suggestionPriorities", {}).items():
        assert priorities_of(cards[rule_id]) == {priority}
    for card in response.cards:
        for suggestion in card.suggestions or []:
            for action in suggestion.actions or []:
                if action.resource is not None:
                    assert parse_resource(action.resource) is not None, action.resource
                    reasons = [r["reference"] for r in action.resource.get("reasonReference", [])]
                    assert len(reasons) == len(set(reasons)), f"listed twice: {reasons}"
