"""Lenient shapes: a single value where R4 repeats an element, or a one-item list where it does
not, reshaped by the cardinality the fhir.resources R4B models declare.

Real EHRs and older tools send ``"category": {...}`` for a ``0..*`` element, or ``"gender":
["male"]`` for a ``0..1`` one; the meaning is not in doubt, only the shape. Validation says
where it failed, so only those places are looked at: a resource that validates is never walked.
"""

from __future__ import annotations

import copy
import functools
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from pydantic import ValidationError

Loc = tuple[str | int, ...]

# Each round reshapes the outermost mismatches validation reports (it does not look inside a
# value of the wrong shape), so a round per nesting level; real payloads need one or two.
MAX_ROUNDS: Final = 6
RESOURCE: Final = "Resource"  # the type of contained resources and Bundle.entry.resource
UNKNOWN_ELEMENT: Final = "(not an R4 element)"


@dataclass(frozen=True, slots=True)
class Element:
    """One element of the R4 definition: whether it repeats, and its complex type if it has one."""

    repeats: bool
    type_name: (
        str | None
    )  # "CodeableConcept", "MedicationRequestDispenseRequest"...; None: primitive


@dataclass(frozen=True, slots=True)
class Repair:
    """One element reshaped: where (``loc``, list positions included), and its element path."""

    loc: Loc
    path: str  # "dosageInstruction.timing.event": element names only, never a value or position
    wrap: bool  # True: a single value became a one-item list; False: a one-item list its value


def _element_of(annotation: Any) -> Element:
    """Cardinality and type from a field's annotation: ``List[...]`` is what R4's ``*`` became."""
    repeats = False
    type_name: str | None = None
    pending = [annotation]
    while pending:
        current = pending.pop()
        origin = typing.get_origin(current)
        if origin is typing.Union or origin is types.UnionType:
            pending.extend(typing.get_args(current))
        elif origin is list:
            repeats = True
            pending.extend(typing.get_args(current))
        elif isinstance(current, type) and current.__name__.endswith("Type"):
            # fhir_core names each complex type's placeholder "<Model>Type".
            type_name = current.__name__.removesuffix("Type")
    return Element(repeats, type_name)


def _mismatch(found: Element, value: Any) -> bool | None:
    """True: wrap ``value``; False: unwrap it; None: its shape fits (or cannot be repaired)."""
    if found.repeats:
        return True if value is not None and not isinstance(value, list) else None
    return False if isinstance(value, list) and len(value) == 1 else None


def apply(doc: dict[str, Any], repair: Repair) -> None:
    """Reshape ``doc`` in place as ``repair`` says (KeyError/IndexError/TypeError if it cannot)."""
    *head, last = repair.loc
    parent: Any = doc
    for step in head:
        parent = parent[step]
    parent[last] = [parent[last]] if repair.wrap else parent[last][0]


def replay(raw: dict[str, Any], repairs: tuple[Repair, ...]) -> dict[str, Any] | None:
    """A reshaped copy of ``raw`` by ``repairs`` found earlier on the same content; None if they
    do not fit (then the caller validates again)."""
    doc = copy.deepcopy(raw)
    try:
        for repair in repairs:
            apply(doc, repair)
    except (KeyError, IndexError, TypeError):
        return None
    return doc


@dataclass(frozen=True, slots=True)
class Repaired:
    """A resource that validates once reshaped: its model, its reshaped copy, what was done."""

    model: Any
    doc: dict[str, Any]
    repairs: tuple[Repair, ...]


class Definitions:
    """The R4 element definitions as the R4B models declare them, looked up by path.

    ``model_class`` (``cds.fhir.model_class``, the one fhir.resources import site) turns a type
    name into its model, or None.
    """

    def __init__(self, model_class: Callable[[str], Any | None]) -> None:
        self._model_class = model_class
        # Bounded: the paths looked up follow the payload's keys.
        self.element = functools.lru_cache(maxsize=4096)(self._element)
        self._fields = functools.lru_cache(maxsize=512)(self._fields_of)

    def _fields_of(self, type_name: str) -> dict[str, Element] | None:
        """The elements of one R4B model by their JSON name; None when R4B has no such model."""
        cls = self._model_class(type_name)
        if cls is None:
            return None
        return {
            (info.alias or name): _element_of(info.annotation)
            for name, info in cls.model_fields.items()
        }

    def _element(self, resource_type: str, path: tuple[str, ...]) -> Element | None:
        """The element at ``path`` (names, no positions) inside a ``resource_type`` resource, or
        None when R4 defines no such element. Remembered per (resource type, path)."""
        if not path:
            return Element(repeats=False, type_name=resource_type)
        owner = self.element(resource_type, path[:-1])
        if owner is None or owner.type_name is None or owner.type_name == RESOURCE:
            return None
        fields = self._fields(owner.type_name)
        return fields.get(path[-1]) if fields is not None else None

    def find_repair(self, resource_type: str, doc: dict[str, Any], loc: Loc) -> Repair | None:
        """The reshaping that answers one validation error at ``loc``, or None when none does."""
        walk = _Walk(self, resource_type)
        value: Any = doc
        for index, step in enumerate(loc):
            if isinstance(step, int):
                if not isinstance(value, list) or not 0 <= step < len(value):
                    return None
                value = value[step]
            else:
                if not isinstance(value, dict) or step not in value:
                    return None
                found = walk.step(step)
                if found is None:
                    return None
                value = value[step]
                wrap = _mismatch(found, value)
                if wrap is not None:
                    return Repair(loc[: index + 1], ".".join(walk.shown), wrap)
            walk.enter(value)
        return None

    def element_path(
        self, resource_type: str, doc: dict[str, Any], loc: Loc, *, extra: bool = False
    ) -> str:
        """``loc`` in ``doc`` as an element path: R4 element names only, no positions; safe to
        log. A name R4 does not define is the sender's text, so it is never shown: for an
        ``extra`` key (pydantic's extra_forbidden) a marker stands in its place, and any other
        step past the known elements is the validator's own (such as ``root``)."""
        walk = _Walk(self, resource_type)
        value: Any = doc
        for step in loc:
            if isinstance(step, int):
                value = value[step] if isinstance(value, list) and 0 <= step < len(value) else None
            else:
                if walk.step(step) is None:
                    if extra:
                        return ".".join([*walk.shown, UNKNOWN_ELEMENT])
                    break
                value = value.get(step) if isinstance(value, dict) else None
            walk.enter(value)
        return ".".join(walk.shown) or "(resource)"

    def _paths(self, resource_type: str, doc: dict[str, Any], error: ValidationError) -> list[str]:
        return sorted(
            {
                self.element_path(
                    resource_type, doc, problem["loc"], extra=problem["type"] == "extra_forbidden"
                )
                for problem in error.errors(
                    include_url=False, include_context=False, include_input=False
                )
            }
        )

    def repair(self, cls: Any, raw: dict[str, Any], error: ValidationError) -> Repaired | list[str]:
        """``raw`` (which failed with ``error``) reshaped until it validates as ``cls``; else the
        element paths that still fail, sorted. ``raw`` itself is never changed."""
        resource_type = raw["resourceType"]
        doc: dict[str, Any] | None = None
        done: list[Repair] = []
        for _ in range(MAX_ROUNDS):
            target = doc if doc is not None else raw
            locs = [
                problem["loc"]
                for problem in error.errors(
                    include_url=False, include_context=False, include_input=False
                )
            ]
            found: dict[Loc, Repair] = {}
            for loc in locs:
                fix = self.find_repair(resource_type, target, loc)
                if fix is not None:
                    found.setdefault(fix.loc, fix)
            if not found:
                return self._paths(resource_type, target, error)
            if doc is None:
                doc = copy.deepcopy(raw)
            try:
                for fix in found.values():
                    apply(doc, fix)
            except (KeyError, IndexError, TypeError):  # overlapping places: not one reshaping
                return self._paths(resource_type, target, error)
            done.extend(found.values())
            try:
                return Repaired(cls.model_validate(doc), doc, tuple(done))
            except ValidationError as exc:
                error = exc
        return self._paths(resource_type, doc if doc is not None else raw, error)


class _Walk:
    """Follows a location through a resource and its R4 definition, element by element."""

    def __init__(self, definitions: Definitions, resource_type: str) -> None:
        self.definitions = definitions
        self.resource_type = resource_type
        self.path: tuple[str, ...] = ()
        self.shown: list[str] = []
        self.current: Element | None = Element(repeats=False, type_name=resource_type)

    def enter(self, value: Any) -> None:
        # A nested resource (contained, Bundle.entry.resource) is read by its own type.
        current = self.current
        if current is not None and current.type_name == RESOURCE and isinstance(value, dict):
            nested = value.get("resourceType")
            if isinstance(nested, str):
                self.resource_type, self.path = nested, ()
                self.current = Element(repeats=False, type_name=nested)

    def step(self, name: str) -> Element | None:
        self.current = self.definitions.element(self.resource_type, (*self.path, name))
        if self.current is not None:
            self.path = (*self.path, name)
            self.shown.append(name)
        return self.current
