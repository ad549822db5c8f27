"""The FHIR resource types a rule reads, derived from its clauses through the clause registry.

Each clause type in ``cds.rules.clauses.CLAUSES`` names the record's resource types it reads;
a rule reads the union over its trees and over the rules its `rule:` clauses name. A governance
record's `reads` is checked against this, so the reviewer's list cannot drift from the rule.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from cds.rules.clauses import CLAUSES
from cds.rules.schema import DraftClause, Node, RuleSpec, walk


def _trees(rule: RuleSpec) -> Iterator[Node]:
    yield rule.when
    if rule.indicator is not None:
        yield from (step.when for step in rule.indicator.raise_)
    yield from (drop.when for drop in rule.drop_suggestions)
    yield from (step.when for step in rule.suggestion_priority)


def named_rules(rule_id: str, rules: Mapping[str, RuleSpec]) -> frozenset[str]:
    """The rule keys the `rule:` clauses of ``rule_id``'s variants name, directly."""
    return frozenset(
        clause
        for rule in rules.values()
        if rule.id == rule_id
        for tree in _trees(rule)
        for node, _ in walk(tree)
        for name, clause in [node.branch]
        if name == "rule" and isinstance(clause, str)
    )


def rule_reads(rule_id: str, rules: Mapping[str, RuleSpec]) -> frozenset[str]:
    """Every resource type the rule's variants read, through the rules their `rule:` clauses
    name too. The Patient always: every rule passes the patient gates (deceased, age). A draft
    order comes with the call rather than the record, but it is data the rule reads all the
    same, so its resource type counts."""
    read = {"Patient"}
    pending = [key for key, rule in rules.items() if rule.id == rule_id]
    seen = set(pending)
    while pending:
        for tree in _trees(rules[pending.pop()]):
            for node, _ in walk(tree):
                name, clause = node.branch
                if name not in CLAUSES:
                    continue  # all / any / not: their children are walked
                read.update(CLAUSES[name].reads(clause))
                if isinstance(clause, DraftClause):
                    read.add(clause.resource_type)
                if name == "rule" and clause not in seen and clause in rules:
                    seen.add(clause)
                    pending.append(clause)
    return frozenset(read)
