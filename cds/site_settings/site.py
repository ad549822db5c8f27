"""One hospital's settings, read once at startup: the file, its digest and what it changes."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from cds.governance.schema import Mode
from cds.rules.params import ParamValue
from cds.site_settings.schema import LocalCode, RuleSetting, SiteFile
from cds.yaml_files import Places, parse_document

# What audit rows and /readyz say when no site file is in use.
NO_SITE_DIGEST = "none"


@dataclass(frozen=True)
class SiteSettings:
    """The site's file as validated, and a plain description of each change it makes (for
    ``cds rules check --site`` and the rule pages). The catalogue has them applied already:
    nothing here is read while a call is evaluated."""

    label: str | None = None  # the file, as CDS_SITE_CONFIG names it
    digest: str = NO_SITE_DIGEST  # sha256 of the file's bytes
    document: SiteFile = field(default_factory=SiteFile)
    rule_changes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    valueset_changes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def changes_for(self, rule_id: str) -> tuple[str, ...]:
        """What the site changed about ``rule_id``, one plain sentence each (none: as shipped)."""
        return self.rule_changes.get(rule_id, ())

    def changes_for_valueset(self, vs_id: str) -> tuple[str, ...]:
        """What the site added to value set ``vs_id``, one plain sentence per local code."""
        return self.valueset_changes.get(vs_id, ())

    def rule(self, rule_id: str) -> RuleSetting | None:
        return self.document.rules.get(rule_id)

    def modes(self) -> dict[str, Mode]:
        return {rid: s.mode for rid, s in self.document.rules.items() if s.mode is not None}

    def snoozes(self) -> dict[str, timedelta]:
        return {rid: s.snooze for rid, s in self.document.rules.items() if s.snooze is not None}

    def param_values(self) -> dict[str, dict[str, ParamValue]]:
        """The tuned parameters, by rule id (only rules that tune one)."""
        return {rid: dict(s.params) for rid, s in self.document.rules.items() if s.params}

    def local_codes(self) -> dict[str, list[LocalCode]]:
        return {vs_id: list(addition.add) for vs_id, addition in self.document.valuesets.items()}


NO_SITE = SiteSettings()


@dataclass(frozen=True)
class SiteFileRead:
    """The file as read: its document (None when it is not valid), digest and places."""

    label: str
    digest: str
    document: SiteFile | None
    places: Places | None


def read_site_file(path: Path, problems: list[str]) -> SiteFileRead | None:
    """``path`` read and validated for its shape (None when it cannot be read at all)."""
    label = str(path)
    try:
        data = path.read_bytes()
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{label}: the site settings file (CDS_SITE_CONFIG) cannot be read: {exc}")
        return None
    # An empty file is a site that changes nothing: valid, and its digest says it was in use.
    document, places = parse_document(
        text, label, SiteFile, problems, lambda raw: ({} if raw is None else raw, [])
    )
    return SiteFileRead(label, hashlib.sha256(data).hexdigest(), document, places)
