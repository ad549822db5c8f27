"""The JSON Schemas of the YAML files rule authors write, generated from the pydantic models.

Committed under schemas/ so an editor (yaml-language-server, VS Code's YAML extension)
completes keys and flags mistakes as the author types; a test keeps them up to date.
The models stay the authority: checks across files and fields are ``cds rules check``'s.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from cds.cards.links import LinkHosts
from cds.cards.schema import CardTemplate
from cds.governance.schema import RuleGovernance
from cds.rules.policy import ClinicalPolicy
from cds.rules.schema import ServiceFile
from cds.site_settings import SiteFile
from cds.transparency.source_attributes import SourceAttributesFile
from cds.valuesets import ValueSetFile

DRAFT = "https://json-schema.org/draft/2020-12/schema"


@dataclass(frozen=True)
class FileSchema:
    """One kind of file: its model, the files it describes (globs from the repository root)."""

    name: str
    model: type[BaseModel]
    files: tuple[str, ...]
    excluding: tuple[str, ...] = ()

    @property
    def file_name(self) -> str:
        return f"{self.name}.schema.json"

    def document(self) -> dict[str, Any]:
        schema = self.model.model_json_schema(by_alias=True)
        return {"$schema": DRAFT, **schema}

    def text(self) -> str:
        return json.dumps(self.document(), indent=2, ensure_ascii=False) + "\n"


FILE_SCHEMAS = (
    FileSchema("service", ServiceFile, ("rules/*.yaml",)),
    FileSchema("card", CardTemplate, ("cards/*.yaml",), excluding=("cards/link-hosts.yaml",)),
    FileSchema("valueset", ValueSetFile, ("rules/valuesets/*.yaml",)),
    FileSchema("link-hosts", LinkHosts, ("cards/link-hosts.yaml",)),
    FileSchema("clinical-policy", ClinicalPolicy, ("rules/policy/clinical.yaml",)),
    FileSchema("governance", RuleGovernance, ("rules/governance/*.yaml",)),
    FileSchema(
        "source-attributes",
        SourceAttributesFile,
        ("rules/transparency/source-attributes.yaml",),
    ),
    FileSchema("site", SiteFile, ("deploy/site.example.yaml",)),
)


def write_schemas(directory: Path) -> list[Path]:
    """Write every schema into ``directory`` (created if need be); the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for schema in FILE_SCHEMAS:
        path = directory / schema.file_name
        path.write_text(schema.text(), encoding="utf-8")
        written.append(path)
    return written
