"""CDS Hooks 2.0 wire models: request, contexts per hook, cards, actions, discovery, feedback."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    StrictInt,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

# A relative reference such as ``Practitioner/abc`` (the draft ord-1 invariant, with FHIR id chars).
REFERENCE = re.compile(r"^([A-Za-z]+)/([A-Za-z0-9\-.]{1,64})$")
ABSOLUTE_URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$")
SUMMARY_MAX = 139  # the spec's "<140-character summary"


def _absent_if_empty(value: Any) -> Any:
    # G-06: real clients send "", [] or {} for optional members; read them as absent.
    if value in ("", [], {}):
        return None
    return value


def _non_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def _absolute_url(value: str) -> str:
    if not ABSOLUTE_URL.match(value):
        raise ValueError("must be an absolute http(s) URL")
    return value


NonBlank = Annotated[str, AfterValidator(_non_blank)]
AbsoluteUrl = Annotated[str, AfterValidator(_absolute_url)]
# An optional member that clients may send as "", [] or {}: read as absent (G-06).
AbsentIfEmpty = BeforeValidator(_absent_if_empty)


class Inbound(BaseModel):
    """Liberal on the wire: unknown members are ignored; camelCase on the wire."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class Outbound(BaseModel):
    """Strict in our own output: unknown fields are bugs; camelCase on the wire."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


# --------------------------------------------------------------------------- request


class FhirAuthorization(BaseModel):
    """R-07: the OAuth 2.0 bearer token for the EHR's FHIR server; transient, never logged."""

    model_config = ConfigDict(extra="ignore")

    access_token: SecretStr
    token_type: str
    expires_in: StrictInt
    scope: NonBlank
    subject: NonBlank
    patient: Annotated[str | None, AbsentIfEmpty] = None

    @field_validator("token_type")
    @classmethod
    def _bearer(cls, value: str) -> str:
        # RFC 6749 section 5.1: the token type is case-insensitive.
        if value.lower() != "bearer":
            raise ValueError("token_type must be 'Bearer'")
        return value

    @field_validator("access_token")
    @classmethod
    def _token_present(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("access_token must not be blank")
        return value


class HookRequest(Inbound):
    """R-02: the body POSTed to ``/cds-services/{id}``."""

    hook: NonBlank
    hook_instance: NonBlank
    fhir_server: Annotated[AbsoluteUrl | None, AbsentIfEmpty] = None
    fhir_authorization: Annotated[FhirAuthorization | None, AbsentIfEmpty] = None
    context: dict[str, Any]
    prefetch: Annotated[dict[str, Any] | None, AbsentIfEmpty] = None
    extension: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _server_with_token(self) -> HookRequest:
        # R-05 (draft invariant cds-r-1): a token without its server is unusable.
        if self.fhir_authorization is not None and self.fhir_server is None:
            raise ValueError("fhirServer is required when fhirAuthorization is present")
        return self


def _reference_of(types: frozenset[str]) -> AfterValidator:
    def check(value: str) -> str:
        match = REFERENCE.match(value)
        if match is None:
            raise ValueError("must be a relative reference such as 'Practitioner/123'")
        if match.group(1) not in types:
            raise ValueError(f"must reference one of {', '.join(sorted(types))}")
        return value

    return AfterValidator(check)


def _relative_reference(value: str) -> str:
    if REFERENCE.match(value) is None:
        raise ValueError("must be a relative reference such as 'MedicationRequest/123'")
    return value


CLINICIAN = frozenset({"Practitioner", "PractitionerRole"})
VIEWER = CLINICIAN | {"Patient", "RelatedPerson"}


def _bundle(value: Any) -> dict[str, Any]:
    # The hooks library examples and the sandbox omit Bundle.type (PP-01): only the shape counts.
    if not isinstance(value, dict) or value.get("resourceType") != "Bundle":
        raise ValueError("must be a FHIR Bundle")
    entries = value.get("entry", [])
    if not isinstance(entries, list):
        raise ValueError("Bundle.entry must be an array")  # noqa: TRY004 - pydantic expects ValueError
    return value


DraftBundle = Annotated[dict[str, Any], AfterValidator(_bundle)]


class PatientViewContext(Inbound):
    """H-01: patient-view context."""

    user_id: Annotated[str, _reference_of(VIEWER)]
    patient_id: NonBlank
    encounter_id: Annotated[str | None, AbsentIfEmpty] = None


class OrderSignContext(Inbound):
    """H-03: order-sign context (``selections`` is ignored if a client sends it)."""

    user_id: Annotated[str, _reference_of(CLINICIAN)]
    patient_id: NonBlank
    encounter_id: Annotated[str | None, AbsentIfEmpty] = None
    draft_orders: DraftBundle


class OrderSelectContext(OrderSignContext):
    """H-02: order-select context: the selected orders must be in ``draftOrders``.

    The hook's list of order types is not comprehensive, and clients send what their FHIR
    version calls an order (DSTU2 ``MedicationOrder``, STU3 ``ProcedureRequest``, R4
    ``CommunicationRequest`` ...): any ``Type/id`` is accepted; the rules read the orders they
    understand and ignore the rest.
    """

    selections: Annotated[
        list[Annotated[str, AfterValidator(_relative_reference)]], Field(min_length=1)
    ]

    @model_validator(mode="after")
    def _selections_resolve(self) -> OrderSelectContext:
        present = {
            f"{entry['resource'].get('resourceType')}/{entry['resource'].get('id')}"
            for entry in self.draft_orders.get("entry", [])
            if isinstance(entry, dict) and isinstance(entry.get("resource"), dict)
        }
        missing = [s for s in self.selections if s not in present]
        if missing:
            raise ValueError(f"selections not found in draftOrders: {', '.join(missing)}")
        return self


HookContext = PatientViewContext | OrderSignContext | OrderSelectContext
CONTEXT_MODELS: dict[str, type[PatientViewContext | OrderSignContext]] = {
    "patient-view": PatientViewContext,
    "order-sign": OrderSignContext,
    "order-select": OrderSelectContext,
}

# --------------------------------------------------------------------------- response


class Coding(Outbound):
    """The 2.0 Coding datatype (``display`` is required for override reasons)."""

    code: NonBlank
    system: NonBlank
    display: NonBlank | None = None


class Source(Outbound):
    """C-11: where the guidance comes from; ``topic.code`` carries our rule id."""

    label: NonBlank
    url: AbsoluteUrl | None = None
    icon: AbsoluteUrl | None = None
    topic: Coding | None = None


class Link(Outbound):
    """C-21: a link to a guideline (absolute) or a SMART app."""

    label: NonBlank
    url: AbsoluteUrl
    type: Literal["absolute", "smart"]
    app_context: NonBlank | None = None
    autolaunchable: bool | None = None

    @model_validator(mode="after")
    def _app_context_only_for_smart(self) -> Link:
        if self.app_context is not None and self.type != "smart":
            raise ValueError("appContext is only valid for smart links (cds-resp-3)")
        return self


class Action(Outbound):
    """C-16: create/update carry a whole FHIR resource; delete carries ``resourceId``."""

    type: Literal["create", "update", "delete"]
    description: NonBlank
    resource: dict[str, Any] | None = None
    resource_id: NonBlank | None = None

    @model_validator(mode="after")
    def _payload_matches_type(self) -> Action:
        if self.type == "delete":
            if self.resource_id is None or self.resource is not None:
                raise ValueError("a delete action carries resourceId and no resource")
            if not REFERENCE.match(self.resource_id):
                raise ValueError("resourceId must be a relative reference such as 'Type/id'")
        elif self.resource is None or not self.resource.get("resourceType"):
            raise ValueError(f"a {self.type} action carries a FHIR resource")
        elif self.type == "update" and not self.resource.get("id"):
            raise ValueError("an update action carries the whole resource with its id")
        return self


class Suggestion(Outbound):
    """C-12: one choice a clinician can accept with one click."""

    label: NonBlank
    uuid: NonBlank | None = None
    is_recommended: bool | None = None
    actions: Annotated[list[Action], Field(min_length=1)] | None = None


class Card(Outbound):
    """C-06: one piece of guidance."""

    uuid: NonBlank | None = None
    summary: Annotated[str, Field(min_length=1, max_length=SUMMARY_MAX)]
    detail: NonBlank | None = None
    indicator: Literal["info", "warning", "critical"]
    source: Source
    suggestions: Annotated[list[Suggestion], Field(min_length=1)] | None = None
    selection_behavior: Literal["at-most-one", "any"] | None = None
    override_reasons: Annotated[list[Coding], Field(min_length=1)] | None = None
    links: Annotated[list[Link], Field(min_length=1)] | None = None

    @field_validator("summary")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if "\n" in value or not value.strip():
            raise ValueError("summary is one non-blank line")
        return value

    @model_validator(mode="after")
    def _conditional_members(self) -> Card:
        if self.suggestions and self.selection_behavior is None:
            raise ValueError("selectionBehavior is required with suggestions (C-13)")
        if not self.suggestions and self.selection_behavior is not None:
            raise ValueError("selectionBehavior without suggestions")
        recommended = sum(1 for s in self.suggestions or [] if s.is_recommended)
        if self.selection_behavior == "at-most-one" and recommended > 1:
            raise ValueError("at-most-one allows one recommended suggestion (cds-resp-1)")
        for reason in self.override_reasons or []:
            if reason.display is None:
                raise ValueError("override reasons need a display (C-19)")
        return self


class CdsResponse(Outbound):
    """C-01: ``cards`` always, ``systemActions`` only when there are some."""

    cards: list[Card]
    system_actions: Annotated[list[Action], Field(min_length=1)] | None = None


class ServiceDescriptor(Outbound):
    """D-04: one discovery entry."""

    hook: NonBlank
    title: NonBlank
    description: NonBlank
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9._~-]+$")]
    prefetch: dict[str, str] | None = None
    usage_requirements: NonBlank | None = None


class DiscoveryResponse(Outbound):
    """D-02: ``{"services": [...]}``."""

    services: list[ServiceDescriptor]


# --------------------------------------------------------------------------- feedback


class FeedbackCoding(Inbound):
    """A reason Coding as clients send it back; the sandbox omits ``display`` (F-08)."""

    code: NonBlank
    system: NonBlank
    display: str | None = None


class AcceptedSuggestion(Inbound):
    id: NonBlank


class OverrideReason(Inbound):
    reason: Annotated[FeedbackCoding | None, AbsentIfEmpty] = None
    user_comment: Annotated[str | None, AbsentIfEmpty] = None

    @model_validator(mode="after")
    def _reason_or_comment(self) -> OverrideReason:
        if self.reason is None and self.user_comment is None:
            raise ValueError("an overrideReason needs a reason, a userComment or both (cds-fb-3)")
        return self


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("outcomeTimestamp needs a time zone (RFC 3339)")
    return value.astimezone(UTC)


class FeedbackItem(Inbound):
    """F-03: what the clinician did with one card."""

    card: NonBlank
    outcome: Literal["accepted", "overridden"]
    accepted_suggestions: Annotated[list[AcceptedSuggestion] | None, AbsentIfEmpty] = None
    override_reason: Annotated[OverrideReason | None, AbsentIfEmpty] = None
    outcome_timestamp: Annotated[datetime, AfterValidator(_utc)]

    @model_validator(mode="after")
    def _accepted_names_suggestions(self) -> FeedbackItem:
        if self.outcome == "accepted" and not self.accepted_suggestions:
            raise ValueError("accepted feedback needs acceptedSuggestions (cds-fb-2)")
        return self


class FeedbackRequest(Inbound):
    """F-02: the body POSTed to ``/cds-services/{id}/feedback``."""

    feedback: Annotated[list[FeedbackItem], Field(min_length=1)]


# --------------------------------------------------------------------------- serialization

KEEP_EMPTY = frozenset({"cards", "services"})


_DROP: Any = object()


def _pruned(value: Any) -> Any:
    """``value`` as sent, or ``_DROP`` when it is None, "", or a container left empty."""
    if isinstance(value, dict):
        kept = {k: v for k, item in value.items() if (v := _pruned(item)) is not _DROP}
        return kept or _DROP
    if isinstance(value, list):
        items = [v for item in value if (v := _pruned(item)) is not _DROP]
        return items or _DROP
    return _DROP if value is None or value == "" else value


def pruned(value: Any) -> Any:
    """``value`` as :func:`to_wire` writes it below the top: None, "", and containers left
    empty taken out; None when nothing is left."""
    kept = _pruned(value)
    return None if kept is _DROP else kept


# What a value to prune looks like in JSON text. Inside a string these only cause a needless
# walk, never a missed one: every null, "", [] and {} value is written exactly so.
_PRUNE_MARKS = (b"null", b'""', b"[]", b"{}")


def to_wire(model: BaseModel) -> dict[str, Any]:
    """G-02..G-04: camelCase JSON with no null, "", [] or {} except top-level cards/services."""
    return to_wire_json(model)[0]


def to_wire_json(model: BaseModel) -> tuple[dict[str, Any], bytes]:
    """``to_wire(model)`` and its JSON bytes (orjson), encoded once: the text searched for
    values to prune is already the answer, unless something was pruned."""
    raw = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    # Searching the encoded text (in C) is several times cheaper than walking every node, and
    # a card with its FHIR resources usually has nothing to prune.
    encoded = orjson.dumps(raw)
    if not _may_prune(encoded):
        return raw, encoded
    top = _pruned_top(raw)
    return top, orjson.dumps(top)


def _may_prune(encoded: bytes) -> bool:
    null, empty_string, empty_list, empty_object = _PRUNE_MARKS
    # Four searches written out: a generator over the marks cost more than the searches.
    return (
        null in encoded
        or empty_string in encoded
        or empty_list in encoded
        or empty_object in encoded
    )


def _pruned_top(raw: dict[str, Any]) -> dict[str, Any]:
    pruned = _pruned(raw)
    top = {} if pruned is _DROP else dict(pruned)
    for key in KEEP_EMPTY:
        if key in raw and key not in top:
            top[key] = []
    return top
