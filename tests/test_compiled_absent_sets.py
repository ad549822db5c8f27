"""A clause over value sets none of the record's entries is in finds nothing: the compiled trees
answer it FALSE, or UNKNOWN when a type it reads could not be obtained, without asking the
record. What each clause type declares it wants (``ClauseType.wanted``) is checked against what
its evaluator answers on every golden case."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cds.catalogue import Catalogue
from cds.record import Entry, PatientRecord
from cds.rules import ClauseInputs, RuleSpec, Tri, result_of, trigger
from cds.rules.clauses import CLAUSES
from cds.rules.compiled import CompiledTrees
from cds.rules.evaluate import held_sets, interpret
from cds.rules.policy import load_policy
from cds.settings import PROJECT_ROOT
from tests.test_compiled_sharing import _clauses, _records

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
WINDOWS = load_policy(PROJECT_ROOT / "rules").condition_windows
MRI = {"done": {"valuesets": ["mri"]}}


def _rule(when: dict[str, Any]) -> RuleSpec:
    return RuleSpec.model_validate({"id": "XX-01", "name": "XX-01", "card": "x", "when": when})


def _asked(monkeypatch: pytest.MonkeyPatch, name: str) -> list[object]:
    """Each clause of type ``name`` the record is asked for from now on."""
    asked: list[object] = []
    clause = CLAUSES[name]

    def counting(value: Any, inputs: ClauseInputs) -> Any:
        asked.append(value)
        return clause.result_of(value, inputs)

    monkeypatch.setitem(CLAUSES, name, replace(clause, result_of=counting))
    return asked


def _order(
    valuesets: frozenset[str] = frozenset(), performer_valuesets: frozenset[str] = frozenset()
) -> Entry:
    return Entry(
        "ServiceRequest", "o1", "order", valuesets, "", NOW, performer_valuesets=performer_valuesets
    )


def test_every_clause_over_sets_no_entry_is_in_is_false_or_unknown_by_what_it_reads(
    catalogue: Catalogue,
) -> None:
    """On the record of every golden case without the entries in the clause's sets, with all of
    its data and with each type it reads missing, the evaluator answers what the compiled trees
    answer without asking it."""
    compared = 0
    for record in _records(catalogue):
        for node in _clauses(catalogue):
            name, value = node.branch
            kind = CLAUSES[name]
            wanted = kind.wanted(value)
            if wanted is None:
                continue
            kept = [
                e
                for e in record.entries
                if e.valuesets.isdisjoint(wanted) and e.performer_valuesets.isdisjoint(wanted)
            ]
            missing = [frozenset(), *(frozenset({t}) for t in kind.reads(value))]
            for unavailable in missing:
                without = replace(record, entries=kept, unavailable=unavailable)
                got = interpret(node, ClauseInputs(without, catalogue.rules))
                want = Tri.UNKNOWN if unavailable else Tri.FALSE
                assert (got.truth, got.evidence) == (want, ()), f"{name}: {value}"
                compared += 1
    assert compared > 1_000


def test_a_clause_over_sets_the_record_holds_none_of_is_not_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    done = _asked(monkeypatch, "done")
    rule = _rule(MRI)
    record = PatientRecord(NOW, "p1", WINDOWS, entries=[_order(valuesets=frozenset({"xray"}))])
    compiled = CompiledTrees([rule])
    assert trigger(rule, ClauseInputs(record, {rule.key: rule}, compiled=compiled)).truth is (
        Tri.FALSE
    )
    lost = replace(record, unavailable=frozenset({"Procedure"}))
    assert trigger(rule, ClauseInputs(lost, {rule.key: rule}, compiled=compiled)).truth is (
        Tri.UNKNOWN
    )
    assert done == []


@pytest.mark.parametrize(
    "sets",
    [{"valuesets": frozenset({"mri"})}, {"performer_valuesets": frozenset({"mri"})}],
    ids=["by its code", "by its performer type"],
)
def test_an_order_in_the_set_by_its_code_or_performer_type_is_asked_for_and_counts(
    monkeypatch: pytest.MonkeyPatch, sets: dict[str, frozenset[str]]
) -> None:
    done = _asked(monkeypatch, "done")
    rule = _rule(MRI)
    order = _order(**sets)
    record = PatientRecord(NOW, "p1", WINDOWS, entries=[order])
    assert held_sets(record) == {"mri"}
    inputs = ClauseInputs(record, {rule.key: rule}, compiled=CompiledTrees([rule]))
    result = result_of(rule.when, inputs)
    assert (result.truth, result.evidence) == (Tri.TRUE, (order,))
    assert len(done) == 1


def test_the_compiled_answer_for_sets_no_entry_is_in_reads_availability_as_the_record_does(
    catalogue: Catalogue,
) -> None:
    """The compiled trees read the record's missing types without asking ``available``: for
    every shipped clause over sets, on a record holding none of them, with nothing missing, with
    each type it reads missing, with all of them and with an unrelated type missing, they
    answer as the interpreter (which asks ``available``)."""
    compared = 0
    for node in _clauses(catalogue):
        name, value = node.branch
        kind = CLAUSES[name]
        if kind.wanted(value) is None:
            continue
        when = node.model_dump(by_alias=True, exclude_none=True)
        rule = RuleSpec.model_validate({"id": "XX-01", "name": "XX-01", "card": "x", "when": when})
        compiled = CompiledTrees([rule])
        assert compiled.of(rule.when) is not None
        reads = kind.reads(value)
        for missing in [(), *((t,) for t in reads), reads, ("Immunization",)]:
            record = PatientRecord(NOW, "p1", WINDOWS, unavailable=frozenset(missing))
            got = trigger(rule, ClauseInputs(record, {rule.key: rule}, compiled=compiled))
            want = interpret(rule.when, ClauseInputs(record, {rule.key: rule}))
            assert (got.truth, got.evidence) == (want.truth, want.evidence), (name, missing)
            assert got.truth is (Tri.FALSE if record.available(*reads) else Tri.UNKNOWN)
            compared += 1
    assert compared > 50


_SETS = st.frozensets(st.sampled_from(["mri", "radic", "lbp", "foot-drop", "b12-result"]))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_SETS, _SETS), max_size=25))
def test_the_sets_held_are_every_set_an_entry_is_in_by_its_code_or_performer_type(
    sets: list[tuple[frozenset[str], frozenset[str]]],
) -> None:
    entries = [_order(code, performer) for code, performer in sets]
    record = PatientRecord(NOW, "p1", WINDOWS, entries=entries)
    held = held_sets(record)
    assert type(held) is frozenset
    assert held == frozenset().union(*[c for c, _ in sets], *[p for _, p in sets])
