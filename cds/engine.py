"""Pure evaluation of one hook call: raw resources -> record -> rules -> precedence -> cards.

Pure in fact: what it remembers between calls goes only into the ``EvaluationCaches`` the app
passes in (``cds.caches``)."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from cds import hooks, rules
from cds.caches import EvaluationCaches
from cds.cards import CardTemplate, render
from cds.cards.prepared import CardAnswer
from cds.cards.schema import SuggestionSpec
from cds.catalogue import Catalogue, ServiceDefinition
from cds.errors import InvalidRequest, UnreadableData
from cds.record import Entry, PatientRecord, build_record
from cds.record.matching import CODE_FIELDS
from cds.rules import ClauseInputs, Result, RuleSpec, indicator, trigger, trigger_date
from cds.rules.evaluate import suggestion_priority
from cds.rules.schema import (
    Indicator,
    Owner,
    SuggestionDrop,
    SuggestionPriority,
    Suppression,
)

log = logging.getLogger("cds.engine")
_TYPE_NAME = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
SEVERITY: dict[str, int] = {"critical": 0, "warning": 1, "info": 2}
READ_TYPES = frozenset(CODE_FIELDS)  # the resource types a record is built from


@dataclass(frozen=True)
class IssuedCard:
    """A card this call returned, for the audit trail and for matching feedback."""

    card_uuid: str
    rule_id: str
    service_id: str
    hook_instance: str
    suggestion_uuids: list[str]
    issued_at: datetime


@dataclass
class Evaluation:
    """What one evaluation produced, and what it cost."""

    # The wire answer, ``{"cards": [...]}``: what ``hooks.to_wire`` writes of the cards'
    # models (no null or empty values). Its prepared parts are read-only.
    answer: dict[str, Any]
    fired: list[str] = field(default_factory=list)
    issued: list[IssuedCard] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    models_built: int = 0
    validations_remembered: int = 0
    # (resourceType, element path) -> elements reshaped to their R4 cardinality.
    repaired: dict[tuple[str, str], int] = field(default_factory=dict)
    # Rules in shadow whose trigger held: audited as "would have fired", never shown.
    would_fire: list[str] = field(default_factory=list)

    @property
    def response(self) -> hooks.CdsResponse:
        """The answer as the wire models (validated): for tools and tests, not the call."""
        return hooks.CdsResponse.model_validate(self.answer)

    def wire_json(self) -> tuple[dict[str, Any], bytes]:
        """The answer and its JSON: ``hooks.to_wire_json(self.response)``, without the models
        or the search for empty values (the answer holds none)."""
        return self.answer, orjson.dumps(self.answer)


@dataclass
class _Fired:
    rule: RuleSpec
    result: Result
    indicator: Indicator
    suggestions: list[SuggestionSpec]
    notes: list[str]
    draft: Entry | None
    order: int
    priority: SuggestionPriority | None = None


def _resource_type(template: str) -> str:
    return template.split("?", 1)[0].split("/", 1)[0]


def _draft_orders(
    context: hooks.PatientViewContext | hooks.OrderSignContext,
) -> list[tuple[int, object]]:
    """The draft orders the rules read, each with its position in ``draftOrders.entry``: every
    entry at order-sign (one holding no resource too: it cannot be read), the selected ones at
    order-select."""
    if not isinstance(context, hooks.OrderSignContext):
        return []
    entries = context.draft_orders.get("entry", [])
    drafts = [
        (position, entry.get("resource") if isinstance(entry, dict) else entry)
        for position, entry in enumerate(entries)
    ]
    if isinstance(context, hooks.OrderSelectContext):
        # order-select: the rules look at what the clinician just selected.
        chosen = set(context.selections)
        drafts = [
            (position, draft)
            for position, draft in drafts
            if isinstance(draft, dict)
            and f"{draft.get('resourceType')}/{draft.get('id')}" in chosen
        ]
    return drafts


def _unfetched(service: ServiceDefinition) -> frozenset[str]:
    """Rules.md 3: data a service never fetches is missing, not absent, so clauses over it are
    unknown (a weight-loss check from a service that reads no Observations is not FALSE)."""
    return READ_TYPES - {_resource_type(t) for t in service.prefetch.values()}


def _record(
    caches: EvaluationCaches,
    *,
    service: ServiceDefinition,
    context: hooks.PatientViewContext | hooks.OrderSignContext,
    resources: Mapping[str, Sequence[dict[str, Any]]],
    unavailable: Mapping[str, str],
    now: datetime,
) -> PatientRecord:
    missing = caches.unfetched(service, _unfetched)
    if unavailable:
        missing = missing | {
            _resource_type(service.prefetch[k]) for k in unavailable if k in service.prefetch
        }
    drafts = _draft_orders(context)
    record = build_record(
        caches.catalogue.valuesets,
        now,
        context.patient_id,
        (),
        # Per key: the record reads a prefetched Bundle's entries in one pass (cds.record.build).
        by_key=[resources.get(key, ()) for key in service.prefetch],
        windows=service.policy.condition_windows,
        drafts=[draft for _, draft in drafts],
        unavailable=missing,
        limb_symptoms=service.limb_symptoms,
        validation=caches.validation,
        matching=caches.matching,
        entries=caches.entries,
    )
    if record.unreadable_drafts:
        _refuse_drafts(
            [(drafts[i][0], _type_name(drafts[i][1]), why) for i, why in record.unreadable_drafts]
        )
    if record.unreadable:
        _refuse_unreadable(service, resources, record)
    return record


def _type_name(raw: object) -> str:
    """A resource's type for a message; never the sender's free text."""
    kind = raw.get("resourceType") if isinstance(raw, dict) else None
    return kind if isinstance(kind, str) and _TYPE_NAME.match(kind) else "resource"


def _refuse_drafts(unreadable: list[tuple[int, str, str]]) -> None:
    """400: the draft orders are the point of an order hook, so one that cannot be read is never
    answered with silence. Named by position and type: its id is patient data."""
    raise InvalidRequest(
        "A draft order cannot be read as FHIR R4, even with single values read as lists: "
        + "; ".join(
            f"context.draftOrders.entry[{position}] ({kind}): {why}"
            for position, kind, why in unreadable
        )
        + ".",
        expression=[
            f"context.draftOrders.entry[{position}].resource" for position, _, _ in unreadable
        ],
    )


def _refuse_unreadable(
    service: ServiceDefinition,
    resources: Mapping[str, Sequence[dict[str, Any]]],
    record: PatientRecord,
) -> None:
    """412 (or a fetch from the FHIR server, see cds.invocation) when a resource of a required
    key the rules would read cannot be read: answering without it would drop cards unsaid."""
    reasons: dict[str, str] = {}
    for key in service.required_prefetch:
        for raw in resources.get(key, ()):
            why = record.unreadable.get(id(raw))
            if why is not None:
                reasons[key] = (
                    f"a {_type_name(raw)} in it cannot be read as FHIR R4, even with single "
                    f"values read as lists ({why})"
                )
                break
    if reasons:
        raise UnreadableData(reasons)


def _suggestions(
    rule: RuleSpec, catalogue: Catalogue, inputs: ClauseInputs, result: Result
) -> _Fired:
    template = catalogue.cards[rule.card]
    own = inputs.for_rule(rule, trigger_date(result.evidence))
    keep, notes = _apply_drops(rule.drop_suggestions, template.suggestions, own)
    keep = _age_gated(rule, template, inputs.age, keep, notes)
    draft = next((e for e in result.evidence if e.draft), None)
    shown = indicator(rule, template.indicator, inputs)
    priority = suggestion_priority(rule, inputs) if keep else None
    return _Fired(rule, result, shown, keep, notes, draft, 0, priority)


def _apply_drops(
    drops: Sequence[SuggestionDrop], suggestions: Sequence[SuggestionSpec], own: ClauseInputs
) -> tuple[list[SuggestionSpec], list[str]]:
    """The suggestions no ``dropSuggestions`` entry takes away, and the notes of those that do
    (each with the dates of what made it drop)."""
    keep = list(suggestions)
    notes: list[str] = []
    for drop in drops:
        dropped = rules.result_of(drop.when, own)
        if not dropped.true:
            continue
        keep = [s for s in keep if s.key != drop.suggestion]
        if drop.note:
            when = sorted(
                {e.date.date().isoformat() for e in dropped.evidence if e.date is not None}
            )
            notes.append(drop.note + (f" ({', '.join(when)})" if when else ""))
    return keep, notes


def _age_gated(
    rule: RuleSpec,
    template: CardTemplate,
    age: float | None,
    keep: list[SuggestionSpec],
    notes: list[str],
) -> list[SuggestionSpec]:
    """``keep`` without the suggestions the patient is too young for. Rules.md 3.6: a red
    flag's age gates count as met when the age is unknown, and its card says so (in ``notes``,
    first)."""
    if age is None and rule.red_flag:
        if template.unknown_age_note:
            notes.insert(0, template.unknown_age_note)
        return keep
    return [s for s in keep if s.min_age is None or (age is not None and age >= s.min_age)]


def _unsuppressed(
    suppress: Sequence[Suppression], triggered: list[tuple[int, RuleSpec, Result]]
) -> list[tuple[int, RuleSpec, Result]]:
    """``triggered`` without the rules another triggered rule suppresses (``triggered`` itself
    if none). Decided before any rule's suggestions: a suppressed rule's card is never shown,
    and suppression reads which rules fired, never their suggestions."""
    if not suppress:
        return triggered
    ids = {rule.id for _, rule, _ in triggered} | {rule.key for _, rule, _ in triggered}
    suppressed: set[str] = set()
    for sup in suppress:
        if not ids.isdisjoint(sup.if_):
            suppressed.update(sup.then)
    if not suppressed:
        return triggered
    return [t for t in triggered if t[1].id not in suppressed and t[1].key not in suppressed]


def _one_per_kind(owners: Sequence[Owner], kept: list[_Fired]) -> list[_Fired]:
    """What is shown of the unsuppressed ``kept`` after the service's ``onePerKind`` owners: per
    kind of suggestion only the highest-ranked card keeps it, and an owner that drops empty
    cards drops the cards this leaves empty."""
    # The cards holding each kind, in order, taken in one pass: a loser loses only the owner's
    # kind, so who holds the other kinds does not change as the owners are applied.
    holders: dict[str | None, list[_Fired]] = {}
    for f in kept:
        for kind in {s.kind for s in f.suggestions}:
            holders.setdefault(kind, []).append(f)
    dropped_cards: set[str] = set()
    for owner in owners:
        held = holders.get(owner.kind)
        if held is not None and len(held) > 1:  # one holder keeps its suggestions
            winner, emptied = _losers(owner, held)
            # Only the winner still holds the kind (for a later owner of the same kind).
            holders[owner.kind] = [winner]
            dropped_cards |= emptied
    if not dropped_cards:
        return kept
    return [f for f in kept if f.rule.key not in dropped_cards]


def _losers(owner: Owner, holders: list[_Fired]) -> tuple[_Fired, set[str]]:
    """Leave ``owner.kind``'s suggestions on the highest-ranked of ``holders`` only: that card,
    and the keys of the cards this leaves empty, when ``owner`` drops empty cards."""
    kind = owner.kind
    rank = owner.rank
    last = len(rank)
    ranked = sorted(holders, key=lambda f: rank.get(f.rule.key, rank.get(f.rule.id, last)))
    emptied: set[str] = set()
    for loser in ranked[1:]:
        loser.suggestions = [s for s in loser.suggestions if s.kind != kind]
        if owner.drop_empty_cards and not loser.suggestions:
            emptied.add(loser.rule.key)
    return ranked[0], emptied


def _card(
    caches: EvaluationCaches, service: ServiceDefinition, patient_id: str, f: _Fired
) -> CardAnswer:
    """``f``'s card in wire form: from its rule's prepared card, else through the models."""
    priority = f.priority or service.policy.indicator_priority[f.indicator]
    prepared = caches.card(f.rule)
    if prepared is not None:
        # The arguments spelled out (no dict to unpack): what every shown card of a call takes.
        return prepared.render(
            service_id=service.id,
            rule_key=f.rule.key,
            indicator=f.indicator,
            patient_id=patient_id,
            evidence=f.result.evidence,
            suggestions=f.suggestions,
            notes=f.notes,
            measured=f.result.notes,
            draft=f.draft,
            priority=priority,
            line=caches.lines,
        )
    # What the call decided for the card, as the prepared card takes it above.
    decided: dict[str, Any] = {
        "service_id": service.id,
        "rule_key": f.rule.key,
        "indicator": f.indicator,
        "patient_id": patient_id,
        "evidence": f.result.evidence,
        "suggestions": f.suggestions,
        "notes": f.notes,
        "measured": f.result.notes,
        "draft": f.draft,
        "priority": priority,
    }
    catalogue = caches.catalogue
    rendered = render(
        catalogue.cards[f.rule.card],
        rule_id=f.rule.id,
        rule_name=f.rule.name,
        valuesets=catalogue.valuesets,
        topic_system=catalogue.topic_system,
        frame=caches.frame(f.rule),
        **decided,
    )
    card = rendered.card
    return CardAnswer(hooks.to_wire(card), str(card.uuid), rendered.suggestion_uuids)


def evaluate(  # noqa: PLR0917 - the positional signature the invocation layer calls
    service: ServiceDefinition,
    request: hooks.HookRequest,
    context: hooks.PatientViewContext | hooks.OrderSignContext,
    resources: Mapping[str, Sequence[dict[str, Any]]],
    unavailable: Mapping[str, str],
    now: datetime,
    *,
    caches: EvaluationCaches,
    issued_at: datetime | None = None,
) -> Evaluation:
    """Evaluate ``service`` for one hook call; pure (no I/O), deterministic for a given ``now``.

    ``caches`` are the app's, and name the catalogue they were built for (the one evaluated):
    the only thing evaluation writes.
    ``issued_at`` stamps the issued cards (the store's records follow the real clock even when
    ``now`` is fixed, as in the demo); ``now`` when not given.

    Raises ``InvalidRequest`` (400) for a draft order that cannot be read and
    ``UnreadableData`` (412) for a required key holding a resource the rules would read that
    cannot be read, both even with single values read as lists.
    """
    catalogue = caches.catalogue
    record = _record(
        caches,
        service=service,
        context=context,
        resources=resources,
        unavailable=unavailable,
        now=now,
    )
    if record.deceased:
        return Evaluation(
            {"cards": []},
            [],
            [],
            record.skipped,
            record.models_built,
            record.validations_remembered,
            record.repaired,
        )
    inputs = ClauseInputs(record, catalogue.rules, compiled=caches.trees)
    triggered: list[tuple[int, RuleSpec, Result]] = []
    would_fire: list[str] = []
    today = now.date()
    # The day's modes looked up once: a call asks for each rule of its service.
    decided = caches.modes(today)
    for order, rule in enumerate(service.rules):
        if request.hook not in (rule.hooks or service.hooks):
            continue
        # Governance: a retired rule, or one outside its effective period, is not run.
        mode = decided.get(rule.id)
        if mode is None:
            mode = caches.mode(rule.id, today)
        if mode == "off":
            continue
        result = trigger(rule, inputs)
        if not result.true:
            continue
        if mode == "shadow":
            # Kept out of precedence: a card nobody sees must never suppress or trim one shown.
            would_fire.append(rule.id)
            continue
        triggered.append((order, rule, result))
    kept: list[_Fired] = []
    for order, rule, result in _unsuppressed(service.precedence.suppress, triggered):
        f = _suggestions(rule, catalogue, inputs, result)
        f.order = order
        kept.append(f)
    shown = _one_per_kind(service.precedence.one_per_kind, kept)
    shown.sort(key=lambda f: (SEVERITY[f.indicator], f.order))
    cards: list[dict[str, Any]] = []
    issued: list[IssuedCard] = []
    for f in shown:
        answer = _card(caches, service, context.patient_id, f)
        cards.append(answer.card)
        issued.append(
            IssuedCard(
                card_uuid=answer.uuid,
                rule_id=f.rule.id,
                service_id=service.id,
                hook_instance=request.hook_instance,
                suggestion_uuids=answer.suggestion_uuids,
                issued_at=issued_at or now,
            )
        )
    fired_ids = list(dict.fromkeys(f.rule.id for f in shown))
    log.debug("rules fired: %s", fired_ids)
    inputs.release()
    return Evaluation(
        {"cards": cards},
        fired_ids,
        issued,
        record.skipped,
        record.models_built,
        record.validations_remembered,
        record.repaired,
        list(dict.fromkeys(would_fire)),
    )
