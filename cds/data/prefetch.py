"""What the CDS Client prefetched, read per key: data, no data, or a key to fetch (P-09..P-14)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any, Final, TypedDict, overload

import msgspec
import orjson

from cds.request_json import EntryNotJson


class PrefetchState(StrEnum):
    """What one prefetch value means for the service."""

    data = "data"  # resources to use (possibly with a next page still to read)
    no_data = "no-data"  # satisfied and empty (P-12): do not re-query
    needs_fetch = "needs-fetch"  # absent, errored or unusable (P-11, P-13): fetch or 412


@dataclass(slots=True)
class Classified:
    """One prefetch key's value, read: its resources, a next page, or why it is unusable.

    Not frozen: it lives for one call and nothing changes it, and a frozen dataclass's
    ``__init__`` (one ``object.__setattr__`` per field) cost three times as much, for every
    prefetch key of every call."""

    state: PrefetchState
    # A Bundle's are a BundleResources: listed only when something asks for them.
    resources: Sequence[dict[str, Any]] = field(default_factory=list)
    next_url: str | None = None
    reason: str | None = None
    errored: bool = False  # the client reported an error prefetching it (P-13)


ABSENT: Any = object()
"""Stands for a prefetch key the client did not send (P-11)."""


def next_link(bundle: Mapping[str, Any]) -> str | None:
    """The URL of a Bundle's ``next`` link (P-14), if any."""
    links = bundle.get("link")
    if not isinstance(links, list):
        return None
    for link in links:
        # A dict first: the ABC check costs a microsecond, for every Bundle of every call.
        if (type(link) is dict or isinstance(link, Mapping)) and link.get("relation") == "next":
            url = link.get("url")
            if isinstance(url, str) and url:
                return url
    return None


# The search member of nearly every entry a FHIR server sends: compared whole (one C call)
# before the member is looked into.
_MATCH_SEARCH: Any = {"mode": "match"}


class _ResourceHead(TypedDict, total=False):
    """What the record's sift reads of an entry's resource before deciding to read it whole:
    its type, and the members that hold a main concept (``cds.record.matching.CODE_FIELDS``)
    left undecoded, since the sift knows most concepts by their bytes. Decoded as a dict
    holding only the members sent."""

    resourceType: Any
    code: msgspec.Raw
    valueCodeableConcept: msgspec.Raw
    performerType: msgspec.Raw
    medicationCodeableConcept: msgspec.Raw


class _EntryHead(TypedDict, total=False):
    resource: _ResourceHead | list[msgspec.Raw] | str | int | float | bool | None


# Any JSON value decodes: an entry of another shape is a head the sift cannot read, as the same
# entry decoded whole would be.
_HEAD = msgspec.json.Decoder(_EntryHead | list[msgspec.Raw] | str | int | float | bool | None)


class _TypeHead(TypedDict, total=False):
    resourceType: Any


class _ReadHead(TypedDict, total=False):
    """What :func:`entry_resource` reads of an entry to tell whether its resource is read: the
    resource's type and the entry's search member, decoded as orjson decodes them."""

    resource: _TypeHead | list[msgspec.Raw] | str | int | float | bool | None
    search: Any


_READ_HEAD = msgspec.json.Decoder(_ReadHead | list[msgspec.Raw] | str | int | float | bool | None)


def decoded(entry: Any) -> Any:
    """A Bundle entry as JSON values: one ``cds.request_json`` left undecoded read now."""
    if type(entry) is not msgspec.Raw:
        return entry
    try:
        return orjson.loads(memoryview(entry))
    except orjson.JSONDecodeError as exc:
        raise EntryNotJson(f"The body is not valid JSON: {exc}") from exc


def _read_entries(entries: Iterable[Any]) -> tuple[list[dict[str, Any]], int]:
    """The resources ``entries`` hold that are read (see :func:`entry_resource`), and how many
    entries were outcomes."""
    resources: list[dict[str, Any]] = []
    outcomes = 0
    for entry in entries:
        read = _read_entry(entry)
        if read is _OUTCOME:
            outcomes += 1
        elif read is not None:
            resources.append(read)
    return resources, outcomes


def entry_resource(entry: Any) -> dict[str, Any] | None:
    """The resource one Bundle entry holds, when it is read (P-09, P-13): an object with a
    string ``resourceType`` that is no OperationOutcome, in an entry whose search mode is not
    ``outcome``; None for any other entry."""
    read = _read_entry(entry)
    return None if read is _OUTCOME else read


class _Unread(Enum):
    """An entry that holds a resource which is not read: an outcome (P-13)."""

    OUTCOME = "outcome"


_OUTCOME: Final = _Unread.OUTCOME  # read as a global: the record asks for every kept entry


def _read_entry(entry: Any) -> dict[str, Any] | _Unread | None:
    """What :func:`entry_resource` reads of ``entry``: its resource, ``OUTCOME`` for an
    OperationOutcome or an entry of search mode ``outcome``, None for anything else."""
    if type(entry) is msgspec.Raw:
        entry = decoded(entry)
    # The common case decided first: subscripts in a ``try`` (free when nothing is raised)
    # instead of a ``get`` and a type check per level. JSON only ever gives dicts, lists,
    # strings, numbers, booleans and None, and any of them but a dict raises KeyError or
    # TypeError when subscripted with a string.
    try:
        resource = entry["resource"]
        resource_type = resource["resourceType"]
    except (KeyError, TypeError):
        return None
    if not isinstance(resource, dict) or not isinstance(resource_type, str):
        return None
    search = entry.get("search")
    if resource_type == "OperationOutcome" or (
        search is not None
        and search != _MATCH_SEARCH
        and isinstance(search, dict)
        and search.get("mode") == "outcome"
    ):
        return _OUTCOME
    return resource


class BundleResources(Sequence[dict[str, Any]]):
    """The resources of a Bundle's entries that are read (:func:`entry_resource`), listed the
    first time they are asked for.

    Most of a big chart's thousands of entries hold resources no rule reads: the record takes
    ``entries`` as they came and reads each one once, dropping most of them in the same pass
    (``cds.record.build.RecordBuilder.sift``), so nothing walks them just to list them.
    """

    __slots__ = ("_decoded", "_listed", "entries", "raw")

    def __init__(self, entries: list[Any]) -> None:
        self.entries = entries
        self._listed: list[dict[str, Any]] | None = None
        # Left undecoded by cds.request_json: the sift reads each one's head (``heads``) first.
        self.raw = bool(entries) and type(entries[0]) is msgspec.Raw
        # An undecoded entry's resource, by the entry's id, once read: the record tells an
        # unreadable resource by its identity, so every reader must get the same dict.
        self._decoded: dict[int, dict[str, Any] | None] = {}

    def heads(self) -> Iterator[Any]:
        """Each entry, in order, as far as the record's sift reads it before deciding to read
        it whole: the entry itself when it was decoded, else its head (the resource's type
        decoded by msgspec and its concept members each a ``msgspec.Raw``; an entry of another
        shape as whatever JSON value it is)."""
        if self.raw:
            return map(_HEAD.decode, self.entries)
        return iter(self.entries)

    def resource_of(self, entry: Any) -> dict[str, Any] | None:
        """:func:`entry_resource`: what the record reads of an entry it does not drop."""
        if type(entry) is not msgspec.Raw:
            return entry_resource(entry)
        key = id(entry)
        if key not in self._decoded:
            self._decoded[key] = entry_resource(entry)
        return self._decoded[key]

    def listed(self) -> list[dict[str, Any]]:
        if self._listed is None:
            if self.raw:
                resource_of = self.resource_of
                self._listed = [r for e in self.entries if (r := resource_of(e)) is not None]
            else:
                self._listed = _read_entries(self.entries)[0]
        return self._listed

    def holds_any(self) -> bool:
        """Whether an entry holds a resource that is read: usually the first one says so."""
        if self.raw:
            return any(map(_holds_read_resource, self.entries))
        resource_of = self.resource_of
        # A loop, not any() over a generator (made for every Bundle of every call).
        for entry in self.entries:  # noqa: SIM110
            if resource_of(entry) is not None:
                return True
        return False

    def __len__(self) -> int:
        return len(self.listed())

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...
    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        return self.listed()[index]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.listed())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, BundleResources):
            other = other.listed()
        return self.listed() == other if isinstance(other, list) else NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable like the list it stands for

    def __repr__(self) -> str:
        return f"BundleResources({self.listed()!r})"


def _holds_read_resource(entry: msgspec.Raw) -> bool:
    """Whether the undecoded ``entry`` holds a resource that is read (:func:`_read_entry` not
    None and no outcome), told from its head alone: the sift drops most entries of a big chart
    without reading them whole, the first one included."""
    try:
        head = _READ_HEAD.decode(entry)
    except (ValueError, RecursionError):  # ValueError: also msgspec.DecodeError
        return entry_resource(entry) is not None
    read = _read_entry(head)
    return read is not None and read is not _OUTCOME


def _classify_bundle(bundle: Mapping[str, Any]) -> Classified:
    entries = bundle.get("entry")
    resources = BundleResources(entries if isinstance(entries, list) else [])
    url = next_link(bundle)
    if url or resources.holds_any():
        return Classified(PrefetchState.data, resources, next_url=url)
    if _read_entries(resources.entries)[1]:
        return Classified(
            PrefetchState.needs_fetch, reason="the Bundle held OperationOutcomes only", errored=True
        )
    return Classified(PrefetchState.no_data)


def classify(value: Any) -> Classified:
    """Read one prefetch value (P-09..P-14); pass ``ABSENT`` for a key the client did not send."""
    if value is ABSENT:
        return Classified(PrefetchState.needs_fetch, reason="the prefetch key was absent")
    if value is None:
        return Classified(PrefetchState.no_data)
    if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
        return Classified(PrefetchState.needs_fetch, reason="the value is not a FHIR resource")
    resource_type = value["resourceType"]
    if resource_type == "OperationOutcome":
        return Classified(
            PrefetchState.needs_fetch, reason="the client sent an OperationOutcome", errored=True
        )
    if resource_type == "Bundle":
        return _classify_bundle(value)
    return Classified(PrefetchState.data, [value])


def classify_all(
    templates: Mapping[str, str], prefetch: Mapping[str, Any] | None
) -> dict[str, Classified]:
    """Each declared key's value read; keys the service did not declare are ignored (P-10)."""
    given = prefetch or {}
    return {key: classify(given.get(key, ABSENT)) for key in templates}
