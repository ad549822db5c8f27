"""Our own YAML content files (services, cards, value sets): read, validate, name every problem.

Every problem is one ``file:line:column: path: message`` line, the form compilers and linters
print, so an editor's terminal or problem matcher jumps straight to the place.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

Document = TypeVar("Document", bound=BaseModel)
# libyaml when PyYAML was built with it; the pure-Python parser reads the same documents.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE = "<<"
# "rules/back-to-foot.yaml: rules[0].card: unknown card 'x'": a problem not located yet.
_UNLOCATED = re.compile(r"^(?P<label>[^\s:]+\.yaml): (?P<path>[^\s:]+): ")
_PATH_PART = re.compile(r"\[(\d+)\]|([^.\[\]]+)")
_SUGGESTION_CUTOFF = 0.6


def _path(loc: Sequence[int | str]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


@dataclass(frozen=True)
class Place:
    """Where something starts in a file, counted from 1 as editors count."""

    line: int
    column: int

    @classmethod
    def of(cls, mark: yaml.Mark) -> Place:
        return cls(mark.line + 1, mark.column + 1)

    def __str__(self) -> str:
        return f"{self.line}:{self.column}"


class Places:
    """Where each value and each mapping key of one YAML document starts, by its path."""

    def __init__(self, root: yaml.Node | None) -> None:
        self.values: dict[tuple[str, ...], Place] = {(): Place(1, 1)}
        self.keys: dict[tuple[str, ...], Place] = {}
        if root is not None:
            self._walk(root, (), frozenset())

    def _walk(self, node: yaml.Node, path: tuple[str, ...], above: frozenset[int]) -> None:
        if id(node) in above:  # an alias of an enclosing anchor: already walked
            return
        self.values.setdefault(path, Place.of(node.start_mark))
        above |= {id(node)}
        if isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._walk(item, (*path, str(i)), above)
        elif isinstance(node, yaml.MappingNode):
            for key, value in self._pairs(node):
                self.keys.setdefault((*path, key.value), Place.of(key.start_mark))
                self._walk(value, (*path, key.value), above)

    @staticmethod
    def _pairs(node: yaml.MappingNode) -> Iterator[tuple[yaml.Node, yaml.Node]]:
        # A mapping's own keys first: they win over keys merged in with "<<: *anchor".
        merged: list[yaml.Node] = []
        for key, value in node.value:
            if key.value == _MERGE:
                merged += value.value if isinstance(value, yaml.SequenceNode) else [value]
            else:
                yield key, value
        for source in merged:
            if isinstance(source, yaml.MappingNode):
                yield from Places._pairs(source)

    def find(self, parts: Sequence[int | str], *, key: bool = False) -> Place:
        """The place of the deepest part of ``parts`` the document holds; a part it does not
        hold (a missing key, or a validator's own label) leaves the place at its parent."""
        found: tuple[str, ...] = ()
        for part in parts:
            if (*found, str(part)) in self.values:
                found = (*found, str(part))
        if key and found in self.keys and len(found) == len(parts):
            return self.keys[found]
        return self.values[found]


def _yaml_problem(exc: yaml.YAMLError, label: str) -> str:
    """One line with the place and the parser's complaint (its own text names no file)."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f"{label}:{Place.of(mark)}" if mark is not None else label
        what = exc.problem or exc.context or "not parseable"
        context = exc.context_mark
        if exc.context and exc.problem and context is not None and context is not mark:
            what += f" ({exc.context}, started at line {context.line + 1}, column "
            what += f"{context.column + 1})"
        return f"{where}: not valid YAML: {what}"
    return f"{label}: not valid YAML: {' '.join(str(exc).split())}"


def _schema_branches(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> Iterator[Any]:
    while "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
    yield schema
    for combinator in ("anyOf", "oneOf", "allOf"):
        for branch in schema.get(combinator, ()):
            yield from _schema_branches(branch, defs)


def _inside(branch: Mapping[str, Any], part: int | str) -> list[Any]:
    """The schemas of what ``branch`` holds at ``part`` (a key, or an index)."""
    if isinstance(part, int):
        return [branch["items"]] if isinstance(branch.get("items"), dict) else []
    properties = branch.get("properties", {})
    if part in properties:
        return [properties[part]]
    if isinstance(branch.get("additionalProperties"), dict):
        return [branch["additionalProperties"]]
    # A mapping whose keys are checked by pattern (rule ids): any of its values.
    return list(branch.get("patternProperties", {}).values())


def allowed_keys(model: type[BaseModel], parts: Sequence[int | str]) -> list[str]:
    """The keys the file's schema allows in the mapping at ``parts`` (aliases, as written)."""
    schema = model.model_json_schema(by_alias=True)
    defs = schema.get("$defs", {})
    current: list[Mapping[str, Any]] = [schema]
    for part in parts:
        inner = [
            found
            for branch in (b for s in current for b in _schema_branches(s, defs))
            for found in _inside(branch, part)
        ]
        # A part the schema does not know is a validator's label, not a key: stay put.
        current = inner or current
    names = {
        name for s in current for b in _schema_branches(s, defs) for name in b.get("properties", {})
    }
    return sorted(names)


def _suggestion(error: ErrorDetails, model: type[BaseModel]) -> tuple[str | None, list[str]]:
    """The valid key nearest a misspelt one (None when none is near), and every valid key."""
    loc = tuple(error["loc"])
    allowed = allowed_keys(model, loc[:-1])
    close = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=_SUGGESTION_CUTOFF)
    return (close[0] if close else None), allowed


def validation_problems(
    exc: ValidationError, label: str, model: type[BaseModel], places: Places
) -> list[str]:
    """One ``file:line:column: path: message`` line per pydantic error (house rule 3)."""
    errors = exc.errors(include_url=False)
    messages: dict[int, str] = {}
    suggested = set()
    for i, error in enumerate(errors):
        loc = tuple(error["loc"])
        if error["type"] == "extra_forbidden" and loc:
            near, allowed = _suggestion(error, model)
            if near is None:
                messages[i] = f"unknown key '{loc[-1]}'; the keys here are {', '.join(allowed)}"
            else:
                messages[i] = f"unknown key '{loc[-1]}'; did you mean '{near}'?"
                suggested.add((*loc[:-1], near))
    lines = []
    for i, error in enumerate(errors):
        loc = tuple(error["loc"])
        if error["type"] == "missing" and loc in suggested:
            continue  # the misspelt key's line already names it
        message = messages.get(i)
        if message is None and error["type"] == "missing" and loc:
            message = f"the key '{loc[-1]}' is missing"
        elif message is None:
            message = str(error["msg"]).removeprefix("Value error, ")
        place = places.find(loc, key=error["type"] == "extra_forbidden")
        lines.append(f"{label}:{place}: {_path(loc) or '(file)'}: {message}")
    return lines


def located(
    label: str, places: Places, loc: Sequence[int | str], message: str, *, key: bool = False
) -> str:
    """One ``file:line:column: path: message`` line for a check made after validation."""
    return f"{label}:{places.find(loc, key=key)}: {_path(loc) or '(file)'}: {message}"


def _parse(text: str) -> tuple[Any, yaml.Node | None]:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        return (loader.construct_document(node) if node is not None else None), node
    finally:
        loader.dispose()


def load_required_document(
    folder: Path, name: str, model: type[Document], problems: list[str], missing: str
) -> Document | None:
    """The one ``name`` file a folder must hold, as ``model``; ``missing`` says why it must."""
    path = folder / name
    label = f"{folder.name}/{name}"
    if not path.is_file():
        problems.append(f"{label}: {missing}")
        return None
    return load_document(path, label, model, problems)


# Turns the parsed YAML into what the model validates, with the problems found on the way, each
# at its path in the file (cds/rules/params.py puts tuned values in place of "$name").
Prepare = Callable[[Any], tuple[Any, list[tuple[tuple[int | str, ...], str]]]]


def parse_document(
    text: str, label: str, model: type[Document], problems: list[str], prepare: Prepare | None
) -> tuple[Document | None, Places | None]:
    """``text`` validated as ``model`` (None on a problem), with the places of its values so
    that checks made later can name them too (None when the text is not YAML)."""
    try:
        raw, root = _parse(text)
    except yaml.YAMLError as exc:
        problems.append(_yaml_problem(exc, label))
        return None, None
    places = Places(root)
    if prepare is not None:
        raw, found = prepare(raw)
        problems.extend(located(label, places, loc, why) for loc, why in found)
        if found:
            return None, places
    try:
        return model.model_validate(raw), places
    except ValidationError as exc:
        problems.extend(validation_problems(exc, label, model, places))
        return None, places


def load_document(
    path: Path,
    label: str,
    model: type[Document],
    problems: list[str],
    prepare: Prepare | None = None,
) -> Document | None:
    """``path`` validated as ``model`` whose ``id`` must be the file name; None on a problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{label}: cannot be read: {exc}")
        return None
    document, places = parse_document(text, label, model, problems, prepare)
    if document is None or places is None:
        return None
    ident = getattr(document, "id", None)
    if ident != path.stem:
        place = places.find(("id",))
        problems.append(
            f"{label}:{place}: id: '{ident}' does not match the file name '{path.stem}'"
        )
    return document


def _parts(path: str) -> list[int | str]:
    return [int(index) if index else name for index, name in _PATH_PART.findall(path)]


def locate(problems: Sequence[str], directories: Sequence[Path]) -> list[str]:
    """``problems`` with the line and column of each ``file: path: message`` line's path.

    The checks across files (an unknown rule, card or value set) name a file and a path; the
    file is read again here, only when there are problems, to find the place. A file label
    starts with the name of one of ``directories`` ("rules/valuesets/x.yaml").
    """
    found: dict[str, Places | None] = {}
    located = []
    for problem in problems:
        match = _UNLOCATED.match(problem)
        if match is None:
            located.append(problem)
            continue
        label = match["label"]
        if label not in found:
            found[label] = _places(label, directories)
        places = found[label]
        if places is None:
            located.append(problem)
            continue
        place = places.find(_parts(match["path"]))
        located.append(f"{label}:{place}: {problem[len(label) + 2 :]}")
    return located


def _places(label: str, directories: Sequence[Path]) -> Places | None:
    head, _, rest = label.partition("/")
    for directory in directories:
        path = directory / rest
        if directory.name == head and path.is_file():
            try:
                return Places(_parse(path.read_text(encoding="utf-8"))[1])
            except (OSError, UnicodeDecodeError, yaml.YAMLError):
                return None
    return None
