"""A request body's JSON: parsed from bytes, and held to the hook request's input limits."""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

from cds.errors import InvalidRequest, PayloadTooLarge
from cds.fhir import depth_exceeds
from cds.gc_pause import collector_paused

# What msgspec refuses where orjson may not (its nesting limit, reached first, is Python's
# recursion limit: 1,000 against orjson's 1,024): the whole body is then read by orjson, whose
# verdict (and message) is the one a client gets.
_NOT_READ_RAW = (
    msgspec.DecodeError,
    msgspec.ValidationError,
    RecursionError,
    orjson.JSONDecodeError,
)


# From this size up, a body is read with its prefetch entries left undecoded (typical's 351 KiB
# included). Below it orjson reading the body whole costs less: the checks msgspec's reading
# needs (``_judged_alike``) and decoding each entry's head cost more than decoding small charts'
# entries and freeing them, which stay in the CPU's caches (docs/benchmarks.md, "The raw
# reading's verdict check on a third of the bytes": at typical's size the two readings are
# within 10 % of each other, the raw one ahead when the machine's caches are busy).
RAW_FROM_BYTES = 1 << 18


def parse_json(body: bytes, *, raw_from: int = RAW_FROM_BYTES) -> Any:
    """The parsed body, or InvalidRequest naming where the JSON breaks.

    From ``raw_from`` bytes up, each prefetch Bundle's entries stay undecoded
    (``msgspec.Raw``): most of a big chart's entries are dropped by the record's sift after
    reading a few of their members, and decoding them whole would cost more than the rest of
    the call. Everything else is decoded by orjson, as before. A body msgspec cannot read as
    orjson would, or whose bytes msgspec would leave unjudged where orjson refuses them
    (:func:`_judged_alike`), is read by orjson whole, so every body orjson refused is refused
    with orjson's message, and no other is.
    """
    with collector_paused():
        if len(body) >= raw_from and _judged_alike(body):
            try:
                return _read_raw(body)
            except _NOT_READ_RAW:
                pass
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            # The decoder's message names a position, never the content: safe to return.
            raise InvalidRequest(f"The body is not valid JSON: {exc}") from exc


# Digits as 0, an exponent's marker as e, and gone every byte that is neither in a number, nor
# one that may come before a value, nor the quote that tells a string's content from a value:
# a number past a double's range shows as 0e000 (its exponent's plus sign, when sent, as one
# more 0) or as 200 zeros, right after what precedes it (whitespace, also dropped, comes only
# between), in a third to a half of the body's bytes.
_NUMBER_SHAPES = bytes.maketrans(b"123456789E+", b"000000000e0")
_IN_A_NUMBER = frozenset(b"0.-")
_ZERO = ord("0")
_BEFORE_A_VALUE = frozenset(b":,[")
_NOT_SHAPED = bytes(set(range(256)) - set(b'0123456789.-eE+":,['))


def _judged_alike(body: bytes) -> bool:
    """Whether msgspec judges ``body`` as orjson does, for all it leaves undecoded.

    msgspec checks the JSON grammar of what it skips, not what orjson checks beyond it: the
    UTF-8 of strings, and numbers past a double's range (orjson refuses ``1e999``, even in an
    entry no rule reads). A body with either is read by orjson whole. Such a number has an
    exponent of three digits or more, or 200 digits before its exponent (a double ends at
    1.8e308); one found inside a string (a hex id's ``3e456``) is told apart by what precedes
    it, and a string that still looks like one (``"x:1e999"``, also with letters or spaces
    between its colon and digits, which the shapes drop) only costs the whole read.
    """
    if not body.isascii():
        try:
            body.decode()
        except UnicodeDecodeError:
            return False
    shapes = body.translate(_NUMBER_SHAPES, _NOT_SHAPED)
    if b"0" * 200 in shapes:
        return False
    # Searched from the end for e000, then its 0 before: a backward search steps on the e,
    # rarer in the shapes than the 0 a forward search for 0e000 steps on (half the time).
    end = len(shapes)
    while (at := shapes.rfind(b"e000", 0, end)) > 0:
        end = at
        if shapes[at - 1] != _ZERO:
            continue
        start = at - 1
        while start and shapes[start - 1] in _IN_A_NUMBER:
            start -= 1
        if start == 0 or shapes[start - 1] in _BEFORE_A_VALUE:
            return False
    return True


class EntryNotJson(InvalidRequest):
    """A prefetch entry left undecoded that orjson refuses when it is read. msgspec's checks
    and :func:`_judged_alike` leave none known (nesting is the one to watch: msgspec stops at
    Python's recursion limit, below orjson's 1,024 only while that limit stays near 1,000);
    should one come, the call is refused as the whole body would have been, with the verdict
    :func:`refuse_as_orjson` gives."""


def refuse_as_orjson(body: bytes) -> InvalidRequest:
    """The InvalidRequest ``orjson.loads(body)`` raised before entries were left undecoded."""
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return InvalidRequest(f"The body is not valid JSON: {exc}")
    return InvalidRequest("The body is not valid JSON.")  # unreachable when called as meant


class _Envelope(msgspec.Struct, forbid_unknown_fields=True):
    """The hook request's members (R-02) as the wire names them, each left undecoded but the
    prefetch's keys. Any other member (a snake_case alias, an extension of the envelope) fails
    it: such a body is read by orjson whole, so the envelope's depth check sees all of it."""

    hook: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    hookInstance: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET  # noqa: N815
    fhirServer: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET  # noqa: N815
    fhirAuthorization: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET  # noqa: N815
    context: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    prefetch: dict[str, msgspec.Raw] | msgspec.UnsetType | None = msgspec.UNSET
    extension: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


class _BundleHead(msgspec.Struct):
    """What prefetch classification reads of a Bundle (``cds.data.prefetch``): its type, its
    entries (each undecoded) and its links; a value whose ``entry`` is no list fails it."""

    resourceType: Any = msgspec.UNSET  # noqa: N815
    entry: list[msgspec.Raw] | msgspec.UnsetType = msgspec.UNSET
    link: Any = msgspec.UNSET


_ENVELOPE = msgspec.json.Decoder(_Envelope)
_BUNDLE_HEAD = msgspec.json.Decoder(_BundleHead)
_ENVELOPE_FIELDS = _Envelope.__struct_fields__


def _read_raw(body: bytes) -> dict[str, Any]:
    """The body read in two scans: the envelope with each prefetch value raw, then each
    value's Bundle head; orjson decodes everything but a Bundle's entries."""
    envelope = _ENVELOPE.decode(body)
    read: dict[str, Any] = {}
    for name in _ENVELOPE_FIELDS:
        value = getattr(envelope, name)
        if value is msgspec.UNSET:
            continue
        if name == "prefetch":
            read[name] = (
                None if value is None else {k: _prefetch_value(v) for k, v in value.items()}
            )
        else:
            read[name] = _loads(value)
    return read


def _loads(raw: msgspec.Raw) -> Any:
    return orjson.loads(memoryview(raw))


def _prefetch_value(value: msgspec.Raw) -> Any:
    """A prefetch value decoded, except a Bundle's entries (each a ``msgspec.Raw``)."""
    try:
        head = _BUNDLE_HEAD.decode(value)
    except msgspec.ValidationError:
        return _loads(value)  # not an object, or a Bundle whose entry is no list
    if head.resourceType != "Bundle" or head.entry is msgspec.UNSET:
        return _loads(value)
    bundle: dict[str, Any] = {"resourceType": "Bundle", "entry": head.entry}
    if head.link is not msgspec.UNSET:
        bundle["link"] = head.link
    return bundle


def check_limits(body: Any, max_depth: int, max_entries: int) -> None:
    """Input limits on a hook request: nesting depth and the number of prefetched resources.

    Prefetched resources are counted, not walked: thousands of them are never traversed by us
    (orjson already caps nesting at 1024), and the few we do parse are depth-checked then.
    """
    if not isinstance(body, dict):
        return
    envelope = {k: v for k, v in body.items() if k != "prefetch"}
    if depth_exceeds(envelope, max_depth):
        raise InvalidRequest(f"The request nests deeper than {max_depth} levels.")
    prefetch = body.get("prefetch")
    if not isinstance(prefetch, dict):
        return
    entries = sum(
        len(value["entry"])
        for value in prefetch.values()
        if isinstance(value, dict) and isinstance(value.get("entry"), list)
    )
    if entries > max_entries:
        raise PayloadTooLarge(
            f"The prefetch holds {entries} resources, more than the limit of {max_entries}."
        )
