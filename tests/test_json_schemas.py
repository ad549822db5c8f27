"""The JSON Schemas in schemas/ are the models' own, up to date, and accept every shipped file.

An editor checks rule, card and value-set files against them as the author types; a schema that
refused a shipped file, or lagged behind a model, would flag correct files or miss mistakes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from cds.cli import main
from cds.json_schemas import FILE_SCHEMAS, FileSchema
from cds.settings import PROJECT_ROOT

SCHEMAS = PROJECT_ROOT / "schemas"
BY_NAME = {schema.name: schema for schema in FILE_SCHEMAS}


def described_files(schema: FileSchema) -> list[Path]:
    excluded = {PROJECT_ROOT / path for path in schema.excluding}
    found = {path for pattern in schema.files for path in PROJECT_ROOT.glob(pattern)}
    return sorted(found - excluded)


def validator(schema: FileSchema) -> Draft202012Validator:
    document = json.loads((SCHEMAS / schema.file_name).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(document)
    return Draft202012Validator(document)


@pytest.mark.parametrize("schema", FILE_SCHEMAS, ids=lambda schema: schema.name)
def test_the_committed_schema_is_the_one_the_model_generates(schema: FileSchema) -> None:
    committed = (SCHEMAS / schema.file_name).read_text(encoding="utf-8")
    assert committed == schema.text(), "run: cds rules schema schemas"


@pytest.mark.parametrize("schema", FILE_SCHEMAS, ids=lambda schema: schema.name)
def test_every_shipped_file_is_valid_against_its_schema(schema: FileSchema) -> None:
    files = described_files(schema)
    assert files
    check = validator(schema)
    for path in files:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        errors = [error.message for error in check.iter_errors(document)]
        assert errors == [], path


def test_every_shipped_yaml_file_has_exactly_one_schema() -> None:
    shipped = sorted(
        [
            *(
                path
                for directory in ("rules", "cards")
                for path in (PROJECT_ROOT / directory).rglob("*.yaml")
            ),
            PROJECT_ROOT / "deploy" / "site.example.yaml",
        ]
    )
    described = sorted(path for schema in FILE_SCHEMAS for path in described_files(schema))
    assert described == shipped


def test_a_misspelt_key_is_flagged_by_the_schema_as_an_editor_would() -> None:
    card: dict[str, Any] = yaml.safe_load((PROJECT_ROOT / "cards" / "rb-01.yaml").read_text())
    card["sumary"] = card.pop("summary")
    messages = [error.message for error in validator(BY_NAME["card"]).iter_errors(card)]
    assert "'summary' is a required property" in messages
    assert any("'sumary' was unexpected" in message for message in messages)


def test_cds_rules_schema_writes_the_committed_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rules", "schema", str(tmp_path / "out")]) == 0
    written = sorted(path.name for path in (tmp_path / "out").iterdir())
    assert written == sorted(schema.file_name for schema in FILE_SCHEMAS)
    for name in written:
        committed = (SCHEMAS / name).read_text(encoding="utf-8")
        assert (tmp_path / "out" / name).read_text(encoding="utf-8") == committed
    assert capsys.readouterr().out.count("wrote ") == len(FILE_SCHEMAS)
