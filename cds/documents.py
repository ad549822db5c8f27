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


def load_document(
    path: Path, label: str, model: type[Document], problems: list[str]
) -> Document | None:
    """``path`` validated as ``model`` whose ``id`` must be the file name; None on a problem."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        problems.append(f"{label}: not valid YAML: {exc}")
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
