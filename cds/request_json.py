"""A request body's JSON: parsed from bytes, and held to the hook request's input limits."""

from __future__ import annotations

from typing import Any

import orjson

from cds.errors import InvalidRequest, PayloadTooLarge
from cds.fhir import depth_exceeds
from cds.gc_pause import collector_paused


def parse_json(body: bytes) -> Any:
    """The parsed body, or InvalidRequest naming where the JSON breaks."""
    with collector_paused():
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            # The decoder's message names a position, never the content: safe to return.
            raise InvalidRequest(f"The body is not valid JSON: {exc}") from exc


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
