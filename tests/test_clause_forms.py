"""What a clause's evaluator reads of it on every call (the resource types it reads, its one
comparison, its sets and spans as sets and durations) is made once when the catalogue loads,
and is what the clause's own fields say."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from cds.catalogue import Catalogue
from cds.record.dates import parse_duration
from cds.rules.schema import (
    ConditionClause,
    DoneClause,
    FactClause,
    Node,
    ObservationClause,
    walk,
)

TYPES = {
    "procedure": "Procedure",
    "order": "ServiceRequest",
    "report": "DiagnosticReport",
    "observation": "Observation",
}


def _clauses(catalogue: Catalogue) -> list[Any]:
    return [
        node.branch[1]
        for rule in catalogue.rules.values()
        for _, tree in rule.trees()
        for node, _ in walk(tree)
        if node.branch[0] not in {"all", "any", "not", "rule"}
    ]


def _agrees(clause: Any) -> None:
    if isinstance(clause, ConditionClause):
        assert clause.reads == (("Condition", "Observation") if clause.findings else ("Condition",))
        assert clause.narrowed == bool(
            clause.within or clause.older_than or clause.laterality or clause.body_site
        )
    if isinstance(clause, ObservationClause):
        given_ = {"gte": clause.gte, "gt": clause.gt, "lte": clause.lte, "lt": clause.lt}
        assert [clause.comparison] == [(n, t) for n, t in given_.items() if t is not None]
    if isinstance(clause, DoneClause):
        assert clause.kinds == tuple(clause.in_)
        assert clause.reads == tuple(TYPES[k] for k in clause.in_)
    if isinstance(clause, FactClause):
        assert clause.wanted == frozenset(clause.valuesets)
        assert clause.relative == frozenset(clause.relative_to)
        assert clause.span == (parse_duration(clause.within) if clause.within else None)
        assert clause.prior == (parse_duration(clause.prior_by) if clause.prior_by else None)


def test_every_shipped_clause_reads_what_its_fields_say(catalogue: Catalogue) -> None:
    clauses = _clauses(catalogue)
    kinds = {ConditionClause, ObservationClause, DoneClause, FactClause}
    assert {type(c) for c in clauses} >= kinds
    for clause in clauses:
        _agrees(clause)


@given(
    st.sampled_from(["gte", "gt", "lte", "lt"]),
    st.floats(min_value=0, max_value=500, allow_nan=False),
    st.booleans(),
    st.sampled_from([None, "P30D", "P12M"]),
)
def test_an_observation_compares_by_the_one_threshold_it_gives(
    name: str, threshold: float, findings: bool, within: str | None
) -> None:
    observation = {"valuesets": ["a1c"], "unit": "%", name: threshold, "within": within}
    condition = {"valuesets": ["radic"], "findings": findings, "olderThan": within}
    for node in (
        Node.model_validate({"observation": observation}),
        Node.model_validate({"condition": condition}),
        Node.model_validate({"done": {"valuesets": ["mri"], "in": ["report", "observation"]}}),
    ):
        _agrees(node.branch[1])


def test_a_new_onset_fact_takes_its_spans_as_durations() -> None:
    fact = FactClause.model_validate(
        {
            "name": "new_onset",
            "valuesets": ["incont"],
            "within": "P14D",
            "relativeTo": ["ces"],
            "priorBy": "P1Y",
        }
    )
    _agrees(fact)
    assert fact.prior == parse_duration("P1Y")
