"""The site's settings applied, once at load: the effective governance and value sets, and a plain
description of every change (what ``cds rules check --site`` lists, what a rule page shows)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import date

from cds.governance import Governance
from cds.governance.schema import format_duration
from cds.rules.schema import RuleSpec
from cds.site_settings.check import declared_params
from cds.site_settings.schema import SiteFile
from cds.site_settings.site import SiteFileRead, SiteSettings
from cds.valuesets import LocalEntry, ValueSets


def _rule_changes(
    document: SiteFile, rules: Mapping[str, RuleSpec], governance: Governance
) -> dict[str, tuple[str, ...]]:
    changes: dict[str, tuple[str, ...]] = {}
    for rule_id, setting in sorted(document.rules.items()):
        lines = []
        if setting.mode in ("off", "shadow"):
            record = governance.records[rule_id]
            what = (
                "not evaluated, no card"
                if setting.mode == "off"
                else "evaluated and audited as would-fire, no card"
            )
            lines.append(
                f"mode {setting.mode} by the site ({what}); its record says {record.status}"
            )
        declared = declared_params(rule_id, rules)
        lines.extend(
            f"{name} {value} by the site (default {declared[name].default}, bounds "
            f"{declared[name].bounds()}): {declared[name].description}"
            for name, value in sorted(setting.params.items())
        )
        if setting.snooze is not None:
            record = governance.records[rule_id]
            lines.append(
                f"snooze {format_duration(setting.snooze)} by the site (default "
                f"{format_duration(record.snooze.default)}, maximum "
                f"{format_duration(record.snooze.maximum)})"
            )
        if lines:
            changes[rule_id] = tuple(lines)
    return changes


def _valueset_changes(document: SiteFile) -> dict[str, tuple[str, ...]]:
    return {
        vs_id: tuple(
            f"local code {c.system}|{c.code} '{c.display}' added by the site: {c.note}"
            for c in addition.add
        )
        for vs_id, addition in sorted(document.valuesets.items())
    }


def settle(
    read: SiteFileRead,
    document: SiteFile,
    rules: Mapping[str, RuleSpec],
    governance: Governance,
    valuesets: ValueSets,
) -> tuple[SiteSettings, Governance, ValueSets]:
    """The settings, and the governance and value sets with them applied (checked already)."""
    site = SiteSettings(
        read.label,
        read.digest,
        document,
        _rule_changes(document, rules, governance),
        _valueset_changes(document),
    )
    additions = {
        vs_id: [LocalEntry(c.system, c.code, c.display, c.note) for c in codes]
        for vs_id, codes in site.local_codes().items()
    }
    return (
        site,
        replace(governance, site_modes=site.modes(), site_snoozes=site.snoozes()),
        valuesets.with_local(additions),
    )


def effective_values(
    site: SiteSettings, rules: Mapping[str, RuleSpec], governance: Governance, day: date
) -> list[str]:
    """Every rule's mode on ``day`` with each of its tunable parameters, then the local codes:
    what runs with these settings, for the deployer to read before starting the service."""
    lines = [f"site settings: {site.label} (sha256 {site.digest})", "rules:"]
    for rule_id in sorted({rule.id for rule in rules.values()}):
        record = governance.records[rule_id]
        setting = site.rule(rule_id)
        by = " (site)" if setting is not None and setting.mode not in (None, "on") else ""
        lines.append(f"  {rule_id} {record.version}: {governance.mode(rule_id, day)}{by}")
        snooze = format_duration(governance.snooze_period(rule_id))
        site_snooze = setting is not None and setting.snooze is not None
        lines.append(
            f"    snooze: {format_duration(record.snooze.default) + ' -> ' if site_snooze else ''}"
            f"{snooze}{' (site)' if site_snooze else ''}  "
            f"[maximum {format_duration(record.snooze.maximum)}]"
        )
        tuned = setting.params if setting is not None else {}
        for name, spec in sorted(declared_params(rule_id, rules).items()):
            value = f"{spec.default} -> {tuned[name]} (site)" if name in tuned else spec.default
            lines.append(f"    {name}: {value}  [bounds {spec.bounds()}]")
    lines.append("value sets:")
    local = site.local_codes()
    lines.extend(
        f"  {vs_id}: + {c.system}|{c.code} '{c.display}' (local: {c.note})"
        for vs_id in sorted(local)
        for c in local[vs_id]
    )
    if not local:
        lines.append("  no local codes")
    return lines
