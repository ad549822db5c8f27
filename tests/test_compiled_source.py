"""Each distinct part of a rule's trees is one generated function with its unshared descendants
written inline (cds/rules/compiled.py): however deep or wide a tree is, and whatever mix of
TRUE, FALSE and UNKNOWN its clauses give, it answers what the interpreter answers, with the same
evidence in the same order; `all` still stops at its first FALSE child, and a shared part still
runs once a call."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from cds.record import Entry, PatientRecord
from cds.rules import ClauseInputs, RuleSpec, result_of, trigger
from cds.rules.compiled import CompiledTrees
from cds.rules.evaluate import interpret
from cds.rules.policy import load_policy
from cds.settings import PROJECT_ROOT
from tests.test_compiled_absent_sets import _asked

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
WINDOWS = load_policy(PROJECT_ROOT / "rules").condition_windows
# TRUE (two entries, so joins have evidence to keep in order), FALSE without asking the record
# (no entry in the set), FALSE after asking it, UNKNOWN (the type was not obtained).
HELD = {"medication": {"valuesets": ["nsaid"]}}
OTHER = {"medication": {"valuesets": ["opioid"]}}
NOT_HELD = {"medication": {"valuesets": ["cancer"]}}
ASKED = {"done": {"valuesets": ["nsaid"]}}
MISSING = {"condition": {"valuesets": ["radic"]}}
LEAVES = [HELD, OTHER, NOT_HELD, ASKED, MISSING]


def _record() -> PatientRecord:
    entries = [
        Entry("MedicationStatement", "m1", "medication", frozenset({"nsaid"}), "", NOW),
        Entry("MedicationStatement", "m2", "medication", frozenset({"opioid", "nsaid"}), "", NOW),
        Entry("Condition", "c1", "condition", frozenset({"radic"}), "", NOW),
    ]
    return PatientRecord(NOW, "p1", WINDOWS, entries=entries, unavailable=frozenset({"Condition"}))


def _rule(when: dict[str, Any]) -> RuleSpec:
    return RuleSpec.model_validate({"id": "XX-01", "name": "XX-01", "card": "x", "when": when})


def _tree(rng: random.Random, depth: int) -> dict[str, Any]:
    if depth == 0 or rng.random() < 0.25:
        return rng.choice(LEAVES)
    branch = rng.choice(["all", "any", "not"])
    if branch == "not":
        return {"not": _tree(rng, depth - 1)}
    return {branch: [_tree(rng, depth - 1) for _ in range(rng.randint(1, 4))]}


def _same_compiled_and_interpreted(when: dict[str, Any]) -> None:
    rule = _rule(when)
    compiled = CompiledTrees([rule])
    record = _record()
    got = result_of(rule.when, ClauseInputs(record, {rule.key: rule}, compiled=compiled))
    want = interpret(rule.when, ClauseInputs(record, {rule.key: rule}))
    assert (got.truth, got.evidence, got.notes) == (want.truth, want.evidence, want.notes)


def test_random_trees_answer_as_the_interpreter_with_their_evidence_in_order() -> None:
    rng = random.Random(18)
    for _ in range(400):
        _same_compiled_and_interpreted(_tree(rng, 6))


@pytest.mark.parametrize("branch", ["all", "any", "not"])
def test_a_tree_nested_deeper_than_python_allows_in_one_function_still_compiles(
    branch: str,
) -> None:
    # Python refuses more than 20 nested loops in one function; each inline `all` opens one.
    when: dict[str, Any] = HELD
    for level in range(60):
        sibling = OTHER if level % 2 else MISSING
        when = {"not": when} if branch == "not" else {branch: [when, sibling]}
    _same_compiled_and_interpreted(when)
    _same_compiled_and_interpreted({"all": [HELD, when, OTHER]})


def test_all_stops_at_its_first_false_child_inline(monkeypatch: pytest.MonkeyPatch) -> None:
    done = _asked(monkeypatch, "done")
    rule = _rule({"any": [{"all": [{"not": HELD}, ASKED]}, {"all": [HELD, ASKED]}]})
    inputs = ClauseInputs(_record(), {rule.key: rule}, compiled=CompiledTrees([rule]))
    assert trigger(rule, inputs).truth.value == "false"
    assert len(done) == 1  # the first `all` stopped at "not HELD"


def test_a_part_shared_by_two_rules_runs_once_a_call(monkeypatch: pytest.MonkeyPatch) -> None:
    done = _asked(monkeypatch, "done")
    shared = {"any": [ASKED, OTHER]}
    first = _rule({"all": [HELD, shared]})
    second = RuleSpec.model_validate(
        {"id": "XX-02", "name": "XX-02", "card": "x", "when": {"not": shared}}
    )
    rules = {r.key: r for r in (first, second)}
    inputs = ClauseInputs(_record(), rules, compiled=CompiledTrees(rules.values()))
    assert [trigger(r, inputs).truth.value for r in rules.values()] == ["true", "false"]
    assert len(done) == 1


@pytest.mark.parametrize("missing", [frozenset(), frozenset({"MedicationRequest"})])
def test_a_shared_clause_over_sets_the_record_lacks_is_answered_without_its_part(
    missing: frozenset[str],
) -> None:
    # Used twice, the clause is a remembered part of its own; its parents answer it FALSE (or
    # UNKNOWN when a type it reads is missing) without calling that part, as the interpreter.
    when = {"any": [{"all": [HELD, NOT_HELD]}, {"not": NOT_HELD}, {"all": [NOT_HELD, OTHER]}]}
    rule = _rule(when)
    record = replace(_record(), unavailable=missing)
    inputs = ClauseInputs(record, {rule.key: rule}, compiled=CompiledTrees([rule]))
    got = trigger(rule, inputs)
    want = interpret(rule.when, ClauseInputs(record, {rule.key: rule}))
    assert (got.truth, got.evidence) == (want.truth, want.evidence)
    assert want.truth.value == ("unknown" if missing else "true")
    assert inputs.results == {}


def test_a_shared_clause_over_sets_the_record_holds_is_remembered_once_a_call() -> None:
    rule = _rule({"any": [{"all": [HELD, OTHER]}, {"not": HELD}]})
    inputs = ClauseInputs(_record(), {rule.key: rule}, compiled=CompiledTrees([rule]))
    assert trigger(rule, inputs).truth.value == "true"
    assert len(inputs.results) == 1
