"""The clause registry: one entry per clause type, read by validation, evaluation and words."""

from __future__ import annotations

import ast
import dataclasses
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from cds.catalogue import Catalogue, check, load_catalogue
from cds.record import build_record
from cds.record.matching import CODE_FIELDS
from cds.rules import ClauseInputs, Node, Tri, result_of
from cds.rules.clauses import CLAUSES, span
from cds.rules.logic import Result
from cds.rules.policy import load_policy
from cds.rules.schema import walk
from cds.settings import PROJECT_ROOT
from cds.valuesets import load_valuesets
from tests.problem_lines import unplaced

TOPIC = "https://footpath-cds.example.org/CodeSystem/rule"
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
PACKAGE = PROJECT_ROOT / "cds"
COMBINATORS = {"all", "any", "not"}


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue(PROJECT_ROOT / "rules", PROJECT_ROOT / "cards", TOPIC)


def every_clause(catalogue: Catalogue) -> list[tuple[str, str, Any]]:
    """(where, clause name, clause) for every clause of every shipped rule's trees."""
    found = []
    for key, rule in catalogue.rules.items():
        for path, tree in rule.trees(key):
            for node, where in walk(tree, path):
                name, value = node.branch
                if name not in COMBINATORS:
                    found.append((where, name, value))
    return found


def test_the_registry_and_the_node_schema_name_the_same_clauses_with_the_same_schemas() -> None:
    fields = {
        (info.alias or name): info.annotation
        for name, info in Node.model_fields.items()
        if (info.alias or name) not in COMBINATORS
    }
    assert set(fields) == set(CLAUSES)
    for name, clause_type in CLAUSES.items():
        assert clause_type.name == name
        assert fields[name] == clause_type.schema | None, name


def _clause_name_lists(path: Path) -> list[int]:
    """Lines of literals (tuple, list, set, dict keys) naming three or more clause types."""
    names = set(CLAUSES)
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        items: list[ast.expr | None] = []
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            items = list(node.elts)
        elif isinstance(node, ast.Dict):
            items = list(node.keys)
        named = {i.value for i in items if isinstance(i, ast.Constant)} & names
        if len(named) >= 3:
            lines.append(getattr(node, "lineno", 0))
    return lines


def test_no_module_but_the_registry_lists_clause_names() -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != PACKAGE / "rules" / "clauses.py" and (lines := _clause_name_lists(path))
    }
    assert offenders == {}


def test_every_clause_of_every_shipped_rule_reads_as_a_sentence(catalogue: Catalogue) -> None:
    clauses = every_clause(catalogue)
    # Every type but `patient` (rules gate age by minAge; its words are checked below).
    assert {name for _, name, _ in clauses} == set(CLAUSES) - {"patient"}
    for where, name, clause in clauses:
        clause_type = CLAUSES[name]
        words = clause_type.describe(clause)
        assert words[0].isupper(), where
        assert words.endswith("."), where
        assert "None" not in words, where
        assert "_" not in words.replace("measured_weight_loss", ""), where
        for _, _, ref in clause_type.refs(clause):
            assert f"'{ref}'" in words or f"Rule {ref} " in words, (where, words)


def test_clause_words_say_the_windows_sides_and_thresholds() -> None:
    def words(raw: dict[str, Any]) -> str:
        name, clause = Node.model_validate(raw).branch
        return str(CLAUSES[name].describe(clause))

    assert words(
        {"condition": {"valuesets": ["radic", "lbp"], "within": "P6W", "laterality": "left"}}
    ) == (
        "An active condition in value sets 'radic' or 'lbp', on the left side (a bilateral "
        "entry counts), dated within the last 6 weeks."
    )
    assert words(
        {"observation": {"valuesets": ["hba1c"], "unit": "%", "within": "P12M", "gte": 6.5}}
    ) == (
        "The latest measurement in value set 'hba1c' within the last 12 months is at least 6.5 %."
    )
    assert words({"patient": {"minAge": 50}}) == "The patient is at least 50 years old."
    assert words({"rule": "RB-01"}) == "Rule RB-01 fires."
    assert span("P1Y6M") == "1 year 6 months"


def test_each_clause_reads_resource_types_a_record_is_built_from(catalogue: Catalogue) -> None:
    known = set(CODE_FIELDS) | {"Patient"}
    for where, name, clause in every_clause(catalogue):
        assert set(CLAUSES[name].reads(clause)) <= known, where


def test_evaluation_dispatches_through_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    sets = load_valuesets(PROJECT_ROOT / "rules" / "valuesets")
    windows = load_policy(PROJECT_ROOT / "rules").condition_windows
    record = build_record(sets, NOW, "p1", [], windows=windows)
    node = Node.model_validate({"patient": {"minAge": 50}})
    assert result_of(node, ClauseInputs(record, {})).truth is Tri.UNKNOWN  # no birthDate

    def always(clause: Any, inputs: ClauseInputs) -> Result:
        return Result(Tri.TRUE)

    swapped = dataclasses.replace(CLAUSES["patient"], result_of=always)
    monkeypatch.setitem(CLAUSES, "patient", swapped)
    assert result_of(node, ClauseInputs(record, {})).truth is Tri.TRUE


def test_validation_finds_value_sets_wherever_a_clause_schema_marks_them(tmp_path: Path) -> None:
    shutil.copytree(PROJECT_ROOT / "rules", tmp_path / "rules")
    shutil.copytree(PROJECT_ROOT / "cards", tmp_path / "cards")
    path = tmp_path / "rules" / "back-to-foot.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["rules"][0]["when"] = {
        "any": [
            {"fact": {"name": "new_onset", "valuesets": ["ces"], "relativeTo": ["ces-x"]}},
            {"not": {"rule": "RB-99"}},
        ]
    }
    doc["rules"][0]["when"]["any"][0]["fact"]["priorBy"] = "P30D"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    problems = unplaced(check(tmp_path / "rules", tmp_path / "cards", TOPIC))
    assert problems == [
        "rules/back-to-foot.yaml: rules[0].when.any[0].fact.relativeTo[0]: "
        "unknown value set 'ces-x'",
        "rules/back-to-foot.yaml: rules[0].when.any[1].not.rule: unknown rule 'RB-99'",
    ]
