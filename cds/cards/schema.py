"""The YAML shape of a card template: indicator, text, source, links, suggestions, overrides."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cds.hooks import SUMMARY_MAX
from cds.rules.schema import Indicator

PLACEHOLDERS = frozenset({"evidence"})
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class CodeRef(_Strict):
    """A code taken from a value set, so a card can never carry a code nobody verified."""

    valueset: str
    code: str


class ServiceRequestSpec(_Strict):
    """The FHIR R4 ServiceRequest a `create` action proposes."""

    codes: list[CodeRef] = Field(default_factory=list)
    text: str = Field(min_length=1)
    performer_type: CodeRef | None = Field(default=None, alias="performerType")
    priority: Literal["routine", "urgent", "asap", "stat"] | None = None
    note: str | None = None


class ActionSpec(_Strict):
    type: Literal["create", "delete"]
    description: str = Field(min_length=1)
    service_request: ServiceRequestSpec | None = Field(default=None, alias="serviceRequest")
    target: Literal["draft"] | None = None

    @model_validator(mode="after")
    def _payload(self) -> ActionSpec:
        if self.type == "create" and (self.service_request is None or self.target is not None):
            raise ValueError("a create action carries serviceRequest and no target")
        if self.type == "delete" and (self.target is None or self.service_request is not None):
            raise ValueError("a delete action names target: draft and no serviceRequest")
        return self


class SuggestionSpec(_Strict):
    key: str = Field(pattern=r"^[a-z0-9-]+$")
    kind: str | None = None
    label: str = Field(min_length=1)
    is_recommended: bool | None = Field(default=None, alias="isRecommended")
    min_age: int | None = Field(default=None, alias="minAge", ge=0)
    actions: list[ActionSpec] = Field(min_length=1)


class SourceSpec(_Strict):
    label: str = Field(min_length=1)
    url: str = Field(pattern=r"^https?://\S+$")


class LinkSpec(_Strict):
    label: str = Field(min_length=1)
    url: str = Field(pattern=r"^https?://\S+$")


class OverrideSpec(_Strict):
    code: str = Field(pattern=r"^[a-z0-9-]+$")
    display: str = Field(min_length=1)
    # An override with this reason snoozes the card: the same card (same patient and evidence)
    # is not shown again for its rule's snooze period (docs/governance.md). Never on the wire.
    snoozes: bool = False


class CardTemplate(_Strict):
    """cards/<card-id>.yaml."""

    id: str = Field(pattern=r"^[a-z0-9-]+$")
    indicator: Indicator
    summary: str = Field(min_length=1, max_length=SUMMARY_MAX)
    detail: str = Field(min_length=1)
    source: SourceSpec
    links: list[LinkSpec] = Field(default_factory=list)
    override_reasons: list[OverrideSpec] = Field(default_factory=list, alias="overrideReasons")
    # Shown on a red-flag card when the patient's age is unknown (its age gates counted as met).
    unknown_age_note: str | None = Field(default=None, alias="unknownAgeNote", min_length=1)
    selection_behavior: Literal["any", "at-most-one"] | None = Field(
        default=None, alias="selectionBehavior"
    )
    suggestions: list[SuggestionSpec] = Field(default_factory=list)

    @field_validator("summary")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if "\n" in value:
            raise ValueError("summary is one line")
        return value

    @field_validator("detail")
    @classmethod
    def _known_placeholders(cls, value: str) -> str:
        unknown = set(_PLACEHOLDER.findall(value)) - PLACEHOLDERS
        if unknown:
            raise ValueError(f"unknown placeholder(s): {', '.join(sorted(unknown))}")
        return value

    @model_validator(mode="after")
    def _selection(self) -> CardTemplate:
        if self.suggestions and self.selection_behavior is None:
            raise ValueError("selectionBehavior is required with suggestions")
        keys = [s.key for s in self.suggestions]
        if len(keys) != len(set(keys)):
            raise ValueError("suggestion keys must be unique")
        return self
