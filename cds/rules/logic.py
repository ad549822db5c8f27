"""Three-valued (Kleene/CQL) truth with the evidence that made a clause true."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from cds.record import Entry


class Tri(Enum):
    """TRUE, FALSE or UNKNOWN (missing data is never FALSE and never TRUE)."""

    TRUE = "true"
    FALSE = "false"
    UNKNOWN = "unknown"

    def __invert__(self) -> Tri:
        if self is Tri.UNKNOWN:
            return Tri.UNKNOWN
        return Tri.FALSE if self is Tri.TRUE else Tri.TRUE


def _kleene(values: Iterable[Tri], decisive: Tri, otherwise: Tri) -> Tri:
    # Identity checks, not a set: hashing an Enum member runs Python code, on every node of
    # every rule of every call.
    result = otherwise
    for value in values:
        if value is decisive:
            return decisive
        if value is Tri.UNKNOWN:
            result = Tri.UNKNOWN
    return result


def all_of(values: Iterable[Tri]) -> Tri:
    """Kleene AND: any FALSE is FALSE; else any UNKNOWN is UNKNOWN; else TRUE."""
    return _kleene(values, Tri.FALSE, Tri.TRUE)


def any_of(values: Iterable[Tri]) -> Tri:
    """Kleene OR: any TRUE is TRUE; else any UNKNOWN is UNKNOWN; else FALSE."""
    return _kleene(values, Tri.TRUE, Tri.FALSE)


@dataclass(frozen=True, slots=True)
class Result:
    """A truth value and, when TRUE, the entries (and measurements) that support it."""

    truth: Tri
    evidence: tuple[Entry, ...] = ()
    # What a fact measured, in words a clinician checks against the chart (e.g. the weights).
    notes: tuple[str, ...] = ()

    # Kept by @dataclass, which writes an __init__ only when the class has none: its frozen
    # one sets each field through ``object.__setattr__`` looked up by name, and a small call
    # makes some 30 results (410 -> 275 ns each). The fields' slots are set here directly,
    # which is what that does; assigning to a field afterwards still raises.
    def __init__(
        self, truth: Tri, evidence: tuple[Entry, ...] = (), notes: tuple[str, ...] = ()
    ) -> None:
        _SET_TRUTH(self, truth)
        _SET_EVIDENCE(self, evidence)
        _SET_NOTES(self, notes)

    @property
    def true(self) -> bool:
        return self.truth is Tri.TRUE


# The slots' own setters (member descriptors), which a frozen class's __setattr__ bypasses.
_SET_TRUTH = vars(Result)["truth"].__set__
_SET_EVIDENCE = vars(Result)["evidence"].__set__
_SET_NOTES = vars(Result)["notes"].__set__


FALSE = Result(Tri.FALSE)
UNKNOWN = Result(Tri.UNKNOWN)


def found(entries: Iterable[Entry], *, available: bool) -> Result:
    """TRUE with the entries if any; otherwise FALSE, or UNKNOWN when the data was unavailable."""
    hits = tuple(entries)
    if hits:
        return Result(Tri.TRUE, hits)
    return FALSE if available else UNKNOWN
