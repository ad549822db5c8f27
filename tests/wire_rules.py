"""G-02/G-03 as a reusable check: no null, "", [] or {} anywhere but top-level cards/services."""

from __future__ import annotations

from typing import Any

ALLOWED_EMPTY_AT_TOP = frozenset({"cards", "services"})


def empty_values(value: Any, path: str = "$") -> list[str]:
    """Every JSON path whose value is null or empty (the spec forbids them in our output)."""
    found: list[str] = []
    if value is None or value in ("", [], {}):
        return [path]
    if isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}"
            if path == "$" and key in ALLOWED_EMPTY_AT_TOP and item == []:
                continue
            found.extend(empty_values(item, child))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(empty_values(item, f"{path}[{index}]"))
    return found
