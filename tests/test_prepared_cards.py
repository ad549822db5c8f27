"""Cards prepared in wire form (cds/cards/prepared.py) are exactly what the wire models write.

Every card template of every rule, over evidence, suggestions, notes, drafts and priorities that
vary what a card carries, rendered prepared and through the models (`render`, `hooks.to_wire`);
then every golden case answered both ways, byte for byte, with no null or empty value.
"""

from __future__ import annotations

import copy
import itertools
import json
import pickle
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cds import hooks
from cds.caches import EvaluationCaches
from cds.cards.prepared import prepare_card, uuid5_text
from cds.cards.render import render
from cds.catalogue import Catalogue
from cds.clock import clock_for
from cds.data.patient_data import read_prefetch
from cds.engine import Evaluation, evaluate
from cds.errors import CdsError
from cds.invocation import parse_request
from cds.record import Entry
from cds.rules import RuleSpec
from cds.settings import PROJECT_ROOT
from tests.wire_rules import empty_values

CASES = sorted((PROJECT_ROOT / "tests" / "cases").glob("*/*.json"))
WHEN = datetime(2026, 2, 1, tzinfo=UTC)
BASE_URL = "https://cds.example.org"


@pytest.fixture(scope="module")
def caches(catalogue: Catalogue) -> EvaluationCaches:
    return EvaluationCaches.for_catalogue(catalogue, public_base_url=BASE_URL)


def _evidence() -> list[tuple[Entry, ...]]:
    condition = Entry("Condition", "c1", "condition", frozenset({"x"}), "Sciatica <b>", WHEN)
    observation = Entry(
        "Observation", "o1", "measurement", frozenset(), "HbA1c", WHEN, value=7.2, unit="%"
    )
    undated = Entry("Procedure", "p1", "procedure", frozenset(), "Physiotherapy", None)
    draft = Entry("ServiceRequest", "d1", "order", frozenset(), "MRI", WHEN, draft=True)
    # A display no record builds today: the model path prunes it from reasonReference.
    unnamed = Entry("DiagnosticReport", "r1", "report", frozenset(), "", WHEN)
    return [
        (),
        (condition,),
        (condition, observation, condition),
        (undated, draft),
        (unnamed, condition),
    ]


def _variants(rule: RuleSpec, catalogue: Catalogue) -> Iterator[dict[str, Any]]:
    """What one fired rule can decide for its card, in combinations that vary each member."""
    template = catalogue.cards[rule.card]
    specs = list(template.suggestions)
    kept = [specs, [], *([s] for s in specs), specs[::-1][:1]]
    drafts = [None, Entry("MedicationRequest", "m1", "medication", frozenset(), "Rx", WHEN)]
    for evidence, suggestions, (notes, measured), draft, priority in itertools.product(
        _evidence(),
        kept,
        [((), ()), (["Dropped: physiotherapy (2026-01-02)"], ["Weight 80 kg to 74 kg"])],
        drafts,
        [None, "urgent", ""],
    ):
        yield {
            "service_id": "back-to-foot",
            "rule_key": rule.key,
            "indicator": template.indicator,
            "patient_id": "p1",
            "evidence": evidence,
            "suggestions": suggestions,
            "notes": notes,
            "measured": measured,
            "draft": draft,
            "priority": priority,
        }


def test_every_rules_card_renders_the_same_prepared_or_through_the_models(
    catalogue: Catalogue, caches: EvaluationCaches
) -> None:
    compared = 0
    for rule in catalogue.rules.values():
        prepared = caches.card(rule)
        assert prepared is not None, f"{rule.key}: the shipped templates are all prepared"
        for variant in _variants(rule, catalogue):
            modelled = render(
                catalogue.cards[rule.card],
                rule_id=rule.id,
                rule_name=rule.name,
                valuesets=catalogue.valuesets,
                topic_system=catalogue.topic_system,
                frame=caches.frame(rule),
                **variant,
            )
            got = prepared.render(**variant)
            want = hooks.to_wire(modelled.card)
            assert orjson.dumps(got.card) == orjson.dumps(want), rule.key
            assert got.card == want
            assert (got.uuid, got.suggestion_uuids) == (
                str(modelled.card.uuid),
                modelled.suggestion_uuids,
            )
            assert empty_values(got.card) == []
            compared += 1
    assert compared > 1_000


def _answered(
    path: Path, catalogue: Catalogue, caches: EvaluationCaches
) -> Evaluation | str | None:
    case = json.loads(path.read_text(encoding="utf-8"))
    body = case["request"]
    for key in case.get("unavailable", []):
        body.get("prefetch", {}).pop(key, None)
    now = clock_for(case["now"])()
    try:
        service, request, context = parse_request(catalogue, path.parent.name, body)
        data = read_prefetch(service.prefetch, service.required_prefetch, request, None).finish()
    except CdsError:
        return None  # refused before evaluation: nothing rendered
    try:
        return evaluate(
            service, request, context, data.resources, data.unavailable, now, caches=caches
        )
    except CdsError as exc:
        return type(exc).__name__


@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_a_golden_case_answers_the_same_prepared_or_through_the_models(
    path: Path, catalogue: Catalogue, caches: EvaluationCaches
) -> None:
    """The whole answer's bytes and its issued cards; the bytes are what the route sends."""
    through_models = replace(caches, _cards=MappingProxyType({}))
    prepared = _answered(path, catalogue, caches)
    modelled = _answered(path, catalogue, through_models)
    if not isinstance(prepared, Evaluation) or not isinstance(modelled, Evaluation):
        assert prepared == modelled
        return
    answer, encoded = prepared.wire_json()
    assert encoded == orjson.dumps(hooks.to_wire(modelled.response))
    assert encoded == hooks.to_wire_json(prepared.response)[1]
    assert modelled.wire_json()[1] == encoded
    assert prepared.issued == modelled.issued
    assert empty_values(answer) == []


def test_a_prepared_cards_fixed_parts_cannot_be_changed_through_an_answer(
    catalogue: Catalogue, caches: EvaluationCaches
) -> None:
    rule = catalogue.rules["RB-01"]
    prepared = caches.card(rule)
    assert prepared is not None
    card = prepared.render(**next(_variants(rule, catalogue))).card
    with pytest.raises(TypeError):
        card["source"]["label"] = "changed"
    with pytest.raises(TypeError):
        card["links"].append({"label": "elsewhere"})
    with pytest.raises(TypeError):
        card["links"][0].update(url="https://elsewhere.example.org")
    assert copy.deepcopy(card) == pickle.loads(pickle.dumps(card)) == card  # noqa: S301 - our own bytes
    card["summary"] = "each answer's own dict is its own"  # only the shared parts are fixed
    again = prepared.render(**next(_variants(rule, catalogue))).card
    assert again["summary"] == catalogue.cards[rule.card].summary


def test_a_template_the_wire_models_would_refuse_is_left_to_them(
    catalogue: Catalogue, caches: EvaluationCaches
) -> None:
    rule = catalogue.rules["RB-01"]
    template = catalogue.cards[rule.card]
    frame = caches.frame(rule)
    assert frame is not None
    assert prepare_card(template, frame, catalogue.valuesets) is not None
    blank = template.model_copy(update={"summary": "   "})
    assert prepare_card(blank, frame, catalogue.valuesets) is None
    no_detail = template.model_copy(update={"detail": " \n "})
    assert prepare_card(no_detail, frame, catalogue.valuesets) is None
    recommended = [s.model_copy(update={"is_recommended": True}) for s in template.suggestions]
    greedy = template.model_copy(
        update={"suggestions": recommended * 2, "selection_behavior": "at-most-one"}
    )
    assert prepare_card(greedy, frame, catalogue.valuesets) is None


def test_a_rule_outside_the_catalogue_renders_through_the_models(
    catalogue: Catalogue, caches: EvaluationCaches
) -> None:
    rule = catalogue.rules["RB-01"]
    assert caches.card(rule) is not None
    assert caches.card(rule.model_copy()) is None


@given(st.binary(min_size=16, max_size=16), st.text(max_size=80))
def test_the_uuids_are_uuid5(namespace: bytes, name: str) -> None:
    assert uuid5_text(namespace, name) == str(uuid.uuid5(uuid.UUID(bytes=namespace), name))
