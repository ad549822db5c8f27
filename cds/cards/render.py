"""Render a fired rule's card template into a hooks.Card with stable uuids and FHIR suggestions."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from cds import hooks
from cds.cards.markdown import escape
from cds.cards.schema import CardTemplate, CodeRef, ServiceRequestSpec, SuggestionSpec
from cds.record import Entry
from cds.rules.schema import Indicator
from cds.valuesets import ValueSets

# The last link of every catalogue rule's card: the rule's own page (cds/transparency).
ABOUT_LABEL = "About this rule"
REASON_TYPES = frozenset({"Condition", "Observation", "DiagnosticReport"})
# Units of the dimensionless 0-10 scores (rules.md 3.3): shown as "8/10".
SCORE_UNITS = frozenset({"{score}", "1", "score"})
UNIT_WORDS = {"[lb_av]": "lb"}


def override_system(topic_system: str) -> str:
    """The project code system for override reasons, a sibling of the rule topic system."""
    return topic_system.rsplit("/", 1)[0] + "/override-reason"


def coding(valuesets: ValueSets, ref: CodeRef) -> dict[str, str]:
    """A FHIR Coding for a value-set member, with the display the value set ships."""
    vs = valuesets[ref.valueset]
    system, display = next(
        (system, shown) for (system, code), shown in vs.displays.items() if code == ref.code
    )
    return {"system": system, "code": ref.code, "display": display}


def service_request(
    spec: ServiceRequestSpec,
    *,
    valuesets: ValueSets,
    patient_id: str,
    reasons: Sequence[Entry],
    priority: str | None = None,
) -> dict[str, Any]:
    """A draft/proposal ServiceRequest (rules.md 3.7) for the given evidence.

    Its priority is the card's own, else ``priority`` (the rule's, else the indicator's by the
    catalogue's clinical policy)."""
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "proposal",
    }
    if spec.priority or priority:
        resource["priority"] = spec.priority or priority
    resource["code"] = {"text": spec.text}
    resource["subject"] = {"reference": f"Patient/{patient_id}"}
    if spec.codes:
        resource["code"]["coding"] = [coding(valuesets, ref) for ref in spec.codes]
    if spec.performer_type is not None:
        resource["performerType"] = {"coding": [coding(valuesets, spec.performer_type)]}
    # Evidence repeats a resource that satisfies several clauses; each is listed once.
    shown = {
        e.reference: e.display for e in reasons if e.resource_type in REASON_TYPES and not e.draft
    }
    refs = [{"reference": ref, "display": display} for ref, display in shown.items()]
    if refs:
        resource["reasonReference"] = refs
    if spec.note:
        resource["note"] = [{"text": spec.note}]
    return resource


def stable_uuid(namespace: str | uuid.UUID, *parts: str) -> str:
    """A uuid5 that is the same for the same parts (EHR de-duplication); ``namespace`` is a URL,
    or the uuid5 of one (:attr:`CardFrame.namespace`)."""
    if isinstance(namespace, str):
        namespace = uuid.uuid5(uuid.NAMESPACE_URL, namespace)
    return str(uuid.uuid5(namespace, "|".join(parts)))


def shown_value(entry: Entry) -> str:
    """A measured value as the clinician reads it: "8/10", "7.2 %", "182 pg/mL" (else "")."""
    if entry.value is None:
        return ""
    number = f"{entry.value:g}"
    if entry.unit is None:
        return number
    if entry.unit in SCORE_UNITS:
        return f"{number}/10"
    return f"{number} {escape(UNIT_WORDS.get(entry.unit, entry.unit))}"


def evidence_line(e: Entry) -> str:
    """The markdown bullet of one triggering resource: type, display, date and, for a
    measurement, its value and unit, so the clinician can judge it; EHR text escaped."""
    when = e.date.date().isoformat() if e.date is not None else "undated"
    label = "draft order" if e.draft else e.resource_type
    value = shown_value(e)
    return f"- {label}: {escape(e.display)} ({when})" + (f": {value}" if value else "")


def evidence_lines(
    evidence: Sequence[Entry],
    measured: Sequence[str] = (),
    line: Callable[[Entry], str] = evidence_line,
) -> str:
    """One bullet per triggering resource (``line``, :func:`evidence_line` or a memo of it),
    each resource once.

    ``measured`` (what a fact computed, e.g. the weights and the loss) follows, one bullet each.
    """
    return listed_evidence(first_of_each(evidence).values(), measured, line)


def first_of_each(evidence: Sequence[Entry]) -> dict[str, Entry]:
    """Each resource of ``evidence`` once, by reference, in the order it first appears (the
    entry first seen for it)."""
    first: dict[str, Entry] = {}
    for e in evidence:
        reference = e.reference
        if reference not in first:
            first[reference] = e
    return first


def listed_evidence(
    entries: Iterable[Entry], measured: Sequence[str], line: Callable[[Entry], str]
) -> str:
    """:func:`evidence_lines` of entries already listed once each (:func:`first_of_each`)."""
    lines = [line(e) for e in entries]
    # The service's own words and numbers, never EHR text: shown unescaped, once each.
    lines += [f"- {line}" for line in dict.fromkeys(measured)]
    return "\n".join(lines) or "- (no coded evidence listed)"


@dataclass(frozen=True, slots=True)
class CardFrame:
    """A card's parts fixed by its template and rule: built once per rule at startup
    (``cds.caches``) and shared by every card of that rule."""

    source: hooks.Source
    override_reasons: list[hooks.Coding] | None
    links: list[hooks.Link] | None
    namespace: uuid.UUID  # of the card and suggestion uuids: the topic system's uuid5


def card_frame(
    template: CardTemplate,
    rule_id: str,
    rule_name: str,
    topic_system: str,
    rule_page: str | None = None,
) -> CardFrame:
    """The fixed parts of ``template``'s cards for one rule; ``rule_page`` is the absolute URL
    of the rule's page, linked "About this rule" after the publishers' links."""
    reason_system = override_system(topic_system)
    links = [hooks.Link(label=link.label, url=link.url, type="absolute") for link in template.links]
    if rule_page is not None:
        links.append(hooks.Link(label=ABOUT_LABEL, url=rule_page, type="absolute"))
    return CardFrame(
        source=hooks.Source(
            label=template.source.label,
            url=template.source.url,
            topic=hooks.Coding(system=topic_system, code=rule_id, display=rule_name),
        ),
        override_reasons=[
            hooks.Coding(system=reason_system, code=r.code, display=r.display)
            for r in template.override_reasons
        ]
        or None,
        links=links or None,
        namespace=uuid.uuid5(uuid.NAMESPACE_URL, topic_system),
    )


@dataclass(frozen=True)
class Rendered:
    card: hooks.Card
    suggestion_uuids: list[str]


def render(
    template: CardTemplate,
    *,
    service_id: str,
    rule_key: str,
    rule_id: str,
    rule_name: str,
    indicator: Indicator,
    patient_id: str,
    evidence: Sequence[Entry],
    suggestions: Sequence[SuggestionSpec],
    notes: Sequence[str],
    measured: Sequence[str] = (),
    draft: Entry | None,
    valuesets: ValueSets,
    topic_system: str,
    priority: str | None = None,
    frame: CardFrame | None = None,
) -> Rendered:
    """The hooks.Card for one fired rule; ``frame`` is its :func:`card_frame`, built here when
    not given (for a rule outside the catalogue, which has no page to link to)."""
    refs = sorted({e.reference for e in evidence})
    # Stable for one service, rule, patient and evidence, so the EHR de-duplicates a repeated
    # card; the service is part of it because feedback is matched by (service, uuid), and the
    # same rule's card from another service is another card.
    if frame is None:
        frame = card_frame(template, rule_id, rule_name, topic_system)
    card_uuid = stable_uuid(frame.namespace, service_id, rule_key, patient_id, *refs)
    detail = template.detail.replace("{evidence}", evidence_lines(evidence, measured)).rstrip()
    if notes:
        detail += "\n\n" + "\n".join(f"- {note}" for note in notes)
    built: list[hooks.Suggestion] = []
    for spec in suggestions:
        actions = []
        for action in spec.actions:
            if action.type == "delete":
                if draft is None:
                    continue
                actions.append(
                    hooks.Action(
                        type="delete", description=action.description, resource_id=draft.reference
                    )
                )
            elif action.service_request is not None:
                resource = service_request(
                    action.service_request,
                    valuesets=valuesets,
                    patient_id=patient_id,
                    reasons=evidence,
                    priority=priority,
                )
                actions.append(
                    hooks.Action(type="create", description=action.description, resource=resource)
                )
        if actions:
            built.append(
                hooks.Suggestion(
                    label=spec.label,
                    uuid=stable_uuid(frame.namespace, card_uuid, spec.key),
                    is_recommended=spec.is_recommended,
                    actions=actions,
                )
            )
    card = hooks.Card(
        uuid=card_uuid,
        summary=template.summary,
        detail=detail,
        indicator=indicator,
        source=frame.source,
        suggestions=built or None,
        selection_behavior=template.selection_behavior if built else None,
        override_reasons=frame.override_reasons,
        links=frame.links,
    )
    return Rendered(card, [s.uuid for s in built if s.uuid is not None])
