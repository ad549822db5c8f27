"""The site's file checked against the catalogue: every rule, parameter and value set it names."""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from cds.governance import Governance
from cds.governance.schema import format_duration
from cds.rules.params import KIND_WORDS, ParamSpec, ParamValue, fits
from cds.rules.schema import RuleSpec
from cds.site_settings.schema import LocalCode, RuleSetting, SiteFile
from cds.site_settings.site import SiteFileRead
from cds.valuesets import ValueSets, normalize
from cds.yaml_files import Places, located


def declared_params(rule_id: str, rules: Mapping[str, RuleSpec]) -> dict[str, ParamSpec]:
    """The parameters ``rule_id`` declares (its variants' together: a variant may add its own)."""
    found: dict[str, ParamSpec] = {}
    for rule in rules.values():
        if rule.id == rule_id:
            found.update(rule.params)
    return found


def _nearest(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _mode_problem(rule_id: str, setting: RuleSetting, governance: Governance) -> str | None:
    record = governance.records[rule_id]
    if setting.mode == "on" and record.status != "active":
        # A site may quieten a rule, never switch on one its owners have not made active.
        return (
            f"{rule_id} is {record.status} in its governance record; a site cannot switch on "
            "a rule its owners have not made active (use shadow or off, or leave mode out)"
        )
    if setting.mode == "shadow" and record.status == "retired":
        return f"{rule_id} is retired in its governance record and is never evaluated"
    return None


def _param_problem(name: str, value: ParamValue, spec: ParamSpec) -> str | None:
    if not fits(spec.kind, value):
        return f"{name} takes {KIND_WORDS[spec.kind]}, not '{value}'"
    if not spec.within_bounds(value):
        return f"{value} is outside the bounds the rule declares for {name}: {spec.bounds()}"
    return None


def _rule_problems(
    rule_id: str,
    setting: RuleSetting,
    rules: Mapping[str, RuleSpec],
    governance: Governance,
    at: Located,
) -> list[str]:
    problems = []
    why = _mode_problem(rule_id, setting, governance)
    if why is not None:
        problems.append(at(("rules", rule_id, "mode"), why))
    maximum = governance.snooze_maximum(rule_id)
    if setting.snooze is not None and setting.snooze > maximum:
        problems.append(
            at(
                ("rules", rule_id, "snooze"),
                f"{format_duration(setting.snooze)} is longer than the longest snooze "
                f"{rule_id}'s governance record allows, {format_duration(maximum)}",
            )
        )
    declared = declared_params(rule_id, rules)
    for name, value in setting.params.items():
        loc = ("rules", rule_id, "params", name)
        spec = declared.get(name)
        if spec is None:
            tunable = ", ".join(sorted(declared)) or "none"
            problems.append(
                at(
                    loc,
                    f"{rule_id} declares no parameter '{name}' (its tunable parameters: "
                    f"{tunable}){_nearest(name, sorted(declared))}",
                    key=True,
                )
            )
            continue
        why = _param_problem(name, value, spec)
        if why is not None:
            problems.append(at(loc, why))
    return problems


def _code_problem(code: LocalCode, vs_id: str, valuesets: ValueSets) -> str | None:
    vs = valuesets[vs_id]
    norm = normalize(code.system, code.code)
    if (code.system, norm) in vs.carve_out:
        return (
            f"{code.system}|{code.code} is carved out of value set '{vs_id}' by its clinical "
            "owners; a site cannot add it back"
        )
    if vs.matches(code.system, code.code):
        # An error, not a warning: the code is counted already, and a note on it would claim a
        # local provenance for a verified code.
        return f"{code.system}|{code.code} is already a verified code of value set '{vs_id}'"
    return None


def _valueset_problems(
    vs_id: str, codes: list[LocalCode], valuesets: ValueSets, at: Located
) -> list[str]:
    if vs_id not in valuesets:
        near = _nearest(vs_id, sorted(valuesets.by_id))
        return [at(("valuesets", vs_id), f"no value set '{vs_id}' is shipped{near}", key=True)]
    problems = []
    seen: set[tuple[str, str]] = set()
    for i, code in enumerate(codes):
        loc = ("valuesets", vs_id, "add", i)
        key = (code.system, normalize(code.system, code.code))
        if key in seen:
            problems.append(at((*loc, "code"), f"{code.system}|{code.code} is added twice"))
        seen.add(key)
        why = _code_problem(code, vs_id, valuesets)
        if why is not None:
            problems.append(at((*loc, "code"), why))
    return problems


class Located:
    """Problems in the site file, each at its line and column."""

    def __init__(self, label: str, places: Places) -> None:
        self.label, self.places = label, places

    def __call__(self, loc: tuple[int | str, ...], message: str, *, key: bool = False) -> str:
        return located(self.label, self.places, loc, message, key=key)


def site_problems(
    read: SiteFileRead,
    document: SiteFile,
    rules: Mapping[str, RuleSpec],
    governance: Governance,
    valuesets: ValueSets,
) -> list[str]:
    """Every problem of the site's settings against the catalogue it would change."""
    assert read.places is not None  # noqa: S101 - a validated document was parsed
    at = Located(read.label, read.places)
    ids = sorted({rule.id for rule in rules.values()})
    problems = []
    for rule_id, setting in document.rules.items():
        if rule_id not in ids:
            problems.append(
                at(("rules", rule_id), f"no rule '{rule_id}'{_nearest(rule_id, ids)}", key=True)
            )
            continue
        problems.extend(_rule_problems(rule_id, setting, rules, governance, at))
    for vs_id, addition in document.valuesets.items():
        problems.extend(_valueset_problems(vs_id, list(addition.add), valuesets, at))
    return problems
