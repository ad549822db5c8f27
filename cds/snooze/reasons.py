"""Which override reasons snooze each rule's cards: the card templates' ``snoozes: true`` marks.

Feedback names a card by uuid, and its issued card row names the rule, not the variant; so the
variants of one rule (OS-02/no-emg, OS-02/duplicate) must agree on every reason they share, or
the same reason would snooze one card and not another of that rule. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

from cds.cards.schema import CardTemplate
from cds.rules.schema import RuleSpec


def snoozing_reasons(
    rules: Mapping[str, RuleSpec], cards: Mapping[str, CardTemplate]
) -> dict[str, frozenset[str]]:
    """Rule id -> the override reason codes that snooze its cards (rules with none left out)."""
    codes: dict[str, set[str]] = {}
    for rule in rules.values():
        template = cards.get(rule.card)
        marked = {r.code for r in template.override_reasons if r.snoozes} if template else set()
        codes.setdefault(rule.id, set()).update(marked)
    return {rule_id: frozenset(marked) for rule_id, marked in codes.items() if marked}


def reason_problems(
    rules: Mapping[str, RuleSpec], cards: Mapping[str, CardTemplate], cards_dir: str
) -> list[str]:
    """A reason that snoozes on one card of a rule but is offered without the mark on another."""
    snoozing = snoozing_reasons(rules, cards)
    problems = []
    seen: set[tuple[str, str]] = set()
    for rule in rules.values():
        template = cards.get(rule.card)
        if template is None or (rule.id, template.id) in seen:
            continue
        seen.add((rule.id, template.id))
        for i, reason in enumerate(template.override_reasons):
            if not reason.snoozes and reason.code in snoozing.get(rule.id, ()):
                problems.append(
                    f"{cards_dir}/{template.id}.yaml: overrideReasons[{i}].snoozes: "
                    f"'{reason.code}' snoozes on another card of {rule.id}; the cards of one "
                    "rule must agree on which reasons snooze"
                )
    return problems
