"""The YAML shape of rules/governance/<RULE-ID>.yaml: who answers for a rule, on what evidence."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from cds.rules.schema import RULE_ID

# Semantic Versioning 2.0.0 (semver.org), without build metadata: a version names what ran.
SEMVER = (
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(-((0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(\.(0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?$"
)
_SEMVER = re.compile(SEMVER)


def _semantic_version(value: object) -> object:
    # YAML reads "1.0" as a number: say what a version looks like rather than "not a string".
    if not isinstance(value, str) or not _SEMVER.match(value):
        raise ValueError(f"'{value}' is not a semantic version (MAJOR.MINOR.PATCH, e.g. 1.2.0)")
    return value


# The pattern also reaches the JSON Schema, so an editor flags a bad version as it is typed.
Version = Annotated[str, BeforeValidator(_semantic_version), Field(pattern=SEMVER)]
Status = Literal["draft", "active", "retired"]
# How a rule takes part in a call: "on" shows its cards; "shadow" evaluates it and audits that it
# would have fired, with no card; "off" does not evaluate it. A site's setting (#16 point 3)
# will be combined with the record's mode in ``Governance.mode``, never here.
Mode = Literal["on", "shadow", "off"]
# The FHIR resource types a rule can read: the record's (cds/record/build.py) and the Patient.
ResourceType = Literal[
    "Patient",
    "Condition",
    "Observation",
    "Procedure",
    "ServiceRequest",
    "DiagnosticReport",
    "MedicationRequest",
    "MedicationStatement",
]
_FIRST_EVIDENCE_YEAR = 1900


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class Citation(_Strict):
    """One source the rule rests on, linked at its publisher's page or its DOI."""

    label: str = Field(min_length=1)
    year: int = Field(ge=_FIRST_EVIDENCE_YEAR)
    url: str = Field(min_length=1)


class Effective(_Strict):
    """The days the rule may run, both ends inclusive; either end may be open."""

    start: date | None = None
    end: date | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Effective:
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValueError("end is before start")
        return self

    def holds(self, day: date) -> bool:
        return (self.start is None or self.start <= day) and (self.end is None or day <= self.end)


class RuleGovernance(_Strict):
    """One rule's governance record (docs/governance.md)."""

    id: str = Field(pattern=RULE_ID)
    version: Version
    status: Status
    effective: Effective | None = None
    owner: str = Field(min_length=1)
    last_reviewed: date = Field(alias="lastReviewed")
    next_review: date = Field(alias="nextReview")
    evidence: list[Citation] = Field(min_length=1)
    intended_use: str = Field(alias="intendedUse", min_length=1)
    cautions: list[str] = Field(min_length=1)
    reads: list[ResourceType] = Field(min_length=1)

    def mode_on(self, day: date) -> Mode:
        """How the rule runs on ``day``: an active rule shows its cards and a draft one runs in
        shadow (evaluated and audited, no card), both only inside their effective period; a
        retired rule never runs."""
        if self.status == "retired" or not (self.effective is None or self.effective.holds(day)):
            return "off"
        return "on" if self.status == "active" else "shadow"

    def review_overdue(self, day: date) -> bool:
        return self.next_review < day
