"""Our own YAML content files (services, cards, value sets): read, validate, name every problem."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

Document = TypeVar("Document", bound=BaseModel)


def _path(loc: tuple[int | str, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


def validation_problems(exc: ValidationError, label: str) -> list[str]:
    """One ``file: path: message`` line per pydantic error (house rule 3)."""
    return [f"{label}: {_path(tuple(e['loc'])) or '(file)'}: {e['msg']}" for e in exc.errors()]


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One line with the place and the parser's complaint (its own text names no file)."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        what = " ".join(part for part in (exc.context, exc.problem) if part)
        return f"line {mark.line + 1}, column {mark.column + 1}: not valid YAML: {what}"
    return f"not valid YAML: {' '.join(str(exc).split())}"


def load_document(
    path: Path, label: str, model: type[Document], problems: list[str]
) -> Document | None:
    """``path`` validated as ``model`` whose ``id`` must be the file name; None on a problem."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        problems.append(f"{label}: {_yaml_problem(exc)}")
        return None
    except OSError as exc:
        problems.append(f"{label}: cannot be read: {exc}")
        return None
    try:
        document = model.model_validate(raw)
    except ValidationError as exc:
        problems.extend(validation_problems(exc, label))
        return None
    ident = getattr(document, "id", None)
    if ident != path.stem:
        problems.append(f"{label}: id: '{ident}' does not match the file name '{path.stem}'")
    return document
