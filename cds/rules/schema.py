"""The YAML shape of a service file: discovery entry, rules with `when` trees, precedence."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from cds.record.dates import Duration, parse_duration
from cds.rules.params import PARAM_NAME, PARAM_REF, ParamSpec

_REFERENCE = datetime(2001, 1, 1, tzinfo=UTC)  # any instant: windows are compared by length

Indicator = Literal["info", "warning", "critical"]
HookName = Literal["patient-view", "order-sign", "order-select"]
BodySite = Literal["lower-limb", "foot", "lumbar"]
RULE_ID = r"^[A-Z][A-Z0-9]*-[0-9]{2}[A-Z]?$"
# Where a `done` clause looks, as resource types.
KIND_TYPES = {
    "procedure": "Procedure",
    "order": "ServiceRequest",
    "report": "DiagnosticReport",
    "observation": "Observation",
}


def _duration(text: str) -> str:
    parse_duration(text)
    return text


Dur = Annotated[str, AfterValidator(_duration)]


def _or_param(schema: dict[str, Any]) -> None:
    # Only the editor's JSON Schema sees "$name": the loader puts the value in its place first.
    own = dict(schema)
    schema.clear()
    schema["anyOf"] = [own, {"type": "string", "pattern": PARAM_REF}]


# A number a rule may tune through a parameter (cds/rules/params.py); durations are strings.
_TUNABLE = Field(json_schema_extra=_or_param)
Threshold = Annotated[float | None, _TUNABLE]


class _ValueSetIds:
    """Marks a field whose strings are value set ids, so validation finds every reference."""


VALUE_SET_IDS = _ValueSetIds()
SetIds = Annotated[list[str], Field(min_length=1), VALUE_SET_IDS]
OptionalSetIds = Annotated[list[str], VALUE_SET_IDS]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class _SetClause(_Strict):
    """A clause over value sets; ``wanted`` is the set form the record's queries take."""

    valuesets: SetIds

    @cached_property
    def wanted(self) -> frozenset[str]:
        # Computed once per loaded catalogue, not once per clause per evaluation.
        return frozenset(self.valuesets)

    def model_post_init(self, context: Any, /) -> None:
        # Filled at load, so a call never writes into a catalogue other calls share.
        self.wanted  # noqa: B018


class ConditionClause(_SetClause):
    """Counting Conditions (rules.md 3.2) in the value sets, optionally windowed and sided."""

    within: Dur | None = None
    older_than: Dur | None = Field(default=None, alias="olderThan")
    laterality: Literal["left", "right", "bilateral"] | None = None
    body_site: BodySite | None = Field(default=None, alias="bodySite")
    history: bool = False
    findings: bool = False

    @cached_property
    def reads(self) -> tuple[str, ...]:
        """The record's resource types the clause reads (its findings are Observations)."""
        return ("Condition", "Observation") if self.findings else ("Condition",)

    @cached_property
    def narrowed(self) -> bool:
        """Whether the counted conditions are filtered further (by date, side or site)."""
        return bool(self.within or self.older_than or self.laterality or self.body_site)

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        self.reads  # noqa: B018
        self.narrowed  # noqa: B018


class ObservationClause(_SetClause):
    """A measured value (unit-converted, rules.md 3.3) compared with a threshold."""

    unit: str
    within: Dur | None = None
    latest: bool = True
    gte: Threshold = None
    gt: Threshold = None
    lte: Threshold = None
    lt: Threshold = None

    @model_validator(mode="after")
    def _one_comparison(self) -> ObservationClause:
        if sum(v is not None for v in (self.gte, self.gt, self.lte, self.lt)) != 1:
            raise ValueError("give exactly one of gte, gt, lte, lt")
        return self

    @cached_property
    def comparison(self) -> tuple[str, float]:
        """The one comparison given: its name (gte, gt, lte or lt) and threshold."""
        given = (("gte", self.gte), ("gt", self.gt), ("lte", self.lte), ("lt", self.lt))
        return next((name, threshold) for name, threshold in given if threshold is not None)

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        self.comparison  # noqa: B018


class DoneClause(_SetClause):
    """A completed or planned test or referral (rules.md 3.4)."""

    within: Dur | None = None
    in_: list[Literal["procedure", "order", "report", "observation"]] = Field(
        default=["procedure", "order", "report"], alias="in", min_length=1
    )
    older_than: Dur | None = Field(default=None, alias="olderThan")
    performer: bool = True
    drafts: bool = True
    after_trigger: bool = Field(default=False, alias="afterTrigger")

    @cached_property
    def kinds(self) -> tuple[Literal["procedure", "order", "report", "observation"], ...]:
        return tuple(self.in_)

    @cached_property
    def reads(self) -> tuple[str, ...]:
        """The record's resource types the clause reads."""
        return tuple(KIND_TYPES[k] for k in self.in_)

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        self.kinds  # noqa: B018
        self.reads  # noqa: B018


class MedicationClause(_SetClause):
    """An active MedicationRequest or MedicationStatement (by code or ingredient text)."""


class DraftClause(_SetClause):
    """A draft order of this order-sign/order-select call."""

    resource_type: Literal["ServiceRequest", "MedicationRequest"] = Field(
        default="ServiceRequest", alias="resourceType"
    )
    reason: Annotated[list[str] | None, VALUE_SET_IDS] = None


class PatientClause(_Strict):
    min_age: Annotated[int, _TUNABLE] = Field(alias="minAge", ge=0)


FactName = Literal["bilateral", "measured_weight_loss", "new_onset"]


class WeightLossWindows(_Strict):
    """How measured weight loss is read (rules.md 3.3), all spans counted back from the latest
    valid weight: current = median of the weights in ``current``, baseline = median of those
    ``baselineFrom`` to ``baselineTo`` before it; the latest must be at most ``latestWithin``
    old."""

    latest_within: Dur = Field(alias="latestWithin")
    current: Dur
    baseline_from: Dur = Field(alias="baselineFrom")
    baseline_to: Dur = Field(alias="baselineTo")

    @model_validator(mode="after")
    def _in_order(self) -> WeightLossWindows:
        # Compared as moments before one instant: a longer span reaches further back.
        def back(text: str) -> datetime:
            return parse_duration(text).before(_REFERENCE)

        if back(self.latest_within) >= _REFERENCE:
            raise ValueError("latestWithin must be longer than zero")
        if back(self.current) < back(self.baseline_from):
            raise ValueError("baselineFrom must reach back at least as far as current (no overlap)")
        if back(self.baseline_from) <= back(self.baseline_to):
            raise ValueError("baselineTo must reach further back than baselineFrom")
        return self


class FactClause(_Strict):
    """A named Python fact for what clauses cannot express."""

    name: FactName
    valuesets: OptionalSetIds = Field(default_factory=list)
    within: Dur | None = None
    percent: Annotated[float | None, _TUNABLE] = Field(default=None, gt=0, lt=100)
    windows: WeightLossWindows | None = None
    # new_onset: the problem is not new when on record this long before the `relativeTo` one.
    relative_to: OptionalSetIds = Field(default_factory=list, alias="relativeTo")
    prior_by: Dur | None = Field(default=None, alias="priorBy")

    @model_validator(mode="after")
    def _weight_loss_parameters(self) -> FactClause:
        # The clinical constants live in the rule file, where a reviewer sees them.
        weight_loss = self.name == "measured_weight_loss"
        if weight_loss and (self.percent is None or self.windows is None):
            raise ValueError("measured_weight_loss needs percent and windows")
        if weight_loss and self.within is not None:
            raise ValueError("measured_weight_loss is windowed by windows, not within")
        if not weight_loss and self.windows is not None:
            raise ValueError(f"{self.name} takes no windows")
        if (self.name == "new_onset") != bool(self.relative_to and self.prior_by):
            raise ValueError("relativeTo and priorBy go with new_onset, and only with it")
        return self

    # The set and duration forms the facts take, made once per loaded catalogue.
    @cached_property
    def wanted(self) -> frozenset[str]:
        return frozenset(self.valuesets)

    @cached_property
    def relative(self) -> frozenset[str]:
        return frozenset(self.relative_to)

    @cached_property
    def span(self) -> Duration | None:
        return parse_duration(self.within) if self.within else None

    @cached_property
    def prior(self) -> Duration | None:
        return parse_duration(self.prior_by) if self.prior_by else None

    def model_post_init(self, context: Any, /) -> None:
        # Filled at load, so a call never writes into a catalogue other calls share.
        self.wanted  # noqa: B018
        self.relative  # noqa: B018
        self.span  # noqa: B018
        self.prior  # noqa: B018


class Node(_Strict):
    """One node of a `when` tree: all | any | not | a typed clause | another rule's trigger."""

    all_: list[Node] | None = Field(default=None, alias="all", min_length=1)
    any_: list[Node] | None = Field(default=None, alias="any", min_length=1)
    not_: Node | None = Field(default=None, alias="not")
    condition: ConditionClause | None = None
    observation: ObservationClause | None = None
    done: DoneClause | None = None
    medication: MedicationClause | None = None
    draft: DraftClause | None = None
    patient: PatientClause | None = None
    fact: FactClause | None = None
    rule: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Node:
        given = [name.rstrip("_") for name, value in self._declared() if value is not None]
        if len(given) != 1:
            shown = ", ".join(given) or "nothing"
            raise ValueError(f"a node holds exactly one of all/any/not/<clause>, got {shown}")
        return self

    @cached_property
    def branch(self) -> tuple[str, Any]:
        """The branch this node holds: ("all", [...]), ("condition", ConditionClause), ...

        Cached on the instance: evaluation dispatches on it for every node of every call (a
        pydantic private attribute would cost a __getattr__ call, ~50 times a plain read)."""
        return next(
            (name.rstrip("_"), value) for name, value in self._declared() if value is not None
        )

    def _declared(self) -> Iterator[tuple[str, Any]]:
        # The fields alone: iterating the model would also yield what cached_property stores.
        return ((name, getattr(self, name)) for name in type(self).model_fields)

    def model_post_init(self, context: Any, /) -> None:
        # Filled at load, so a call never writes into a catalogue other calls share.
        self.branch  # noqa: B018


def walk(node: Node, path: str = "") -> Iterator[tuple[Node, str]]:
    """``node`` and every node below it, each with its path (``path.all[0].not``)."""
    yield node, path
    for name, children in (("all", node.all_), ("any", node.any_)):
        for i, child in enumerate(children or ()):
            yield from walk(child, f"{path}.{name}[{i}]")
    if node.not_ is not None:
        yield from walk(node.not_, f"{path}.not")


class IndicatorRaise(_Strict):
    to: Indicator
    when: Node


class IndicatorSpec(_Strict):
    """The card's indicator: a default, raised by the first `raise` entry that is TRUE."""

    default: Indicator
    raise_: list[IndicatorRaise] = Field(default_factory=list, alias="raise")


SuggestionPriority = Literal["routine", "urgent", "asap", "stat"]


class PriorityStep(_Strict):
    """A suggestion priority other than the indicator's, when `when` is TRUE."""

    to: SuggestionPriority
    when: Node


class SuggestionDrop(_Strict):
    """A suggestion-level exclusion: drop the suggestion (keep the card) when `when` is TRUE."""

    suggestion: str
    when: Node
    note: str | None = None


class RuleSpec(_Strict):
    id: str = Field(pattern=RULE_ID)
    variant: str | None = Field(default=None, pattern=r"^[a-z0-9-]+$")
    name: str = Field(min_length=1)
    card: str
    hooks: list[HookName] | None = None
    min_age: Annotated[int | None, _TUNABLE] = Field(default=None, alias="minAge", ge=0)
    # Red flags are never silenced by a missing age (rules.md 3.6): with no readable birthDate
    # their age gates (the rule's and its suggestions') count as met and the card says so.
    red_flag: bool = Field(default=False, alias="redFlag")
    differential: bool = Field(default=False, alias="differentialCounts")
    # What a site may tune (docs/rule-authoring.md#tunable-parameters): the clauses name each
    # as "$name", and the loader has put the value in its place before this model sees them.
    params: dict[Annotated[str, Field(pattern=PARAM_NAME)], ParamSpec] = Field(default_factory=dict)
    when: Node
    indicator: IndicatorSpec | None = None
    drop_suggestions: list[SuggestionDrop] = Field(default_factory=list, alias="dropSuggestions")
    # The first TRUE step sets the priority of suggestions whose card names none (rules.md 3.7
    # derives it from the indicator otherwise).
    suggestion_priority: list[PriorityStep] = Field(
        default_factory=list, alias="suggestionPriority"
    )

    @cached_property
    def key(self) -> str:
        # Cached on the instance: evaluation and precedence read it some 50 times a call.
        return self.id if self.variant is None else f"{self.id}/{self.variant}"

    def model_post_init(self, context: Any, /) -> None:
        # Filled at load, so a call never writes into a catalogue other calls share.
        self.key  # noqa: B018

    def trees(self, where: str = "") -> Iterator[tuple[str, Node]]:
        """Every `when` tree of the rule, with its path below ``where``."""
        yield f"{where}.when", self.when
        for j, step in enumerate(self.indicator.raise_ if self.indicator is not None else ()):
            yield f"{where}.indicator.raise[{j}].when", step.when
        for j, drop in enumerate(self.drop_suggestions):
            yield f"{where}.dropSuggestions[{j}].when", drop.when
        for j, priority in enumerate(self.suggestion_priority):
            yield f"{where}.suggestionPriority[{j}].when", priority.when


class Suppression(_Strict):
    if_: list[str] = Field(alias="if", min_length=1)
    then: list[str] = Field(min_length=1)


class Owner(_Strict):
    """One suggestion of `kind` per response, owned by the first fired rule in `priority`."""

    kind: str
    priority: list[str] = Field(min_length=1)
    drop_empty_cards: bool = Field(default=False, alias="dropEmptyCards")

    @cached_property
    def rank(self) -> dict[str, int]:
        """Each rule of ``priority`` by its place in it (read by precedence on every call)."""
        return {name: i for i, name in enumerate(self.priority)}

    def model_post_init(self, context: Any, /) -> None:
        # Filled at load, so a call never writes into a catalogue other calls share.
        self.rank  # noqa: B018


class Precedence(_Strict):
    suppress: list[Suppression] = Field(default_factory=list)
    one_per_kind: list[Owner] = Field(default_factory=list, alias="onePerKind")


class ServiceFile(_Strict):
    """rules/<service-id>.yaml."""

    id: str = Field(pattern=r"^[A-Za-z0-9._~-]+$")
    hooks: list[HookName] = Field(min_length=1)
    title: str = Field(min_length=1)
    description: str = Field(min_length=1)
    usage_requirements: str | None = Field(default=None, alias="usageRequirements")
    prefetch: dict[str, str] = Field(default_factory=dict)
    required_prefetch: list[str] = Field(default_factory=list, alias="requiredPrefetch")
    shared_rules: list[str] = Field(default_factory=list, alias="sharedRules")
    # Symptom value sets that a body site outside the lower limb takes away (hand numbness is
    # not a foot symptom); an unsited symptom still counts.
    limb_symptoms: list[str] = Field(default_factory=list, alias="limbSymptoms")
    rules: list[RuleSpec] = Field(default_factory=list)
    precedence: Precedence = Field(default_factory=Precedence)
    # Anchored YAML fragments reused by the rules; never evaluated on their own.
    fragments: list[Any] = Field(default_factory=list, alias="x-fragments")
