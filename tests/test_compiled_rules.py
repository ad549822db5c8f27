"""The evaluation's fast paths answer exactly what the plain ones do.

The rules' compiled trees (cds/rules/compiled.py) against the tree interpreter, on every golden
case and on charts cut at random from them; the record's sift (RecordBuilder.sift), which drops
resources remembered to match no value set, against offering every resource to add().
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from cds import hooks
from cds.caches import EvaluationCaches
from cds.catalogue import Catalogue, ServiceDefinition
from cds.clock import clock_for
from cds.engine import evaluate
from cds.fhir import ValidationMemo
from cds.invocation import parse_request
from cds.record import PatientRecord, build_record
from cds.record.build import RecordBuilder
from cds.record.matching import MatchMemo
from cds.rules import ClauseInputs, Result, RuleSpec, result_of, trigger
from cds.rules.compiled import CompiledTrees
from cds.rules.evaluate import interpret
from cds.settings import PROJECT_ROOT
from cds.valuesets import ICD10CM

CASES = sorted((PROJECT_ROOT / "tests" / "cases").glob("*/*.json"))
CASE_DATA = {path: json.loads(path.read_text(encoding="utf-8")) for path in CASES}
ICD = ICD10CM


def _body(case: Mapping[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(json.dumps(case["request"]))
    for key in case.get("unavailable", []):
        body.get("prefetch", {}).pop(key, None)
    return body


def _resources(body: Mapping[str, Any], service: ServiceDefinition) -> list[Any]:
    """The resources of the service's prefetch keys, Bundles unwrapped, in key order."""
    found: list[Any] = []
    for key in service.prefetch:
        value = (body.get("prefetch") or {}).get(key)
        if isinstance(value, dict) and value.get("resourceType") == "Bundle":
            found += [e.get("resource") for e in value.get("entry", []) if isinstance(e, dict)]
        elif value is not None:
            found.append(value)
    return found


def _drafts(body: Mapping[str, Any]) -> list[Any]:
    orders = (body.get("context") or {}).get("draftOrders") or {}
    return [e.get("resource") for e in orders.get("entry", []) if isinstance(e, dict)]


def _record(
    catalogue: Catalogue, service: ServiceDefinition, body: Mapping[str, Any], now: datetime
) -> PatientRecord:
    return build_record(
        catalogue.valuesets,
        now,
        str((body.get("context") or {}).get("patientId")),
        _resources(body, service),
        windows=service.policy.condition_windows,
        drafts=_drafts(body),
        limb_symptoms=service.limb_symptoms,
    )


def _every_tree(rules: Mapping[str, RuleSpec]) -> Iterator[tuple[RuleSpec, str, Any]]:
    for rule in rules.values():
        for where, tree in rule.trees():
            yield rule, where, tree


def _same(compiled: Result, interpreted: Result) -> bool:
    return (compiled.truth, compiled.evidence, compiled.notes) == (
        interpreted.truth,
        interpreted.evidence,
        interpreted.notes,
    )


def _compare_every_tree(catalogue: Catalogue, trees: CompiledTrees, record: PatientRecord) -> int:
    """Every tree of every rule, compiled and interpreted, for the rule's own inputs and with
    a trigger date (what `afterTrigger` reads): the results must be equal. How many compared."""
    fast = ClauseInputs(record, catalogue.rules, compiled=trees)
    plain = ClauseInputs(record, catalogue.rules)
    moments = (None, record.now - timedelta(days=400), record.now - timedelta(days=30))
    compared = 0
    for rule, where, tree in _every_tree(catalogue.rules):
        assert trees.of(tree) is not None, f"{rule.key}{where} was not compiled"
        for moment in moments:
            got = result_of(tree, fast.for_rule(rule, moment))
            want = interpret(tree, plain.for_rule(rule, moment))
            assert _same(got, want), f"{rule.key}{where} at {moment}: {got} != {want}"
            compared += 1
        assert _same(trigger(rule, fast), trigger(rule, plain)), rule.key
    return compared


@pytest.fixture(scope="module")
def trees(catalogue: Catalogue) -> CompiledTrees:
    return CompiledTrees(catalogue.rules.values())


def test_every_tree_of_every_rule_is_compiled_and_shared_parts_once(
    catalogue: Catalogue, trees: CompiledTrees
) -> None:
    nodes = [tree for _, _, tree in _every_tree(catalogue.rules)]
    assert all(trees.of(tree) is not None for tree in nodes)
    # What the engine runs: each service's rules are the catalogue's, so none falls back.
    served = [tree for s in catalogue.services.values() for r in s.rules for _, tree in r.trees()]
    assert all(trees.of(tree) is not None for tree in served)
    shapes = {tree.model_dump_json(by_alias=True) for tree in nodes}
    assert len(shapes) < len(nodes)  # the catalogue does repeat trees: they share a closure
    assert trees.of(catalogue.rules[next(iter(catalogue.rules))].when.model_copy()) is None


@pytest.mark.anyio
@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
async def test_a_golden_case_answers_the_same_compiled_or_interpreted(
    path: Path, catalogue: Catalogue, trees: CompiledTrees
) -> None:
    """The whole answer (wire bytes, fired and would-fire rules, counts) with the compiled trees
    and with the interpreter alone; then every tree of every rule on the case's record."""
    case = CASE_DATA[path]
    now = clock_for(case["now"])()
    body = _body(case)
    try:
        service, request, context = parse_request(catalogue, path.parent.name, body)
    except Exception:  # a case that is refused before evaluation (4xx) has nothing to compare
        return
    # The same caches with nothing compiled: every tree goes through the interpreter.
    plain = replace(EvaluationCaches.for_catalogue(catalogue), trees=CompiledTrees([]))
    answers: list[object] = []
    for caches in (EvaluationCaches.for_catalogue(catalogue), plain):
        prefetch = {k: (body.get("prefetch") or {}).get(k) for k in service.prefetch}
        resources = {
            k: [e["resource"] for e in v.get("entry", [])]
            if isinstance(v, dict) and v.get("resourceType") == "Bundle"
            else [v]
            for k, v in prefetch.items()
            if isinstance(v, dict)
        }
        try:
            evaluation = evaluate(service, request, context, resources, {}, now, caches=caches)
        except Exception as exc:  # the same refusal either way
            answers.append(type(exc).__name__)
            continue
        answers.append(
            (
                orjson.dumps(hooks.to_wire(evaluation.response)),
                evaluation.fired,
                evaluation.would_fire,
                evaluation.skipped,
            )
        )
    assert answers[0] == answers[1]
    assert _compare_every_tree(catalogue, trees, _record(catalogue, service, body, now)) > 0


def test_charts_cut_at_random_from_the_golden_cases_answer_the_same_compiled_or_interpreted(
    catalogue: Catalogue, trees: CompiledTrees
) -> None:
    """A property over many records: each golden case's resources, a random part of them kept
    (so clauses come out TRUE, FALSE and UNKNOWN in mixes no case was written for)."""
    rng = random.Random(18)
    compared = 0
    for path in CASES:
        case = CASE_DATA[path]
        service = catalogue.services[path.parent.name]
        body = _body(case)
        now = clock_for(case["now"])()
        for _ in range(3):
            cut = json.loads(json.dumps(body))
            for value in (cut.get("prefetch") or {}).values():
                if isinstance(value, dict) and isinstance(value.get("entry"), list):
                    value["entry"] = [e for e in value["entry"] if rng.random() < 0.6]
            compared += _compare_every_tree(catalogue, trees, _record(catalogue, service, cut, now))
    assert compared > 10_000


# --------------------------------------------------------------------------- the sift


def _without_sift(
    catalogue: Catalogue, service: ServiceDefinition, resources: list[Any], memo: MatchMemo
) -> PatientRecord:
    """The record as before the sift: every resource offered to add(), Patients first."""
    builder = RecordBuilder(
        datetime.fromisoformat("2026-06-01T12:00:00+00:00"),
        "p1",
        service.policy.condition_windows,
        service.limb_symptoms,
        validation=ValidationMemo(),
        matching=memo,
    )
    for raw in resources:
        if isinstance(raw, dict) and raw.get("resourceType") == "Patient":
            builder.add_patient(raw)
    for raw in resources:
        builder.add(raw)
    return builder.finish(())


def _with_sift(
    catalogue: Catalogue, service: ServiceDefinition, resources: list[Any], memo: MatchMemo
) -> PatientRecord:
    return build_record(
        catalogue.valuesets,
        datetime.fromisoformat("2026-06-01T12:00:00+00:00"),
        "p1",
        resources,
        windows=service.policy.condition_windows,
        limb_symptoms=service.limb_symptoms,
        matching=memo,
    )


def _odd_shapes() -> list[Any]:
    """Resources whose main concept the sift must not mistake for a remembered unmatched one."""
    noise = {"system": "https://example.org/noise", "code": "n-1", "display": "Noise"}
    text_only = {"coding": [{"code": "n-1", "display": "Noise"}], "text": "Hand numbness"}
    return [
        {"resourceType": "Patient", "id": "p1", "birthDate": "1970-01-01"},
        {"resourceType": "Condition", "id": "c1", "code": {"coding": [noise]}},
        {"resourceType": "Condition", "id": "c1b", "code": {"coding": [noise]}},  # remembered
        {"resourceType": "Condition", "id": "c2", "code": text_only},  # counted as text only
        {"resourceType": "Condition", "id": "c3", "code": text_only},
        {"resourceType": "Condition", "id": "c4", "code": {"coding": noise}},  # a bare Coding
        {"resourceType": "Condition", "id": "c5", "code": {"coding": [noise, noise]}},
        {"resourceType": "Condition", "id": "c6", "code": {"coding": [{**noise, "code": 7}]}},
        {"resourceType": "Condition", "id": "c7", "code": {"coding": [{**noise, "display": []}]}},
        {"resourceType": "Condition", "id": "c8", "code": "M54.16"},
        {"resourceType": "Condition", "id": "c9", "code": {"coding": [ICD]}},
        {
            "resourceType": "Condition",
            "id": "c10",
            "subject": {"reference": "Patient/someone-else"},
            "code": {"coding": [{"system": ICD, "code": "M54.16"}]},
        },
        {
            "resourceType": "Observation",
            "id": "o1",
            "status": "final",
            "code": {"coding": [noise]},
            "valueCodeableConcept": {"coding": [{"system": ICD, "code": "R20.2"}]},
        },
        {"resourceType": "Observation", "id": "o2", "status": "final", "code": {"coding": [noise]}},
        {
            "resourceType": "Observation",
            "id": "o3",
            "status": "final",
            "code": {"coding": [noise], "text": "Vitamin B12"},  # named by the b12 text match
            "valueQuantity": {"value": 150, "unit": "pg/mL"},
        },
        {"resourceType": "ServiceRequest", "id": "s1", "status": "active", "code": noise},
        {"resourceType": ["Condition"], "id": "x1"},
        {"resourceType": "Encounter", "id": "e1"},
        "not a resource",
    ]


def _summary(record: PatientRecord) -> tuple[Any, ...]:
    return (
        record.entries,
        record.skipped,
        record.models_built,
        record.repaired,
        sorted(record.unreadable.values()),
        record.birth_date,
    )


@pytest.mark.parametrize("path", CASES[::5], ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_the_sift_drops_only_what_the_record_would_not_read(
    path: Path, catalogue: Catalogue
) -> None:
    """Twice over (the second time the memo remembers, and the sift acts): the same entries,
    skipped and invalid counts, validations and reshapings as offering every resource."""
    case = CASE_DATA[path]
    service = catalogue.services[path.parent.name]
    resources = _resources(_body(case), service) + _odd_shapes()
    sifted, offered = MatchMemo(catalogue.valuesets), MatchMemo(catalogue.valuesets)
    for _ in range(2):
        assert _summary(_with_sift(catalogue, service, resources, sifted)) == _summary(
            _without_sift(catalogue, service, resources, offered)
        )
    assert sifted.unmatched  # the sift had something to act on


def test_the_sift_keeps_counting_text_only_and_other_patient_conditions(
    catalogue: Catalogue,
) -> None:
    service = catalogue.services["back-to-foot"]
    memo = MatchMemo(catalogue.valuesets)
    for _ in range(2):
        record = _with_sift(catalogue, service, _odd_shapes(), memo)
        assert record.skipped["Condition"] >= 3  # two text-only concepts, another patient's
        kept = [e.id for e in record.entries if e.resource_type == "Observation"]
        assert kept == ["o1", "o3"]  # by its value, and by its words
