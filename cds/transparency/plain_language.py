"""A rule's logic in plain language, generated from the very trees the engine evaluates.

Each clause is worded by its own entry in the clause registry (``cds.rules.clauses.CLAUSES``,
``describe``), and `all` / `any` / `not` by the three-valued logic of ``cds.rules.evaluate``:
so the words cannot drift from what runs. Nothing here reads patient data.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from cds.cards.schema import CardTemplate
from cds.rules.clauses import CLAUSES
from cds.rules.schema import Node, RuleSpec

ALL_WORDS = "All of these hold:"
ANY_WORDS = "At least one of these holds:"
NOT_WORDS = "This does not hold:"
# How the combinators evaluate unknowns (cds/rules/evaluate.py: Kleene's three-valued logic),
# and what the record never uses (cds/record/build.py); said once on every page.
HOW_TO_READ = (
    "Data the service could not obtain makes a clause unknown, never true or false.",
    "'All of these hold' is unknown when none is false and one is unknown; 'at least one of "
    "these holds' is unknown when none is true and one is unknown; 'this does not hold' over an "
    "unknown stays unknown.",
    "A rule whose result is unknown shows no card.",
    "Refuted and entered-in-error records are never used, nor a resource naming another patient.",
)


@dataclass(frozen=True, slots=True)
class Statement:
    """One line of a rule's logic: a clause's sentence, or a combinator over its children.

    ``valuesets`` and ``rules`` are the value set ids and rule keys the clause itself names,
    for the page to link to."""

    text: str
    valuesets: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    children: tuple[Statement, ...] = ()

    def walk(self) -> Iterator[Statement]:
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass(frozen=True, slots=True)
class Step:
    """A part of the rule beyond its trigger: an indicator raised, a suggestion dropped, a
    priority set, each when its tree is true."""

    text: str
    when: Statement


@dataclass(frozen=True, slots=True)
class RuleLogic:
    """Everything one rule (one variant) decides, in words."""

    key: str
    name: str
    gates: tuple[str, ...]
    fires_when: Statement
    indicator: str
    steps: tuple[Step, ...]


def describe(node: Node) -> Statement:
    """``node`` and everything below it, in words."""
    name, value = node.branch
    if name == "all":
        return Statement(ALL_WORDS, children=tuple(describe(child) for child in value))
    if name == "any":
        return Statement(ANY_WORDS, children=tuple(describe(child) for child in value))
    if name == "not":
        return Statement(NOT_WORDS, children=(describe(value),))
    clause = CLAUSES[name]
    refs = list(clause.refs(value))
    return Statement(
        clause.describe(value),
        valuesets=tuple(dict.fromkeys(ref for _, kind, ref in refs if kind == "value set")),
        rules=tuple(dict.fromkeys(ref for _, kind, ref in refs if kind == "rule")),
    )


def _gates(rule: RuleSpec, card: CardTemplate) -> list[str]:
    gates = []
    if rule.min_age is not None:
        unknown = (
            "an unknown age counts as met for this red flag, and the card says so"
            if rule.red_flag
            else "with the age unknown the rule is unknown and shows no card"
        )
        gates.append(f"The patient is at least {rule.min_age} years old ({unknown}).")
    gates.extend(
        f"The suggestion '{s.label}' is offered only from age {s.min_age}."
        for s in card.suggestions
        if s.min_age is not None
    )
    if rule.differential:
        gates.append("Conditions recorded as differential diagnoses count too.")
    return gates


def _steps(rule: RuleSpec, card: CardTemplate) -> list[Step]:
    labels = {s.key: s.label for s in card.suggestions}
    steps: list[Step] = []
    if rule.indicator is not None:
        steps.extend(
            Step(f"The card is raised to '{step.to}' when:", describe(step.when))
            for step in rule.indicator.raise_
        )
    for drop in rule.drop_suggestions:
        why = f" ({drop.note})" if drop.note else ""
        label = labels.get(drop.suggestion, drop.suggestion)
        steps.append(Step(f"The suggestion '{label}' is left out{why} when:", describe(drop.when)))
    steps.extend(
        Step(f"Its suggestions are ordered with priority '{step.to}' when:", describe(step.when))
        for step in rule.suggestion_priority
    )
    return steps


def rule_logic(rule: RuleSpec, card: CardTemplate) -> RuleLogic:
    """The words for ``rule`` (one variant), whose card template is ``card``."""
    default = rule.indicator.default if rule.indicator is not None else card.indicator
    return RuleLogic(
        key=rule.key,
        name=rule.name,
        gates=tuple(_gates(rule, card)),
        fires_when=describe(rule.when),
        indicator=default,
        steps=tuple(_steps(rule, card)),
    )
