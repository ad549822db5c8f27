"""Tunable parameters: a rule declares them (``params:``), its clauses name them (``$name``).

A rule's file holds ``within: $edxLookback`` where a committee may tune a window, and declares
``edxLookback`` with its default, bounds and a description. The references are replaced by the
values (the default, or the site's setting) in the raw YAML before the rule is validated, so the
validated rule is an ordinary one: the engine never sees a parameter, and with no site setting
the rule is exactly the one written with the defaults in place.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cds.record.dates import parse_duration

PARAM_NAME = r"^[a-z][A-Za-z0-9]*$"
# A clause value that names a parameter: the whole string "$name".
PARAM_REF = r"^\$[a-z][A-Za-z0-9]*$"
_REF = re.compile(PARAM_REF)
_REFERENCE = datetime(2001, 1, 1, tzinfo=UTC)  # durations are compared by how far back they reach
# The keys whose value a parameter may set: windows, thresholds and age gates. Anything else
# (a value set, a unit, a card) is what the rule is, not how it is tuned.
TUNABLE_KEYS = frozenset(
    {
        "within",
        "olderThan",
        "priorBy",
        "latestWithin",
        "current",
        "baselineFrom",
        "baselineTo",
        "gte",
        "gt",
        "lte",
        "lt",
        "percent",
        "minAge",
    }
)
ParamValue = str | int | float
ParamKind = Literal["duration", "integer", "number"]
Loc = tuple[int | str, ...]


KIND_WORDS: Mapping[ParamKind, str] = {
    "duration": "an ISO 8601 duration such as P6W",
    "integer": "a whole number",
    "number": "a number",
}


def kind_of(value: object) -> ParamKind | None:
    """What a value is, as a parameter: a duration, a whole number or a number (None: neither)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            parse_duration(value)
        except ValueError:
            return None
        return "duration"
    if isinstance(value, int):
        return "integer"
    return "number" if isinstance(value, float) else None


def magnitude(value: ParamValue) -> float:
    """A value on one scale for its kind: a duration by the moment it reaches back to."""
    if isinstance(value, str):
        return -parse_duration(value).before(_REFERENCE).timestamp()
    return float(value)


def fits(kind: ParamKind, value: object) -> bool:
    """Whether ``value`` can stand for a parameter of ``kind`` (a whole number is a number)."""
    found = kind_of(value)
    return found == kind or (kind == "number" and found == "integer")


class ParamSpec(BaseModel):
    """One tunable parameter of a rule: its default and the bounds a site stays within."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = Field(min_length=1)
    default: ParamValue
    min: ParamValue
    max: ParamValue

    @property
    def kind(self) -> ParamKind:
        found = kind_of(self.default)
        return "number" if found is None else found

    @model_validator(mode="after")
    def _consistent(self) -> ParamSpec:
        if kind_of(self.default) is None:
            raise ValueError(
                f"default '{self.default}' is neither an ISO 8601 duration (P6W) nor a number"
            )
        for name in ("min", "max"):
            if not fits(self.kind, getattr(self, name)):
                raise ValueError(f"{name} must be {KIND_WORDS[self.kind]}, as the default is")
        if not self.within_bounds(self.default):
            raise ValueError(f"default {self.default} is outside {self.bounds()}")
        return self

    def within_bounds(self, value: ParamValue) -> bool:
        return magnitude(self.min) <= magnitude(value) <= magnitude(self.max)

    def bounds(self) -> str:
        return f"{self.min}..{self.max}"


def _defaults(raw_rule: Mapping[str, Any]) -> dict[str, ParamValue] | None:
    """Each declared parameter's default (None: the params block is not a mapping). A malformed
    declaration keeps its default when it has one, so that the rule's validation names the
    declaration's own mistake rather than every clause that names it."""
    block = raw_rule.get("params") or {}
    if not isinstance(block, dict):
        return None
    defaults: dict[str, ParamValue] = {}
    for name, raw in block.items():
        try:
            defaults[str(name)] = ParamSpec.model_validate(raw).default
        except ValidationError:
            default = raw.get("default") if isinstance(raw, dict) else None
            if isinstance(default, str | int | float) and kind_of(default) is not None:
                defaults[str(name)] = default
    return defaults


def _substitute(
    value: Any, loc: Loc, values: Mapping[str, ParamValue], used: set[str], problems: list[Any]
) -> Any:
    """A copy of ``value`` with every ``$name`` replaced: anchored fragments are shared between
    rules, so the raw tree is never changed in place."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if isinstance(item, str) and _REF.match(item):
                out[key] = _resolve(item, (*loc, key), values, used, problems)
            else:
                out[key] = _substitute(item, (*loc, key), values, used, problems)
        return out
    if isinstance(value, list):
        return [
            _substitute(item, (*loc, i), values, used, problems) for i, item in enumerate(value)
        ]
    return value


def _resolve(
    ref: str, loc: Loc, values: Mapping[str, ParamValue], used: set[str], problems: list[Any]
) -> Any:
    name = ref[1:]
    if loc[-1] not in TUNABLE_KEYS:
        keys = ", ".join(sorted(TUNABLE_KEYS))
        problems.append((loc, f"'{ref}': a parameter may set only {keys}"))
        return ref
    if name not in values:
        problems.append((loc, f"'{ref}' names no parameter in this rule's params"))
        return ref
    used.add(name)
    return values[name]


def substitute_rule(
    raw_rule: Any, loc: Loc, site_values: Mapping[str, ParamValue]
) -> tuple[Any, list[tuple[Loc, str]]]:
    """``raw_rule`` (one entry of a service file's ``rules``) with its parameters' values in
    place: the site's where it sets one, the default otherwise."""
    if not isinstance(raw_rule, dict):
        return raw_rule, []
    declared = _defaults(raw_rule)
    if declared is None:
        return raw_rule, []
    values = {**declared, **{n: v for n, v in site_values.items() if n in declared}}
    problems: list[tuple[Loc, str]] = []
    used: set[str] = set()
    body = {key: item for key, item in raw_rule.items() if key != "params"}
    out = _substitute(body, loc, values, used, problems)
    if "params" in raw_rule:
        out["params"] = raw_rule["params"]
    problems.extend(
        ((*loc, "params", name), f"no clause of the rule names ${name}")
        for name in sorted(set(declared) - used)
    )
    return out, problems


def substitute_service(
    raw: Any, site_values: Mapping[str, Mapping[str, ParamValue]]
) -> tuple[Any, list[tuple[Loc, str]]]:
    """A service file's raw YAML with every rule's parameters in place (``load_document``'s
    ``prepare``); ``site_values`` by rule id."""
    if not isinstance(raw, dict) or not isinstance(raw.get("rules"), list):
        return raw, []
    problems: list[tuple[Loc, str]] = []
    rules = []
    for i, raw_rule in enumerate(raw["rules"]):
        rule_id = raw_rule.get("id") if isinstance(raw_rule, dict) else None
        rule, found = substitute_rule(raw_rule, ("rules", i), site_values.get(str(rule_id), {}))
        rules.append(rule)
        problems.extend(found)
    return {**raw, "rules": rules}, problems
