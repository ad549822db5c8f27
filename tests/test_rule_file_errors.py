"""A rule author's mistakes are named by file, line and column, with the key they meant.

Each test breaks one shipped file in a copy of rules/ and cards/ and reads what ``cds rules
check`` would print; the expected place is found in the broken text itself, so the tests
keep passing when the files gain lines.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from cds.catalogue import check, load_catalogue
from cds.errors import ConfigError
from cds.settings import PROJECT_ROOT

TOPIC = "https://footpath-cds.example.org/CodeSystem/rule"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    shutil.copytree(PROJECT_ROOT / "rules", tmp_path / "rules")
    shutil.copytree(PROJECT_ROOT / "cards", tmp_path / "cards")
    return tmp_path


def replace(path: Path, old: str, new: str) -> str:
    """Replace the first ``old`` in the file by ``new``; the place ``new`` starts (line:col)."""
    text = path.read_text(encoding="utf-8")
    at = text.index(old)
    path.write_text(text[:at] + new + text[at + len(old) :], encoding="utf-8")
    line = text.count("\n", 0, at) + 1
    column = at - (text.rfind("\n", 0, at) + 1) + 1
    return f"{line}:{column}"


def problems_of(tree: Path) -> list[str]:
    return check(tree / "rules", tree / "cards", TOPIC)


@pytest.mark.parametrize(
    ("file", "path", "meant"),
    [
        ("rules/back-to-foot.yaml", "rules[0].redFlg", "redFlag"),
        ("cards/rb-01.yaml", "sumary", "summary"),
        ("rules/valuesets/b12.yaml", "codes[0].dispaly", "display"),
        ("cards/link-hosts.yaml", "hosts[0].publsher", "publisher"),
    ],
)
def test_a_misspelt_key_names_its_line_and_column_and_the_key_meant(
    tree: Path, file: str, path: str, meant: str
) -> None:
    typo = path.rsplit(".", 1)[-1]
    place = replace(tree / file, f"{meant}:", f"{typo}:")
    problems = problems_of(tree)
    assert problems[0] == f"{file}:{place}: {path}: unknown key '{typo}'; did you mean '{meant}'?"
    # The key it meant is not reported missing as well: the one line says it all.
    assert not any("is missing" in problem for problem in problems)


def test_a_key_like_none_of_the_valid_ones_lists_the_keys_allowed_there(tree: Path) -> None:
    place = replace(
        tree / "cards" / "rb-01.yaml", "indicator: info", "colour: red\nindicator: info"
    )
    problems = problems_of(tree)
    assert problems[0] == (
        f"cards/rb-01.yaml:{place}: colour: unknown key 'colour'; the keys here are detail, "
        "id, indicator, links, overrideReasons, selectionBehavior, source, suggestions, summary, "
        "unknownAgeNote"
    )


def test_a_yaml_syntax_error_names_the_file_line_and_column_and_stops_the_cascade(
    tree: Path,
) -> None:
    """back-to-foot.yaml defines the rules the order services share: none is called unknown."""
    title = "title: Back-to-foot referral guidance"
    place = replace(tree / "rules" / "back-to-foot.yaml", title, "title: Back-to-foot: guidance")
    line, column = (int(part) for part in place.split(":"))
    problems = problems_of(tree)
    assert problems == [
        f"rules/back-to-foot.yaml:{line}:{column + len('title: Back-to-foot')}: not valid YAML: "
        "mapping values are not allowed in this context",
        "references between files are not checked until rules/back-to-foot.yaml loads",
    ]
    assert not any("<unicode string>" in problem for problem in problems)


def test_a_card_that_does_not_load_is_not_also_called_unknown_by_its_rules(tree: Path) -> None:
    replace(tree / "cards" / "rb-01.yaml", "indicator: info", "indicator: loud")
    with pytest.raises(ConfigError) as caught:
        load_catalogue(tree / "rules", tree / "cards", TOPIC)
    problems = caught.value.problems
    assert len(problems) == 2
    assert problems[0].startswith("cards/rb-01.yaml:2:12: indicator: Input should be 'info'")
    assert problems[1] == "references between files are not checked until cards/rb-01.yaml loads"


def test_a_reference_to_an_unknown_value_set_names_the_line_and_column_of_the_reference(
    tree: Path,
) -> None:
    old = "valuesets: [lspine-compressive]"
    place = replace(tree / "rules" / "back-to-foot.yaml", old, "valuesets: [lspien]")
    line, column = (int(part) for part in place.split(":"))
    (problem,) = problems_of(tree)
    assert problem.startswith(f"rules/back-to-foot.yaml:{line}:{column + len('valuesets: [')}: ")
    assert problem.endswith(".condition.valuesets[0]: unknown value set 'lspien'")


def test_a_when_node_with_two_clauses_is_placed_at_the_node(tree: Path) -> None:
    old = "condition: {valuesets: [lspine-compressive], olderThan: P42D}"
    place = replace(tree / "rules" / "back-to-foot.yaml", old, f"{{{old}, rule: RB-01}}")
    problem = problems_of(tree)[0]
    assert problem.startswith(f"rules/back-to-foot.yaml:{place}: rules[")
    assert problem.endswith(
        ": a node holds exactly one of all/any/not/<clause>, got condition, rule"
    )


def test_a_file_id_that_does_not_match_its_name_is_placed_at_the_id(tree: Path) -> None:
    replace(tree / "cards" / "rb-01.yaml", "id: rb-01", "id: rb-1")
    problems = problems_of(tree)
    assert problems[0] == "cards/rb-01.yaml:1:5: id: 'rb-1' does not match the file name 'rb-01'"


def test_a_rule_that_refers_back_to_itself_is_placed_at_its_when(tree: Path) -> None:
    service = tree / "rules" / "back-to-foot.yaml"
    document = yaml.safe_load(service.read_text(encoding="utf-8"))
    rule = document["rules"][0]
    rule["when"] = {"rule": rule["id"]}
    text = yaml.safe_dump(document, sort_keys=False)
    service.write_text(text, encoding="utf-8")
    line = text[: text.index(f"    rule: {rule['id']}\n")].count("\n") + 1
    assert (
        f"rules/back-to-foot.yaml:{line}:5: rules[0].when: rule '{rule['id']}' refers back "
        "to itself through 'rule:' clauses" in problems_of(tree)
    )


def test_a_misspelt_key_deep_in_a_when_tree_gets_the_clause_key_meant(tree: Path) -> None:
    place = replace(tree / "rules" / "back-to-foot.yaml", "olderThan:", "olderThn:")
    problem = problems_of(tree)[0]
    assert problem.startswith(f"rules/back-to-foot.yaml:{place}: rules[")
    assert problem.endswith(".olderThn: unknown key 'olderThn'; did you mean 'olderThan'?")
