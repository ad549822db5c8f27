"""What the CDS Client prefetched, read per key: data, no data, or a key to fetch (P-09..P-14)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


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
    resources: list[dict[str, Any]] = field(default_factory=list)
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
        if isinstance(link, Mapping) and link.get("relation") == "next":
            url = link.get("url")
            if isinstance(url, str) and url:
                return url
    return None


# The search member of nearly every entry a FHIR server sends: compared whole (one C call)
# before the member is looked into.
_MATCH_SEARCH: Any = {"mode": "match"}


def _classify_bundle(bundle: Mapping[str, Any]) -> Classified:
    resources: list[dict[str, Any]] = []
    outcomes = 0
    entries = bundle.get("entry")
    # One pass over every entry of a big chart, the common case decided first: subscripts in
    # a ``try`` (free when nothing is raised) instead of a ``get`` and a type check per level.
    # JSON only ever gives dicts, lists, strings, numbers, booleans and None, and any of them
    # but a dict raises KeyError or TypeError when subscripted with a string.
    for entry in entries if isinstance(entries, list) else ():
        try:
            resource = entry["resource"]
            resource_type = resource["resourceType"]
        except (KeyError, TypeError):
            continue
        if not isinstance(resource, dict) or not isinstance(resource_type, str):
            continue
        search = entry.get("search")
        if resource_type == "OperationOutcome" or (
            search is not None
            and search != _MATCH_SEARCH
            and isinstance(search, dict)
            and search.get("mode") == "outcome"
        ):
            outcomes += 1
            continue
        resources.append(resource)
    url = next_link(bundle)
    if resources or url:
        return Classified(PrefetchState.data, resources, next_url=url)
    if outcomes:
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
