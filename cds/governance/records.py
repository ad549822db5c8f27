"""Load rules/governance/*.yaml and check each record against the rules and the link allow-list."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from cds.cards.links import LinkHosts, link_problem
from cds.governance.reads import named_rules, rule_reads
from cds.governance.schema import (
    RED_FLAG_SNOOZE_MAXIMUM,
    Mode,
    RuleGovernance,
    format_duration,
)
from cds.rules.schema import RuleSpec
from cds.yaml_files import load_document

GOVERNANCE_DIR = "governance"


@dataclass(frozen=True)
class Governance:
    """Every rule's governance record, by rule id ("OS-02": its variants share one record)."""

    records: Mapping[str, RuleGovernance]
    sources: Mapping[str, str]  # rule id -> "rules/governance/OS-02.yaml"
    # The site's settings (CDS_SITE_CONFIG), by rule id: "off" or "shadow" quietens a rule;
    # "on" leaves it as its record says (a site cannot switch on a rule that is not active).
    site_modes: Mapping[str, Mode] = field(default_factory=dict)
    # ... and its snooze periods, each within the record's maximum (checked at load).
    site_snoozes: Mapping[str, timedelta] = field(default_factory=dict)

    def mode(self, rule_id: str, day: date) -> Mode:
        """How ``rule_id`` takes part in a call on ``day``. The one place a rule's mode is
        decided: the record's (status, effective period), quietened by the site's setting."""
        record = self.records.get(rule_id)
        if record is None:
            return "off"
        mode = record.mode_on(day)
        site = self.site_modes.get(rule_id) if self.site_modes else None
        if site is None or mode == "off" or site == "on":
            return mode
        return site

    def snooze_period(self, rule_id: str) -> timedelta:
        """How long a card of ``rule_id`` overridden with a snoozing reason stays away. The one
        place the period is decided: the site's setting (never above ``snooze_maximum``), else
        the record's default."""
        site = self.site_snoozes.get(rule_id)
        return self.records[rule_id].snooze.default if site is None else site

    def snooze_maximum(self, rule_id: str) -> timedelta:
        """The longest snooze ``rule_id``'s committee allows; a site may only shorten it."""
        return self.records[rule_id].snooze.maximum

    def versions(self, rule_ids: list[str]) -> dict[str, str]:
        """The version of each rule named, for an audit row."""
        return {rid: self.records[rid].version for rid in rule_ids if rid in self.records}

    def overdue(self, day: date) -> list[str]:
        """Rules past their nextReview on ``day``: they still run, and are named until reviewed."""
        return sorted(rid for rid, r in self.records.items() if r.review_overdue(day))

    def overdue_warnings(self, day: date) -> list[str]:
        """One ``file: nextReview: ...`` line per overdue rule (located by the caller)."""
        return [
            f"{self.sources[rid]}: nextReview: {rid} {self.records[rid].version} was due for "
            f"review on {self.records[rid].next_review.isoformat()}; it still runs"
            for rid in self.overdue(day)
        ]


def is_red_flag(rule_id: str, rules: Mapping[str, RuleSpec]) -> bool:
    """An RF-* rule, or one with a variant marked redFlag: its snooze is at most a day."""
    return rule_id.startswith("RF-") or any(r.red_flag for r in rules.values() if r.id == rule_id)


def _record_problems(
    label: str, record: RuleGovernance, rules: Mapping[str, RuleSpec], hosts: frozenset[str] | None
) -> list[str]:
    problems = []
    if record.next_review <= record.last_reviewed:
        problems.append(f"{label}: nextReview: must come after lastReviewed")
    for i, citation in enumerate(record.evidence):
        # Without the allow-list (its own problem is reported) links cannot be judged.
        why = None if hosts is None else link_problem(citation.url, hosts)
        if why is not None:
            problems.append(f"{label}: evidence[{i}].url: {why}")
        if citation.year > record.last_reviewed.year:
            problems.append(
                f"{label}: evidence[{i}].year: {citation.year} is after lastReviewed "
                "(a review cannot have read it)"
            )
    if is_red_flag(record.id, rules) and record.snooze.maximum > RED_FLAG_SNOOZE_MAXIMUM:
        problems.append(
            f"{label}: snooze.maximum: {record.id} is a red flag, snoozed for at most PT24H, "
            f"not {format_duration(record.snooze.maximum)}"
        )
    derived = rule_reads(record.id, rules)
    declared = set(record.reads)
    missing, extra = sorted(derived - declared), sorted(declared - derived)
    if missing:
        problems.append(f"{label}: reads: the rule's clauses also read {', '.join(missing)}")
    if extra:
        problems.append(f"{label}: reads: no clause of the rule reads {', '.join(extra)}")
    return problems


def load_governance(
    rules_dir: Path, rules: Mapping[str, RuleSpec], link_hosts: LinkHosts | None
) -> tuple[Governance, list[str]]:
    """The records in ``rules_dir/governance``, and every problem: a malformed record, a link
    off the allow-list, a rule without a record, a record without a rule. Read over a sound
    catalogue only: a broken rule would make its record's `reads` look wrong too."""
    hosts = link_hosts.names if link_hosts is not None else None
    directory = rules_dir / GOVERNANCE_DIR
    problems: list[str] = []
    records: dict[str, RuleGovernance] = {}
    sources: dict[str, str] = {}
    prefix = f"{rules_dir.name}/{GOVERNANCE_DIR}"
    for path in sorted(directory.glob("*.yaml")) if directory.is_dir() else ():
        label = f"{prefix}/{path.name}"
        record = load_document(path, label, RuleGovernance, problems)
        if record is None:
            continue
        if not any(rule.id == record.id for rule in rules.values()):
            problems.append(f"{label}: id: no rule '{record.id}' is defined in {rules_dir.name}/")
            continue
        records[record.id] = record
        sources[record.id] = label
        problems.extend(_record_problems(label, record, rules, hosts))
    loaded = {path.stem for path in directory.glob("*.yaml")} if directory.is_dir() else set()
    for rule_id in sorted({rule.id for rule in rules.values()} - loaded):
        problems.append(
            f"{prefix}/{rule_id}.yaml: rule {rule_id} has no governance record "
            "(version, status, owner, review dates, evidence)"
        )
    problems.extend(_retired_references(records, sources, rules))
    return Governance(records, sources), problems


def _retired_references(
    records: Mapping[str, RuleGovernance], sources: Mapping[str, str], rules: Mapping[str, RuleSpec]
) -> list[str]:
    """A rule that runs (active, or draft in shadow) whose `rule:` clause names a retired rule:
    the retired rule is still evaluated for it, unseen by the committee that retired it. A draft
    rule named is fine: it is evaluated anyway."""
    problems = []
    for rule_id, record in sorted(records.items()):
        if record.status == "retired":
            continue
        named = {rules[key].id for key in named_rules(rule_id, rules) if key in rules}
        for other in sorted(named - {rule_id}):
            if other in records and records[other].status == "retired":
                problems.append(
                    f"{sources[rule_id]}: status: {rule_id} is {record.status} but its rule: "
                    f"clause names {other}, which is retired; retire {rule_id} too, or stop "
                    f"naming {other}"
                )
    return problems
