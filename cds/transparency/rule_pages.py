"""What a rule page and the rule index hold, built from the loaded catalogue (never from patient
data), and their JSON form (docs/transparency.md, "The JSON shape")."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass
from datetime import date
from typing import Any

from cds.catalogue import Catalogue
from cds.governance import Citation, Mode
from cds.transparency.addresses import rule_page_url, value_set_url
from cds.transparency.plain_language import HOW_TO_READ, RuleLogic, rule_logic
from cds.transparency.source_attributes import (
    SourceAttribute,
    SourceAttributesFile,
    source_attributes,
)
from cds.valuesets import ValueSet


@dataclass(frozen=True, slots=True)
class CodeLine:
    """One code of a value set as the page lists it."""

    system: str
    code: str
    display: str
    match: str  # "exact", or "prefix": the code and every ICD-10-CM code below it
    local: bool = False  # added by the site (CDS_SITE_CONFIG), not a shipped, verified code
    note: str = ""  # a local code's provenance


@dataclass(frozen=True, slots=True)
class ValueSetView:
    id: str
    title: str
    fhir: str  # the value set as a FHIR ValueSet
    codes: tuple[CodeLine, ...]
    text_match: tuple[str, ...] = ()  # words that match free text, on these resource types
    text_match_on: tuple[str, ...] = ()
    carved_out: tuple[CodeLine, ...] = ()  # below a prefix, yet not members


@dataclass(frozen=True, slots=True)
class ParamView:
    """A parameter the rule declares as tunable: the value it runs with, and what the site may
    set it to."""

    name: str
    value: str
    default: str
    bounds: str
    description: str
    tuned: bool = False  # set by the site (CDS_SITE_CONFIG), not the rule's default


@dataclass(frozen=True, slots=True)
class CardView:
    summary: str
    indicator: str
    suggestions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Variant:
    logic: RuleLogic
    card: CardView


@dataclass(frozen=True, slots=True)
class ServiceRef:
    id: str
    title: str
    hooks: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RulePage:
    """Everything ``GET /rules/{id}`` shows of one rule (its variants share the page)."""

    id: str
    name: str
    url: str
    services: tuple[ServiceRef, ...]
    status: str
    mode: Mode  # how it runs today: on, shadow (evaluated, no card) or off
    version: str
    owner: str
    last_reviewed: date
    next_review: date
    review_overdue: bool
    effective_from: date | None
    effective_to: date | None
    intended_use: str
    cautions: tuple[str, ...]
    evidence: tuple[Citation, ...]
    reads: tuple[str, ...]
    variants: tuple[Variant, ...]
    value_sets: tuple[ValueSetView, ...]
    source_attributes: tuple[SourceAttribute, ...]
    params: tuple[ParamView, ...] = ()
    site_changes: tuple[str, ...] = ()  # what the site's settings change, one sentence each
    how_to_read: tuple[str, ...] = HOW_TO_READ


@dataclass(frozen=True, slots=True)
class RuleSummary:
    id: str
    name: str
    status: str
    version: str
    url: str


@dataclass(frozen=True, slots=True)
class ServiceSummary:
    id: str
    title: str
    hooks: tuple[str, ...]
    description: str
    rules: tuple[RuleSummary, ...]


@dataclass(frozen=True, slots=True)
class RuleIndex:
    """Everything ``GET /rules`` shows: each service and its rules."""

    services: tuple[ServiceSummary, ...]


def local_lines(vs: ValueSet) -> tuple[CodeLine, ...]:
    """The site's own codes of ``vs`` (CDS_SITE_CONFIG, added when the catalogue loads),
    marked local with their provenance note."""
    return tuple(
        CodeLine(e.system, e.code, e.display, "exact", local=True, note=e.note)
        for e in vs.local.values()
    )


def value_set_view(vs: ValueSet, public_base_url: str) -> ValueSetView:
    doc = vs.file
    shipped = tuple(
        CodeLine(e.system, e.code, e.display, e.match) for e in (doc.codes if doc else ())
    )
    return ValueSetView(
        id=vs.id,
        title=vs.title,
        fhir=value_set_url(public_base_url, vs.id),
        codes=shipped + local_lines(vs),
        text_match=tuple(doc.text_match) if doc else (),
        text_match_on=tuple(doc.text_match_on) if doc else (),
        carved_out=tuple(
            CodeLine(c.system, c.code, c.reason, "exact") for c in (doc.carve_out if doc else ())
        ),
    )


def _variant(catalogue: Catalogue, key: str) -> Variant:
    rule = catalogue.rules[key]
    card = catalogue.cards[rule.card]
    return Variant(
        rule_logic(rule, card),
        CardView(card.summary, card.indicator, tuple(s.label for s in card.suggestions)),
    )


def rule_ids(catalogue: Catalogue) -> list[str]:
    """Every rule id with a page, in catalogue order."""
    return list(dict.fromkeys(rule.id for rule in catalogue.rules.values()))


def _params(catalogue: Catalogue, rule_id: str) -> tuple[ParamView, ...]:
    setting = catalogue.site.rule(rule_id)
    tuned = setting.params if setting is not None else {}
    declared = {
        name: spec
        for rule in catalogue.rules.values()
        if rule.id == rule_id
        for name, spec in rule.params.items()
    }
    return tuple(
        ParamView(
            name=name,
            value=str(tuned.get(name, spec.default)),
            default=str(spec.default),
            bounds=spec.bounds(),
            description=spec.description,
            tuned=name in tuned,
        )
        for name, spec in sorted(declared.items())
    )


def _named_value_sets(variants: tuple[Variant, ...]) -> list[str]:
    """Every value set the variants' trees name, in the order the logic names them."""
    return list(
        dict.fromkeys(
            vs_id
            for variant in variants
            for tree in (variant.logic.fires_when, *(step.when for step in variant.logic.steps))
            for statement in tree.walk()
            for vs_id in statement.valuesets
        )
    )


def _services(catalogue: Catalogue, rule_id: str) -> tuple[ServiceRef, ...]:
    return tuple(
        ServiceRef(s.id, s.title, s.hooks)
        for s in catalogue.services.values()
        if any(rule.id == rule_id for rule in s.rules)
    )


def rule_page(
    catalogue: Catalogue,
    rule_id: str,
    *,
    stated: SourceAttributesFile,
    public_base_url: str,
    today: date,
) -> RulePage | None:
    """The page of ``rule_id``; None when the catalogue has no such rule."""
    record = catalogue.governance.records.get(rule_id)
    keys = [key for key, rule in catalogue.rules.items() if rule.id == rule_id]
    if record is None or not keys:
        return None
    variants = tuple(_variant(catalogue, key) for key in keys)
    effective = record.effective
    return RulePage(
        id=rule_id,
        name="; ".join(dict.fromkeys(v.logic.name for v in variants)),
        url=rule_page_url(public_base_url, rule_id),
        services=_services(catalogue, rule_id),
        status=record.status,
        mode=catalogue.governance.mode(rule_id, today),
        version=record.version,
        owner=record.owner,
        last_reviewed=record.last_reviewed,
        next_review=record.next_review,
        review_overdue=record.review_overdue(today),
        effective_from=effective.start if effective is not None else None,
        effective_to=effective.end if effective is not None else None,
        intended_use=record.intended_use,
        cautions=tuple(record.cautions),
        evidence=tuple(record.evidence),
        reads=tuple(record.reads),
        variants=variants,
        value_sets=tuple(
            value_set_view(catalogue.valuesets[vs_id], public_base_url)
            for vs_id in _named_value_sets(variants)
        ),
        source_attributes=source_attributes(rule_id, record, catalogue, stated),
        params=_params(catalogue, rule_id),
        site_changes=catalogue.site.changes_for(rule_id),
    )


def rule_index(catalogue: Catalogue, public_base_url: str) -> RuleIndex:
    records = catalogue.governance.records
    services = []
    for service in catalogue.services.values():
        ids = dict.fromkeys(rule.id for rule in service.rules if rule.id in records)
        rules = tuple(
            RuleSummary(
                rule_id,
                "; ".join(
                    dict.fromkeys(r.name for r in catalogue.rules.values() if r.id == rule_id)
                ),
                records[rule_id].status,
                records[rule_id].version,
                rule_page_url(public_base_url, rule_id),
            )
            for rule_id in ids
        )
        services.append(
            ServiceSummary(service.id, service.title, service.hooks, service.description, rules)
        )
    return RuleIndex(tuple(services))


# ------------------------------------------------------------------ JSON


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _empty(value: Any) -> bool:
    return value is None or value is False or (isinstance(value, str | list | dict) and not value)


def to_json(value: Any) -> Any:
    """``value`` as JSON: camelCase keys, dates as ISO 8601, and no null, empty or false member
    (a flag such as ``reviewOverdue`` or ``local`` appears only when true)."""
    if is_dataclass(value) and not isinstance(value, type):
        members = ((_camel(f.name), to_json(getattr(value, f.name))) for f in fields(value))
        return {k: v for k, v in members if not _empty(v)}
    if hasattr(value, "model_dump"):
        return to_json(value.model_dump(by_alias=True, exclude_none=True))
    if isinstance(value, Mapping):
        return {k: v for k, v in ((k, to_json(v)) for k, v in value.items()) if not _empty(v)}
    if isinstance(value, tuple | list):
        return [to_json(v) for v in value]
    if isinstance(value, date):
        return value.isoformat()
    return value
