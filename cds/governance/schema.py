"""The YAML shape of rules/governance/<RULE-ID>.yaml: who answers for a rule, on what evidence."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    model_validator,
)

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

# ISO 8601 durations in weeks, or days and a time part: "P30D", "PT24H", "P1DT12H", "P2W".
# Years and months are refused: their length varies, and a snooze is a fixed span of time.
DURATION = r"^P(?:(\d+)W|(?=\d|T\d)(?:(\d+)D)?(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?)$"
_DURATION = re.compile(DURATION)


def parse_duration(text: object) -> timedelta:
    """An ISO 8601 duration (weeks, days, hours, minutes, seconds) as a timedelta; ValueError
    naming the form expected for anything else (a bare number, "P1M", "30 days")."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(
            f"'{text}' is not an ISO 8601 duration in weeks, days, hours, minutes or seconds "
            "(e.g. P30D, PT24H, P1DT12H)"
        )
    weeks, days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)


def format_duration(span: timedelta) -> str:
    """``span`` in the ISO 8601 form ``parse_duration`` reads: days, then a time part ("P30D",
    "P1DT12H", "PT8H"; 24 hours is "P1D")."""
    days, rest = divmod(int(span.total_seconds()), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    time = "".join(f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M"), (seconds, "S")) if n)
    if not days and not time:
        return "PT0S"
    return "P" + (f"{days}D" if days else "") + (f"T{time}" if time else "")


def _duration(value: object) -> object:
    # YAML reads "P30D" as a string, but a bare 30 as a number: say what a duration looks like.
    return value if isinstance(value, timedelta) else parse_duration(value)


# A positive span written as an ISO 8601 duration; the JSON Schema carries the pattern, so an
# editor flags "30 days" as it is typed. Dumped back in the same form.
Duration = Annotated[
    timedelta,
    BeforeValidator(_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": DURATION}),
]
# Red flags (RF-*, or a variant marked redFlag) are never snoozed past this: the clinical
# specification allows no snooze beyond the current chart visit (docs/governance.md).
RED_FLAG_SNOOZE_MAXIMUM = timedelta(hours=24)


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


class Snooze(_Strict):
    """How long a card overridden with a snoozing reason stays away (docs/governance.md):
    ``default`` unless the site sets its own period, never more than ``maximum``."""

    default: Duration
    maximum: Duration

    @model_validator(mode="after")
    def _bounded(self) -> Snooze:
        if self.default <= timedelta(0):
            raise ValueError("default must be longer than zero")
        if self.default > self.maximum:
            raise ValueError(
                f"default {format_duration(self.default)} is longer than maximum "
                f"{format_duration(self.maximum)}"
            )
        return self


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
    snooze: Snooze

    def mode_on(self, day: date) -> Mode:
        """How the rule runs on ``day``: an active rule shows its cards and a draft one runs in
        shadow (evaluated and audited, no card), both only inside their effective period; a
        retired rule never runs."""
        if self.status == "retired" or not (self.effective is None or self.effective.holds(day)):
            return "off"
        return "on" if self.status == "active" else "shadow"

    def review_overdue(self, day: date) -> bool:
        return self.next_review < day
