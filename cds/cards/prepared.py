"""Card templates prepared once per rule and rendered straight to the answer's JSON dicts.

The model path (:func:`cds.cards.render.render`, then ``hooks.to_wire``) builds and validates
pydantic models on every call, dumps them and searches the JSON for empty values. What a rule's
template fixes (summary, source, links, override reasons, suggestion labels, each
ServiceRequest's codes with their value sets' displays) is made here once, in its wire form,
from the same models, already pruned. A call adds only what it decides: the uuids, the detail,
the indicator, the suggestions it keeps and their ServiceRequests' priority, subject and
reasons, each written only when it holds something, so the answer needs no search for empty
values. A template whose fixed parts the wire models would refuse is not prepared: its cards go
the model path, which refuses them as before. ``tests/test_prepared_cards.py`` compares the two
paths on every template and every golden case.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from cds import hooks
from cds.cards.render import (
    REASON_TYPES,
    CardFrame,
    coding,
    evidence_line,
    first_of_each,
    listed_evidence,
)
from cds.cards.schema import ActionSpec, CardTemplate, ServiceRequestSpec, SuggestionSpec
from cds.record import Entry
from cds.rules.schema import Indicator
from cds.valuesets import ValueSets

_EVIDENCE = "{evidence}"


class Shared(dict[str, Any]):
    """A part of every answer that carries it (one per template): read-only, so no caller can
    change another call's answer through it. orjson writes it as the dict it is."""

    def _refuse(self, *_: object, **__: object) -> NoReturn:
        raise TypeError("a prepared card's fixed part is shared by every answer: read-only")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _refuse

    def __reduce__(self) -> tuple[type[Shared], tuple[dict[str, Any]]]:
        # A copy or a pickle is built whole, never item by item through __setitem__.
        return Shared, (dict(self),)


class SharedList(list[Any]):
    """A read-only list of :class:`Shared` parts."""

    def _refuse(self, *_: object, **__: object) -> NoReturn:
        raise TypeError("a prepared card's fixed part is shared by every answer: read-only")

    __setitem__ = __delitem__ = append = extend = insert = pop = remove = clear = _refuse
    sort = reverse = __iadd__ = __imul__ = _refuse

    def __reduce__(self) -> tuple[type[SharedList], tuple[list[Any]]]:
        return SharedList, (list(self),)


def _shared(value: Any) -> Any:
    """``value`` (JSON: dicts, lists, scalars) with every container made read-only."""
    if isinstance(value, dict):
        return Shared({k: _shared(v) for k, v in value.items()})
    if isinstance(value, list):
        return SharedList([_shared(v) for v in value])
    return value


def _fixed(value: Any) -> Any:
    """The wire form of a fixed part: pruned as ``hooks.to_wire`` prunes, then read-only."""
    return _shared(hooks.pruned(value))


# The RFC 4122 variant's hex digit (binary 10xx) for each hex digit of the hash at that place.
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def uuid5_text(namespace: bytes, name: str) -> str:
    """``str(uuid.uuid5(UUID(bytes=namespace), name))`` without building UUID objects: the
    version and variant written into the hash's hex text (no bytes to patch and re-encode)."""
    text = hashlib.sha1(namespace + name.encode(), usedforsecurity=False).hexdigest()
    return f"{text[:8]}-{text[8:12]}-5{text[13:16]}-{_VARIANT[text[16]]}{text[17:20]}-{text[20:32]}"


@dataclass(frozen=True, slots=True)
class _Request:
    """A ServiceRequest's parts fixed by its spec, in wire form."""

    priority: str | None
    code: Any
    performer_type: Any
    note: Any


@dataclass(frozen=True, slots=True)
class _Action:
    wire: Any  # {"type", "description"}: what every such action carries
    request: _Request | None  # None: delete the draft order


@dataclass(frozen=True, slots=True)
class _Suggestion:
    label: str
    is_recommended: bool | None
    actions: tuple[_Action, ...]


@dataclass(frozen=True, slots=True)
class CardAnswer:
    """One card in wire form, with the uuids the audit keeps."""

    card: dict[str, Any]
    uuid: str
    suggestion_uuids: list[str]


def _non_blank(text: str | None) -> bool:
    return text is not None and bool(text.strip())


def _request(spec: ServiceRequestSpec, valuesets: ValueSets) -> _Request:
    code: dict[str, Any] = {"text": spec.text}
    if spec.codes:
        code["coding"] = [coding(valuesets, ref) for ref in spec.codes]
    performer = (
        {"coding": [coding(valuesets, spec.performer_type)]}
        if spec.performer_type is not None
        else None
    )
    return _Request(
        spec.priority,
        _fixed(code),
        _fixed(performer),
        _fixed([{"text": spec.note}]) if spec.note else None,
    )


def _action(spec: ActionSpec, valuesets: ValueSets) -> _Action | None:
    if not _non_blank(spec.description):
        return None
    wire = _fixed({"type": spec.type, "description": spec.description})
    if spec.type == "delete":
        return _Action(wire, None)
    if spec.service_request is None:
        return None
    return _Action(wire, _request(spec.service_request, valuesets))


def _suggestions(template: CardTemplate, valuesets: ValueSets) -> dict[str, _Suggestion] | None:
    prepared: dict[str, _Suggestion] = {}
    for spec in template.suggestions:
        actions = [_action(action, valuesets) for action in spec.actions]
        if not _non_blank(spec.label) or any(a is None for a in actions):
            return None
        prepared[spec.key] = _Suggestion(
            spec.label, spec.is_recommended, tuple(a for a in actions if a is not None)
        )
    return prepared


def _renderable(template: CardTemplate) -> bool:
    """Whether every card of ``template`` passes the wire models' checks of what it fixes: the
    one-line summary, a detail that is never blank, selectionBehavior with suggestions, and at
    most one recommended suggestion for "at-most-one"."""
    summary = template.summary
    recommended = sum(1 for s in template.suggestions if s.is_recommended)
    return (
        _non_blank(summary)
        and "\n" not in summary
        and 0 < len(summary) <= hooks.SUMMARY_MAX
        and (_EVIDENCE in template.detail or _non_blank(template.detail))
        and (not template.suggestions or template.selection_behavior is not None)
        and not (template.selection_behavior == "at-most-one" and recommended > 1)
    )


@dataclass(frozen=True, slots=True)
class PreparedCard:
    """One rule's cards: the parts its template and frame fix, in wire form."""

    summary: str
    detail: str
    selection_behavior: str | None
    source: Any
    tail: Any  # {"overrideReasons", "links"} as far as the template has them, else None
    namespace: bytes  # of the card and suggestion uuids (CardFrame.namespace)
    suggestions: dict[str, _Suggestion]

    def render(
        self,
        *,
        service_id: str,
        rule_key: str,
        indicator: Indicator,
        patient_id: str,
        evidence: Sequence[Entry],
        suggestions: Sequence[SuggestionSpec],
        notes: Sequence[str],
        measured: Sequence[str],
        draft: Entry | None,
        priority: str | None,
        line: Callable[[Entry], str] = evidence_line,
    ) -> CardAnswer:
        """The card :func:`cds.cards.render.render` makes, as ``hooks.to_wire`` writes it;
        ``suggestions`` are the template's suggestion specs the rule keeps; ``line`` writes an
        evidence entry's bullet (the app's memo of :func:`cds.cards.render.evidence_line`)."""
        # Each entry's reference made once, for both the uuid and the bullets.
        first = first_of_each(evidence)
        refs = sorted(first)
        card_uuid = uuid5_text(self.namespace, "|".join((service_id, rule_key, patient_id, *refs)))
        bullets = listed_evidence(first.values(), measured, line)
        detail = self.detail.replace(_EVIDENCE, bullets).rstrip()
        if notes:
            detail += "\n\n" + "\n".join(f"- {note}" for note in notes)
        card: dict[str, Any] = {
            "uuid": card_uuid,
            "summary": self.summary,
            "detail": detail,
            "indicator": indicator,
            "source": self.source,
        }
        built = self._built(
            card_uuid,
            suggestions,
            patient_id=patient_id,
            evidence=evidence,
            draft=draft,
            priority=priority,
        )
        uuids: list[str] = []
        if built:
            card["suggestions"] = built
            card["selectionBehavior"] = self.selection_behavior
            uuids = [s["uuid"] for s in built]
        if self.tail is not None:
            card.update(self.tail)
        return CardAnswer(card, card_uuid, uuids)

    def _built(
        self,
        card_uuid: str,
        specs: Sequence[SuggestionSpec],
        *,
        patient_id: str,
        evidence: Sequence[Entry],
        draft: Entry | None,
        priority: str | None,
    ) -> list[dict[str, Any]]:
        built: list[dict[str, Any]] = []
        subject: dict[str, Any] | None = None
        reasons: list[dict[str, str]] | None = None
        for spec in specs:
            prepared = self.suggestions[spec.key]
            actions: list[dict[str, Any]] = []
            for action in prepared.actions:
                request = action.request
                if request is None:
                    if draft is not None:
                        actions.append({**action.wire, "resourceId": _draft_reference(draft)})
                    continue
                if subject is None:
                    subject = {"reference": f"Patient/{patient_id}"}
                    reasons = _reasons(evidence)
                resource = _service_request(request, subject, reasons, priority)
                actions.append({**action.wire, "resource": resource})
            if actions:
                suggestion: dict[str, Any] = {
                    "label": prepared.label,
                    "uuid": uuid5_text(self.namespace, f"{card_uuid}|{spec.key}"),
                }
                if prepared.is_recommended is not None:
                    suggestion["isRecommended"] = prepared.is_recommended
                suggestion["actions"] = actions
                built.append(suggestion)
        return built


def _draft_reference(draft: Entry) -> str:
    reference = draft.reference
    if hooks.REFERENCE.match(reference) is None:
        # What the wire model refuses too: a delete action names its resource as 'Type/id'.
        raise ValueError("resourceId must be a relative reference such as 'Type/id'")
    return reference


def _reasons(evidence: Sequence[Entry]) -> list[dict[str, str]] | None:
    """The reasonReference of every ServiceRequest of one card (each resource listed once)."""
    shown = {
        e.reference: e.display for e in evidence if e.resource_type in REASON_TYPES and not e.draft
    }
    refs = [
        {"reference": ref, "display": display} if display else {"reference": ref}
        for ref, display in shown.items()
    ]
    return refs or None


def _service_request(
    request: _Request,
    subject: dict[str, Any],
    reasons: list[dict[str, str]] | None,
    priority: str | None,
) -> dict[str, Any]:
    """What :func:`cds.cards.render.service_request` builds, from the prepared parts."""
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "proposal",
    }
    chosen = request.priority or priority
    if chosen:
        resource["priority"] = chosen
    resource["code"] = request.code
    resource["subject"] = subject
    if request.performer_type is not None:
        resource["performerType"] = request.performer_type
    if reasons is not None:
        resource["reasonReference"] = reasons
    if request.note is not None:
        resource["note"] = request.note
    return resource


def prepare_card(
    template: CardTemplate, frame: CardFrame, valuesets: ValueSets
) -> PreparedCard | None:
    """``template``'s cards for the rule of ``frame``, prepared; None when the wire models
    would refuse what the template fixes (its cards then go the model path, which says why)."""
    suggestions = _suggestions(template, valuesets)
    if suggestions is None or not _renderable(template):
        return None
    tail: dict[str, Any] = {}
    if frame.override_reasons:
        tail["overrideReasons"] = [hooks.to_wire(c) for c in frame.override_reasons]
    if frame.links:
        tail["links"] = [hooks.to_wire(link) for link in frame.links]
    return PreparedCard(
        template.summary,
        template.detail,
        template.selection_behavior,
        _fixed(hooks.to_wire(frame.source)),
        _fixed(tail),
        frame.namespace.bytes,
        suggestions,
    )
