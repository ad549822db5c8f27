"""Value sets loaded from rules/valuesets/: exact (system, code) and ICD-10-CM prefix matching."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from cds.errors import ConfigError
from cds.yaml_files import load_document

ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
SHIPPED_STATUSES = frozenset({"VERIFIED", "VERIFIED (secondary)"})
NO_SETS: Final[frozenset[str]] = frozenset()


def normalize(system: str, code: str) -> str:
    """The comparable form of a code: ICD-10-CM without dots and upper-cased (rules.md 3.1)."""
    code = code.strip()
    if system == ICD10CM:
        return code.replace(".", "").upper()
    return code


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class CodeEntry(_Strict):
    system: str = Field(min_length=1)
    code: str = Field(min_length=1)
    display: str
    match: Literal["exact", "prefix"]
    status: str
    verified_against: list[str] = Field(alias="verifiedAgainst", min_length=1)
    note: str = ""


class CarveOut(_Strict):
    system: str
    code: str
    reason: str


class LeftOut(_Strict):
    system: str
    code: str
    display: str = ""
    status: str
    reason: str
    note: str = ""


class ValueSetFile(_Strict):
    """The shape of one rules/valuesets/<id>.yaml file, as the importer writes it."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    title: str
    source: str
    generated_by: str = Field(alias="generatedBy")
    codes: list[CodeEntry]
    text_match: list[str] = Field(default_factory=list, alias="textMatch")
    text_match_on: list[str] = Field(default_factory=list, alias="textMatchOn")
    carve_out: list[CarveOut] = Field(default_factory=list, alias="carveOut")
    excluded: list[LeftOut] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class LocalEntry:
    """A code the site added to a value set (CDS_SITE_CONFIG): shown as local, with its note."""

    system: str
    code: str
    display: str
    note: str  # provenance: who mapped it, from what


@dataclass(frozen=True, slots=True)
class ValueSet:
    """One value set ready for matching."""

    id: str
    title: str
    exact: frozenset[tuple[str, str]]
    prefixes: frozenset[str]  # normalized ICD-10-CM stems matched with their descendants
    carve_out: frozenset[tuple[str, str]]
    text: tuple[str, ...]
    text_on: frozenset[str]
    displays: Mapping[tuple[str, str], str]
    # The file as read (codes as written, prefixes, carve-outs, text words): what the rule pages
    # and the FHIR ValueSet show; matching reads only the compiled fields above.
    file: ValueSetFile | None = None
    # The site's own codes among ``exact``, by (system, normalized code): marked as local
    # wherever the set is shown; the shipped, verified codes are the others.
    local: Mapping[tuple[str, str], LocalEntry] = field(default_factory=dict)

    def with_local(self, entries: list[LocalEntry]) -> ValueSet:
        """This set with the site's codes added (matched exactly, as the shipped ones are)."""
        keys = {(e.system, normalize(e.system, e.code)): e for e in entries}
        return replace(
            self,
            exact=self.exact | keys.keys(),
            displays={**self.displays, **{k: e.display for k, e in keys.items()}},
            local={**self.local, **keys},
        )

    def is_local(self, system: str, code: str) -> bool:
        """Whether the coding is one of the site's own codes, not a shipped one."""
        return (system, normalize(system, code)) in self.local

    def matches(self, system: str, code: str) -> bool:
        """Whether the coding (system, code) is a member."""
        norm = normalize(system, code)
        if (system, norm) in self.carve_out:
            return False
        if (system, norm) in self.exact:
            return True
        if system == ICD10CM:
            return any(norm.startswith(p) for p in self.prefixes)
        return False

    def matches_text(self, text: str) -> bool:
        """Whether free text names the concept (only sets with a ``textMatch`` list)."""
        lowered = text.lower()
        return any(word in lowered for word in self.text)

    def display(self, system: str, code: str) -> str | None:
        """The display this set ships for an exact member, if any."""
        return self.displays.get((system, normalize(system, code)))


def _compile(doc: ValueSetFile) -> ValueSet:
    exact: set[tuple[str, str]] = set()
    prefixes: set[str] = set()
    displays: dict[tuple[str, str], str] = {}
    for entry in doc.codes:
        norm = normalize(entry.system, entry.code)
        displays[(entry.system, norm)] = entry.display
        if entry.match == "prefix" and entry.system == ICD10CM:
            prefixes.add(norm)
        else:
            exact.add((entry.system, norm))
    carve = frozenset((c.system, normalize(c.system, c.code)) for c in doc.carve_out)
    text = tuple(word.lower() for word in doc.text_match)
    return ValueSet(
        doc.id,
        doc.title,
        frozenset(exact),
        frozenset(prefixes),
        carve,
        text,
        frozenset(doc.text_match_on),
        displays,
        file=doc,
    )


@dataclass(frozen=True, slots=True)
class _TextMatcher:
    """The text-matching sets that read one resource type."""

    sets: tuple[tuple[str, re.Pattern[str]], ...]
    # Most texts name none of the words: one search for all of the type's sets says so.
    anything: re.Pattern[str]

    def ids(self, text: str) -> frozenset[str]:
        lowered = text.lower()
        if not self.anything.search(lowered):
            return NO_SETS
        return frozenset(vs for vs, pattern in self.sets if pattern.search(lowered))


@dataclass(frozen=True)
class ValueSets:
    """All value sets by id, with a reverse index so one coding is looked up without scanning."""

    by_id: Mapping[str, ValueSet]
    # Built once in __post_init__ and only read after: what a call remembers lives in the
    # app's cds.record.matching.MatchMemo, never here (one catalogue may serve several apps).
    _exact: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict, repr=False)
    _prefix: dict[str, frozenset[str]] = field(default_factory=dict, repr=False)
    _text: dict[str, _TextMatcher] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        exact: dict[tuple[str, str], set[str]] = {}
        prefix: dict[str, set[str]] = {}
        text: dict[str, list[tuple[str, re.Pattern[str]]]] = {}
        for vs in self.by_id.values():
            for key in vs.exact:
                exact.setdefault(key, set()).add(vs.id)
            for stem in vs.prefixes:
                prefix.setdefault(stem, set()).add(vs.id)
            if vs.text:
                # One alternation per set: the same substring test as matches_text, in C.
                pattern = re.compile("|".join(re.escape(word) for word in vs.text))
                for resource_type in sorted(vs.text_on):
                    text.setdefault(resource_type, []).append((vs.id, pattern))
        self._exact.update({k: frozenset(v) for k, v in exact.items()})
        self._prefix.update({k: frozenset(v) for k, v in prefix.items()})
        self._text.update(
            {
                k: _TextMatcher(tuple(v), re.compile("|".join(p.pattern for _, p in v)))
                for k, v in text.items()
            }
        )

    def with_local(self, additions: Mapping[str, list[LocalEntry]]) -> ValueSets:
        """These sets with the site's codes added, indexed anew (once, at load)."""
        if not additions:
            return self
        return ValueSets(
            {
                vs_id: vs.with_local(additions[vs_id]) if vs_id in additions else vs
                for vs_id, vs in self.by_id.items()
            }
        )

    def __contains__(self, vs_id: object) -> bool:
        return vs_id in self.by_id

    def __getitem__(self, vs_id: str) -> ValueSet:
        return self.by_id[vs_id]

    def ids_for(self, system: str, code: str) -> frozenset[str]:
        """Ids of every value set the coding belongs to: dict lookups only, no scanning."""
        norm = normalize(system, code)
        found = set(self._exact.get((system, norm), ()))
        if system == ICD10CM:
            for end in range(1, len(norm) + 1):
                found.update(self._prefix.get(norm[:end], ()))
        if not found:
            return NO_SETS
        return frozenset(vs_id for vs_id in found if (system, norm) not in self[vs_id].carve_out)

    def ids_for_text(self, resource_type: str, text: str) -> frozenset[str]:
        """Ids of the text-matching sets for ``resource_type`` that ``text`` names a word of."""
        lookup = self.text_lookup(resource_type)
        return lookup(text) if lookup is not None else NO_SETS

    def text_lookup(self, resource_type: str) -> Callable[[str], frozenset[str]] | None:
        """:meth:`ids_for_text` for one resource type (None when no set reads its text)."""
        matcher = self._text.get(resource_type)
        return matcher.ids if matcher is not None else None


def read_valuesets(directory: Path, label_root: Path | None = None) -> tuple[ValueSets, list[str]]:
    """Load every ``*.yaml`` in ``directory``; problems are returned, not raised."""
    problems: list[str] = []
    sets: dict[str, ValueSet] = {}
    root = label_root or directory.parent.parent
    if not directory.is_dir():
        return ValueSets({}), [f"{directory}: value set directory not found"]
    for path in sorted(directory.glob("*.yaml")):
        label = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
        doc = load_document(path, label, ValueSetFile, problems)
        if doc is None:
            continue
        for i, entry in enumerate(doc.codes):
            if entry.status not in SHIPPED_STATUSES:
                problems.append(
                    f"{label}: codes[{i}].status: '{entry.status}' codes are not shipped; "
                    "move the code to 'excluded' with its reason"
                )
            if entry.match == "prefix" and entry.system != ICD10CM:  # prefixes are ICD-only
                problems.append(f"{label}: codes[{i}].match: prefix is only for ICD-10-CM")
        if doc.text_match and not doc.text_match_on:
            problems.append(f"{label}: textMatchOn: name the resource types the text match reads")
        if any(not word.strip() or "\n" in word for word in doc.text_match):
            problems.append(f"{label}: textMatch: words must be non-blank single lines")
        sets[doc.id] = _compile(doc)
    return ValueSets(sets), problems


def load_valuesets(directory: Path) -> ValueSets:
    """Load and validate, raising ``ConfigError`` with every problem."""
    sets, problems = read_valuesets(directory)
    if problems:
        raise ConfigError(problems)
    return sets
