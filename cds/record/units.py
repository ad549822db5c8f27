"""UCUM unit conversion for the measures the rules read: weight, HbA1c, B12 and 0-10 scores."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

SCORE = "{score}"

# (from unit, to unit) -> conversion; only pairs the clinical spec names (rules.md 3.3).
_CONVERSIONS: dict[tuple[str, str], Callable[[float], float]] = {
    ("kg", "kg"): lambda v: v,
    ("g", "kg"): lambda v: v / 1000.0,
    ("[lb_av]", "kg"): lambda v: v * 0.45359237,
    ("%", "%"): lambda v: v,
    # IFCC mmol/mol to NGSP % (rules.md 3.3).
    ("mmol/mol", "%"): lambda v: 0.0915 * v + 2.15,
    ("pg/mL", "pg/mL"): lambda v: v,
    ("ng/L", "pg/mL"): lambda v: v,
    # 1 pg/mL of cobalamin is about 0.738 pmol/L.
    ("pmol/L", "pg/mL"): lambda v: v / 0.738,
}

CANONICAL_UNITS = frozenset(to for _, to in _CONVERSIONS) | {SCORE}

# EHRs write these units in any letter case ("pg/ml", "PMOL/L", "mmol/Mol"); each spelling is
# read as the UCUM code. Only the units above are folded: any other unit stays unknown.
_SPELLINGS: dict[str, str] = {unit.casefold(): unit for pair in _CONVERSIONS for unit in pair}


def quantity_unit(quantity: dict[str, Any]) -> str | None:
    """The UCUM code of a Quantity, falling back to its human ``unit`` text."""
    code = quantity.get("code")
    if isinstance(code, str) and code.strip():
        return code.strip()
    unit = quantity.get("unit")
    if isinstance(unit, str) and unit.strip():
        return unit.strip()
    return None


def convert(value: float, unit: str | None, target: str) -> float | None:
    """``value`` in ``target`` units, or None when the unit is missing, unknown or out of range.

    Dimensionless 0-10 scores accept ``{score}`` or no unit at all (Synthea sends ``{score}``),
    and any other unit or a value outside 0..10 is rejected rather than guessed.
    """
    if target == SCORE:
        if unit not in (None, SCORE, "1", "score"):
            return None
        return value if 0 <= value <= 10 else None
    if unit is None:
        return None
    conversion = _CONVERSIONS.get((_SPELLINGS.get(unit.casefold(), unit), target))
    return conversion(value) if conversion is not None else None
