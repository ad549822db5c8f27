"""Golden clinical cases: every tests/cases/<service-id>/*.json runs through the engine."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from cds import hooks
from cds.catalogue import Catalogue, load_catalogue
from cds.engine import evaluate
from cds.fhir import parse_resource
from cds.settings import PROJECT_ROOT

CASES = sorted((PROJECT_ROOT / "tests" / "cases").glob("*/*.json"))
TOPIC = "https://footpath-cds.example.org/CodeSystem/rule"


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue(PROJECT_ROOT / "rules", PROJECT_ROOT / "cards", TOPIC)


def unwrap(value: Any) -> list[dict[str, Any]]:
    """The resources of a prefetch value: a Bundle's entries or a single resource."""
    if not isinstance(value, dict):
        return []
    if value.get("resourceType") == "Bundle":
        return [e["resource"] for e in value.get("entry", []) if "resource" in e]
    return [value]


def codes_of(response: hooks.CdsResponse) -> set[str]:
    found = set()
    for card in response.cards:
        for suggestion in card.suggestions or []:
            for action in suggestion.actions or []:
                for coding in (action.resource or {}).get("code", {}).get("coding", []):
                    found.add(coding["code"])
    return found


def rule_of(card: hooks.Card) -> str:
    assert card.source.topic is not None
    return card.source.topic.code


@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_golden_case(path: Path, catalogue: Catalogue) -> None:
    case = json.loads(path.read_text(encoding="utf-8"))
    expect: Mapping[str, Any] = case["expect"]
    request = hooks.HookRequest.model_validate(case["request"])
    service = catalogue.services[path.parent.name]
    context = hooks.CONTEXT_MODELS[request.hook].model_validate(request.context)
    prefetch = request.prefetch or {}
    resources = {key: unwrap(prefetch.get(key)) for key in service.prefetch}
    unavailable = dict.fromkeys(case.get("unavailable", []), "absent from the case")
    for key in unavailable:
        resources.pop(key, None)
    now = datetime.fromisoformat(case["now"].replace("Z", "+00:00"))

    result = evaluate(catalogue, service, request, context, resources, unavailable, now)

    fired = set(result.fired)
    assert set(expect.get("rules", [])) <= fired, f"{case['description']}: fired {sorted(fired)}"
    assert not set(expect.get("absent", [])) & fired, f"fired {sorted(fired)}"
    assert set(expect.get("suggestionCodes", [])) <= codes_of(result.response)
    for code in expect.get("absentSuggestionCodes", []):
        assert code not in codes_of(result.response)
    indicators = {rule_of(c): c.indicator for c in result.response.cards}
    for rule_id, indicator in expect.get("indicators", {}).items():
        assert indicators.get(rule_id) == indicator
    for card in result.response.cards:
        hooks.Card.model_validate(hooks.to_wire(card))
        for suggestion in card.suggestions or []:
            for action in suggestion.actions or []:
                if action.resource is not None:
                    assert parse_resource(action.resource) is not None, action.resource
