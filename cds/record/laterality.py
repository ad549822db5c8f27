"""Laterality from ICD-10-CM laterality digits or from body-site text (rules.md 3.5)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

from cds.valuesets import ICD10CM, normalize

Side = Literal["left", "right", "bilateral"]

# Normalized ICD-10-CM stems whose single final character encodes the side.
_ICD_SIDES: dict[str, dict[str, Side]] = {
    "M543": {"1": "right", "2": "left"},
    "M544": {"1": "right", "2": "left"},
    "M2137": {"1": "right", "2": "left"},
    "M7967": {"1": "right", "2": "left", "4": "right", "5": "left"},
    "M7960": {"4": "right", "5": "left"},
    "M2557": {"1": "right", "2": "left"},
    "M2555": {"1": "right", "2": "left"},
    "M706": {"1": "right", "2": "left"},
    "M707": {"1": "right", "2": "left"},
    "M1907": {"1": "right", "2": "left"},
    "I8381": {"1": "right", "2": "left", "3": "bilateral"},
    **{f"G57{n}": {"1": "right", "2": "left", "3": "bilateral"} for n in range(10)},
}

_WORDS = re.compile(r"\b(left|right|bilateral|both)\b")
_LOWER_LIMB = re.compile(
    r"\b(foot|feet|toes?|heel|sole|plantar|ankle|leg|legs|calf|thigh|knee|lower (limb|extremity))\b"
)
_FOOT = re.compile(
    r"\b(foot|feet|forefoot|midfoot|hindfoot|toes?|hallux|heels?|soles?|plantar|instep|metatarsals?)\b"
)
_LUMBAR = re.compile(r"\b(lumbar|lumbosacral|l[1-5])\b")
# Recognised sites outside the lower limb. A site must name one of these (and no lower-limb
# part) to take a symptom out of the leg: unrecognised or side-only text ("Left") keeps it.
_ELSEWHERE = re.compile(
    r"\b(hands?|fingers?|thumbs?|wrists?|forearms?|arms?|elbows?|shoulders?|upper (limb|extremity)"
    r"|axilla|neck|cervical|face|facial|head|scalp|lips?|tongue|mouth|eyes?|ears?|nose|chest"
    r"|thorax|thoracic|trunk|abdomen|abdominal|breasts?|back|spine|lumbar|flank)\b"
)


def side_of_code(system: str, code: str) -> Side | None:
    """The side an ICD-10-CM code states, if it states one."""
    if system != ICD10CM:
        return None
    norm = normalize(system, code)
    sides = _ICD_SIDES.get(norm[:-1])
    return sides.get(norm[-1]) if sides else None


def side_of_text(text: str) -> Side | None:
    """The side named in body-site text ("Left foot", "both feet")."""
    words = set(_WORDS.findall(text.lower()))
    if "bilateral" in words or "both" in words or {"left", "right"} <= words:
        return "bilateral"
    if "left" in words:
        return "left"
    if "right" in words:
        return "right"
    return None


def combine(sides: Iterable[Side | None]) -> Side | None:
    """One side from several body sites of one record: a left and a right site is bilateral."""
    found = {s for s in sides if s is not None}
    if "bilateral" in found or {"left", "right"} <= found:
        return "bilateral"
    return next(iter(found), None)


def record_side(
    code_sides: Iterable[Side | None], site_sides: Iterable[Side | None]
) -> Side | None:
    """The side of one record whose code and body site may each state one (rules.md 3.5).

    A record that contradicts itself (the code says right, the body site says left) has an
    unknown side: bilateral needs two records or an explicitly bilateral code or site, never a
    conflict inside one record (which would raise RF-01 at critical on a typing slip).
    """
    stated = {s for s in (combine(code_sides), combine(site_sides)) if s is not None}
    return next(iter(stated)) if len(stated) == 1 else None


def is_lower_limb(text: str) -> bool:
    """Whether body-site text names the lower limb."""
    return _LOWER_LIMB.search(text.lower()) is not None


def is_lumbar(text: str) -> bool:
    """Whether body-site text names the lumbar spine."""
    return _LUMBAR.search(text.lower()) is not None


def is_outside_lower_limb(text: str) -> bool:
    """Whether body-site text names a part outside the lower limb, and none of it ("left hand")."""
    lowered = text.lower()
    return _ELSEWHERE.search(lowered) is not None and _LOWER_LIMB.search(lowered) is None


def is_foot(text: str) -> bool:
    """Whether body-site text names the foot (not the leg, and never the hand)."""
    return _FOOT.search(text.lower()) is not None
