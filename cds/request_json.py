"""A request body's JSON: parsed from bytes, and held to the hook request's input limits."""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

from cds.errors import InvalidRequest, PayloadTooLarge
from cds.fhir import depth_exceeds
from cds.gc_pause import collector_paused

# A JSON object's members, each left as its undecoded text.
_MEMBERS = msgspec.json.Decoder(dict[str, msgspec.Raw])
_ITEMS = msgspec.json.Decoder(list[msgspec.Raw])
_OPEN_OBJECT, _OPEN_ARRAY = ord("{"), ord("[")
# What the raw reading cannot judge the way orjson does: the whole body is then read by orjson,
# whose verdict (and message) is the one a client gets.
_NOT_READ_RAW = (
    msgspec.DecodeError,
    msgspec.ValidationError,
    RecursionError,  # msgspec's nesting limit, even inside what it leaves raw
    UnicodeDecodeError,
    orjson.JSONDecodeError,
)


def parse_json(body: bytes) -> Any:
    """The parsed body, or InvalidRequest naming where the JSON breaks.

    Each prefetch Bundle's entries stay undecoded (``msgspec.Raw``): most of a big chart's
    entries are dropped by the record's sift after reading a few of their members, and
    decoding them whole would cost more than the rest of the call. Everything else is decoded
    by orjson, as before.
    """
    with collector_paused():
        try:
            return _read_raw(body)
        except _NOT_READ_RAW:
            pass
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            # The decoder's message names a position, never the content: safe to return.
            raise InvalidRequest(f"The body is not valid JSON: {exc}") from exc


class EntryNotJson(InvalidRequest):
    """A prefetch entry left undecoded turned out to be JSON orjson refuses (a number past a
    double's range: msgspec does not judge numbers it skips). The call is refused as the
    whole body would have been: :func:`refuse_as_orjson` gives that verdict."""


def refuse_as_orjson(body: bytes) -> InvalidRequest:
    """The InvalidRequest ``orjson.loads(body)`` raised before entries were left undecoded."""
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return InvalidRequest(f"The body is not valid JSON: {exc}")
    return InvalidRequest("The body is not valid JSON.")  # unreachable when called as meant


def _read_raw(body: bytes) -> dict[str, Any]:
    if not body.isascii():
        body.decode()  # msgspec does not check the UTF-8 of what it leaves raw; orjson does
    read: dict[str, Any] = {}
    for key, value in _MEMBERS.decode(body).items():
        if key == "prefetch" and _is_object(value):
            read[key] = {k: _prefetch_value(v) for k, v in _MEMBERS.decode(value).items()}
        else:
            read[key] = _loads(value)
    return read


def _loads(raw: msgspec.Raw) -> Any:
    return orjson.loads(memoryview(raw))


def _is_object(raw: msgspec.Raw) -> bool:
    return memoryview(raw)[0] == _OPEN_OBJECT  # msgspec.Raw holds no surrounding whitespace


def _prefetch_value(value: msgspec.Raw) -> Any:
    """A prefetch value decoded, except a Bundle's entries (each a ``msgspec.Raw``)."""
    if not _is_object(value):
        return _loads(value)
    members = _MEMBERS.decode(value)
    entries, resource_type = members.get("entry"), members.get("resourceType")
    if entries is None or resource_type is None or _loads(resource_type) != "Bundle":
        return _loads(value)
    listed = _ITEMS.decode(entries) if memoryview(entries)[0] == _OPEN_ARRAY else _loads(entries)
    return {key: listed if key == "entry" else _loads(raw) for key, raw in members.items()}


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
