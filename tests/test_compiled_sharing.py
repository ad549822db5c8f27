"""The compiled trees remember a shared part's result by the inputs its clauses read, and only by
those: a part that reads neither the trigger date nor whether a differential counts runs once a
call however many trees ask for it; one that reads an input runs again for another value of it.
What each clause type declares it reads is checked against what it does on every golden case."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cds.catalogue import Catalogue
from cds.clock import clock_for
from cds.data.patient_data import read_prefetch
from cds.errors import CdsError
from cds.invocation import parse_request
from cds.record import Entry, PatientRecord, build_record
from cds.rules import ClauseInputs, RuleSpec, result_of, trigger
from cds.rules.clauses import CLAUSES
from cds.rules.compiled import CompiledTrees
from cds.rules.evaluate import interpret
from cds.rules.policy import load_policy
from cds.rules.schema import Node, walk
from cds.settings import PROJECT_ROOT

CASES = sorted((PROJECT_ROOT / "tests" / "cases").glob("*/*.json"))
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
WINDOWS = load_policy(PROJECT_ROOT / "rules").condition_windows
MRI = {"done": {"valuesets": ["mri"]}}
MRI_AFTER = {"done": {"valuesets": ["mri"], "afterTrigger": True}}
SCIATICA = {"condition": {"valuesets": ["radic"]}}


def _rule(rule_id: str, when: dict[str, Any], **more: Any) -> RuleSpec:
    return RuleSpec.model_validate(
        {"id": rule_id, "name": rule_id, "card": "x", "when": when, **more}
    )


def _counted(monkeypatch: pytest.MonkeyPatch, name: str) -> list[tuple[bool, datetime | None]]:
    """Each evaluation of a ``name`` clause from now on, by the inputs it was asked with."""
    calls: list[tuple[bool, datetime | None]] = []
    clause = CLAUSES[name]

    def counting(value: Any, inputs: ClauseInputs) -> Any:
        calls.append((inputs.differential, inputs.trigger))
        return clause.result_of(value, inputs)

    monkeypatch.setitem(CLAUSES, name, replace(clause, result_of=counting))
    return calls


def _record_holding_the_sets() -> PatientRecord:
    """A record whose one entry is in the MRI and sciatica sets but of a kind neither clause
    counts (a medication): they are asked, and answer as over an empty record."""
    entry = Entry("MedicationStatement", "m1", "medication", frozenset({"mri", "radic"}), "", NOW)
    return PatientRecord(NOW, "p1", WINDOWS, entries=[entry])


def test_a_part_that_reads_no_trigger_runs_once_for_the_when_tree_and_every_drop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    done = _counted(monkeypatch, "done")
    rule = _rule(
        "XX-01",
        {"all": [{"not": MRI}, SCIATICA]},
        dropSuggestions=[
            {"suggestion": "mri", "when": MRI},
            {"suggestion": "mri-again", "when": MRI_AFTER},
        ],
    )
    inputs = ClauseInputs(
        _record_holding_the_sets(), {rule.key: rule}, compiled=CompiledTrees([rule])
    )
    trigger(rule, inputs)
    for moment in (NOW - timedelta(days=400), NOW - timedelta(days=30)):
        for drop in rule.drop_suggestions:
            result_of(drop.when, inputs.for_rule(rule, moment))
    # The plain MRI clause once for the call; the one after the trigger once per trigger date.
    assert done == [
        (False, None),
        (False, NOW - timedelta(days=400)),
        (False, NOW - timedelta(days=30)),
    ]


def test_a_part_under_a_tree_that_reads_the_differential_runs_once_for_both_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    done = _counted(monkeypatch, "done")
    condition = _counted(monkeypatch, "condition")
    when = {"all": [{"not": MRI}, SCIATICA]}
    strict = _rule("XX-01", when)
    lenient = _rule("XX-02", when, differentialCounts=True)
    rules = {r.key: r for r in (strict, lenient)}
    inputs = ClauseInputs(_record_holding_the_sets(), rules, compiled=CompiledTrees(rules.values()))
    compiled = [trigger(r, inputs).truth for r in rules.values()]
    # The condition again when a differential counts; the MRI, which reads neither, once.
    assert condition == [(False, None), (True, None)]
    assert done == [(False, None)]
    plain = ClauseInputs(_record_holding_the_sets(), rules)
    assert compiled == [trigger(r, plain).truth for r in rules.values()]


def test_only_the_parts_that_can_be_asked_twice_remember_their_results(
    catalogue: Catalogue,
) -> None:
    trees = CompiledTrees(catalogue.rules.values())
    assert 0 < trees.remembered < len(trees)
    # Each part used once, and reading what its parent reads: each runs once per call anyway.
    alone = _rule("XX-01", {"all": [SCIATICA, {"not": {"condition": {"valuesets": ["cancer"]}}}]})
    assert CompiledTrees([alone]).remembered == 0
    # "not MRI" reads less than its parent, which may run for both differential values.
    assert CompiledTrees([_rule("XX-01", {"all": [SCIATICA, {"not": MRI}]})]).remembered == 1


def _records(catalogue: Catalogue) -> Iterator[PatientRecord]:
    for path in CASES:
        case = json.loads(Path(path).read_text(encoding="utf-8"))
        body = case["request"]
        for key in case.get("unavailable", []):
            body.get("prefetch", {}).pop(key, None)
        try:
            service, request, context = parse_request(catalogue, path.parent.name, body)
            data = read_prefetch(service.prefetch, service.required_prefetch, request, None)
            resources = data.finish().resources
        except CdsError:
            continue
        yield build_record(
            catalogue.valuesets,
            clock_for(case["now"])(),
            context.patient_id,
            [raw for key in service.prefetch for raw in resources.get(key, ())],
            windows=service.policy.condition_windows,
            limb_symptoms=service.limb_symptoms,
        )


def _clauses(catalogue: Catalogue) -> Iterator[Node]:
    for rule in catalogue.rules.values():
        for _, tree in rule.trees():
            for node, _ in walk(tree):
                if node.branch[0] in CLAUSES:
                    yield node


def test_every_clause_reads_no_input_it_does_not_declare(catalogue: Catalogue) -> None:
    """What ``ClauseType.inputs`` leaves out does not change the clause's result, on the
    record of every golden case: the compiled trees' remembered results rely on it."""
    clauses = list(_clauses(catalogue))
    compared = 0
    for record in _records(catalogue):
        base = ClauseInputs(record, catalogue.rules)
        for node in clauses:
            name, value = node.branch
            declared = CLAUSES[name].inputs(value)
            want = interpret(node, base)
            others = []
            if "differential" not in declared:
                others.append(replace(base, differential=True, _memo={}))
            if "trigger" not in declared:
                others += [
                    replace(base, trigger=record.now - timedelta(days=d), _memo={})
                    for d in (30, 400)
                ]
            for inputs in others:
                got = interpret(node, inputs)
                assert (got.truth, got.evidence, got.notes) == (
                    want.truth,
                    want.evidence,
                    want.notes,
                ), f"{name}: {value}"
                compared += 1
    assert compared > 10_000
