"""The ONC HTI-1 source attributes of an evidence-based decision support intervention
(45 CFR 170.315(b)(11)(iv)(A)), for one rule: from its governance record, its own definition
and rules/transparency/source-attributes.yaml (what the catalogue states once for all rules).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from cds.errors import ConfigError
from cds.governance import RuleGovernance
from cds.rules.schema import PatientClause, RuleSpec, walk
from cds.yaml_files import load_document

if TYPE_CHECKING:
    from cds.catalogue import Catalogue

SOURCE_ATTRIBUTES_FILE = Path("transparency") / "source-attributes.yaml"
# The record reads a Patient's birth date and deceased status, nothing else of it
# (cds/record/build.py): none of the demographic data HTI-1 names beside the date of birth.
NOT_READ = "Not used: the service reads only the patient's date of birth and deceased status."


class SourceAttributesFile(BaseModel):
    """rules/transparency/source-attributes.yaml."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    id: str
    developer: str = Field(min_length=1)
    funding: str = Field(min_length=1)
    # value set id -> what its codes hold, for the value sets that are USCDI data of the class.
    health_status_assessments: dict[str, str] = Field(
        default_factory=dict, alias="healthStatusAssessments"
    )
    social_determinants: dict[str, str] = Field(default_factory=dict, alias="socialDeterminants")


@dataclass(frozen=True, slots=True)
class SourceAttribute:
    """One attribute as the page shows it: the regulation's item, its name, this rule's value."""

    item: str  # "(b)(11)(iv)(A)(1)"
    name: str
    value: str


def load_source_attributes(rules_dir: Path, catalogue: Catalogue) -> SourceAttributesFile:
    """The file, checked against the catalogue's value sets; ``ConfigError`` names each problem.
    Without the file (a catalogue of value sets only, say) the pages say what is not stated."""
    problems: list[str] = []
    label = f"{rules_dir.name}/{SOURCE_ATTRIBUTES_FILE.as_posix()}"
    path = rules_dir / SOURCE_ATTRIBUTES_FILE
    if not path.is_file():
        unstated = f"Not stated: the catalogue has no {label}."
        return SourceAttributesFile(id=path.stem, developer=unstated, funding=unstated)
    document = load_document(path, label, SourceAttributesFile, problems)
    if document is not None:
        for key, sets in (
            ("healthStatusAssessments", document.health_status_assessments),
            ("socialDeterminants", document.social_determinants),
        ):
            problems.extend(
                f"{label}: {key}.{vs_id}: unknown value set '{vs_id}'"
                for vs_id in sets
                if vs_id not in catalogue.valuesets
            )
    if problems or document is None:
        raise ConfigError(problems)
    return document


def _keys(rule_id: str, rules: Mapping[str, RuleSpec]) -> Iterator[RuleSpec]:
    """The rule's variants and every rule their `rule:` clauses name, each once."""
    pending = [key for key, rule in rules.items() if rule.id == rule_id]
    seen = set(pending)
    while pending:
        rule = rules[pending.pop()]
        yield rule
        for _, tree in rule.trees():
            for node, _ in walk(tree):
                name, value = node.branch
                if name == "rule" and value in rules and value not in seen:
                    seen.add(value)
                    pending.append(value)


def _age_use(rule_id: str, catalogue: Catalogue, reads: frozenset[str]) -> str:
    gates: set[str] = set()
    for rule in _keys(rule_id, catalogue.rules):
        own = "" if rule.id == rule_id else f" (through {rule.id})"
        if rule.min_age is not None:
            gates.add(f"the rule applies from age {rule.min_age}{own}")
        for _, tree in rule.trees():
            gates.update(
                f"a clause asks for age {value.min_age} or more{own}"
                for node, _ in walk(tree)
                for name, value in [node.branch]
                if isinstance(value, PatientClause)
            )
        gates.update(
            f"'{s.label}' is suggested from age {s.min_age}{own}"
            for s in catalogue.cards[rule.card].suggestions
            if s.min_age is not None
        )
    if gates:
        return "Used for the patient's age: " + "; ".join(sorted(gates)) + "."
    if "Condition" in reads:
        return "Not a criterion; a condition recorded by age at onset is dated from it."
    return "Not used."


def _value_set_use(
    rule_id: str, catalogue: Catalogue, described: Mapping[str, str], none: str
) -> str:
    used = {
        vs_id
        for rule in _keys(rule_id, catalogue.rules)
        for _, tree in rule.trees()
        for node, _ in walk(tree)
        for name, value in [node.branch]
        if name not in ("all", "any", "not")
        for vs_id in getattr(value, "valuesets", ())
    }
    found = [f"{described[vs_id]} (value set '{vs_id}')" for vs_id in sorted(used & set(described))]
    return ("Used: " + "; ".join(found) + ".") if found else none


def source_attributes(
    rule_id: str,
    record: RuleGovernance,
    catalogue: Catalogue,
    stated: SourceAttributesFile,
) -> tuple[SourceAttribute, ...]:
    """The thirteen attributes of 170.315(b)(11)(iv)(A) for ``rule_id``."""
    reads = frozenset(record.reads)
    citations = "; ".join(f"{c.label}, {c.year}" for c in record.evidence)
    dates = f"Version {record.version}, last reviewed {record.last_reviewed.isoformat()}"
    if record.effective is not None and record.effective.start is not None:
        dates += f", in effect from {record.effective.start.isoformat()}"
    dates += f"; next review due {record.next_review.isoformat()}."
    item = "170.315(b)(11)(iv)(A)"
    values = [
        ("Bibliographic citation", citations + " (linked under Evidence)."),
        ("Developer", f"{stated.developer} Owner: {record.owner}."),
        ("Funding source of the technical implementation", stated.funding),
        ("Release and revision dates", dates),
        ("Use of race", NOT_READ),
        ("Use of ethnicity", NOT_READ),
        ("Use of language", NOT_READ),
        ("Use of sexual orientation", NOT_READ),
        ("Use of gender identity", NOT_READ),
        ("Use of sex", NOT_READ),
        ("Use of date of birth", _age_use(rule_id, catalogue, reads)),
        (
            "Use of social determinants of health data",
            _value_set_use(rule_id, catalogue, stated.social_determinants, "Not used."),
        ),
        (
            "Use of health status assessments data",
            _value_set_use(rule_id, catalogue, stated.health_status_assessments, "Not used."),
        ),
    ]
    return tuple(
        SourceAttribute(f"{item}({n})", name, value) for n, (name, value) in enumerate(values, 1)
    )
