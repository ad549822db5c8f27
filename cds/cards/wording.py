"""Card text speaks to clinicians: notes on how far a code is verified belong to governance data.

Whether a code was checked against its terminology is a question for the rule's authors and the
value set's ``excluded`` notes; on a card it reads as a defect report to the clinician and adds
nothing they can act on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from cds.cards.schema import CardTemplate

_VERIFICATION_STATUS = re.compile(
    r"\b(?:un)?verified\b|\bverification\b"
    r"|\b(?:loinc|snomed(?:[ -]ct)?|icd-10(?:-cm)?|cpt|rxnorm)\s+codes?\s+(?:is|are)\b",
    re.IGNORECASE,
)


def _clinician_text(card: CardTemplate) -> Iterator[tuple[str, str]]:
    """Every (path, text) of the template a clinician reads on the card or in its orders."""
    yield "summary", card.summary
    yield "detail", card.detail
    if card.unknown_age_note is not None:
        yield "unknownAgeNote", card.unknown_age_note
    yield "source.label", card.source.label
    for i, link in enumerate(card.links):
        yield f"links[{i}].label", link.label
    for i, reason in enumerate(card.override_reasons):
        yield f"overrideReasons[{i}].display", reason.display
    for i, suggestion in enumerate(card.suggestions):
        yield f"suggestions[{i}].label", suggestion.label
        for j, action in enumerate(suggestion.actions):
            where = f"suggestions[{i}].actions[{j}]"
            yield f"{where}.description", action.description
            if action.service_request is not None:
                yield f"{where}.serviceRequest.text", action.service_request.text
                if action.service_request.note is not None:
                    yield f"{where}.serviceRequest.note", action.service_request.note


def card_wording_problems(card: CardTemplate, label: str) -> list[str]:
    """One ``file: path: why`` line per clinician-facing text that mentions code verification."""
    problems = []
    for where, text in _clinician_text(card):
        found = _VERIFICATION_STATUS.search(text)
        if found is not None:
            problems.append(
                f"{label}: {where}: mentions a code's verification status ('{found.group(0)}'); "
                "card text speaks to clinicians, keep such notes in the rule's comments or the "
                "value set's excluded notes"
            )
    return problems
