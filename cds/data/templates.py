"""Prefetch templates: their tokens filled from the hook context, and their lint (P-02..P-06)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

# `{{ ... }}` with anything but braces inside; whitespace is tolerated as the sandbox does.
_TOKEN = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")

# P-05: the user tokens, each derived from context.userId when it names that resource type.
USER_TOKENS: Mapping[str, str] = {
    "userPractitionerId": "Practitioner",
    "userPractitionerRoleId": "PractitionerRole",
    "userPatientId": "Patient",
    "userRelatedPersonId": "RelatedPerson",
}

# P-04: context fields marked "Prefetch Token: Yes" in each hook's table (checklist section 10).
_COMMON_TOKENS = frozenset({"userId", "patientId", "encounterId"})
HOOK_TOKENS: Mapping[str, frozenset[str]] = {
    "patient-view": _COMMON_TOKENS,
    "order-select": _COMMON_TOKENS,
    "order-sign": _COMMON_TOKENS,
    "encounter-start": _COMMON_TOKENS,
    "encounter-discharge": _COMMON_TOKENS,
    "appointment-book": _COMMON_TOKENS,
}

# P-06: the search-result and common parameters inside the prefetch subset.
_ALLOWED_UNDERSCORE_PARAMS = frozenset({"_id", "_count", "_sort", "_lastUpdated"})
_DATE_PREFIX_OUTSIDE_SUBSET = re.compile(r"^(ne|sa|eb|ap)\d{4}")
_RESOURCE_TYPE = re.compile(r"^[A-Z][A-Za-z]+$")
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def user_tokens(user_id: object) -> dict[str, str]:
    """The user tokens that ``context.userId`` (``Type/id``) resolves; empty when malformed."""
    if not isinstance(user_id, str) or user_id.count("/") != 1:
        return {}
    resource_type, _, ident = user_id.partition("/")
    return {
        token: ident
        for token, token_type in USER_TOKENS.items()
        if token_type == resource_type and ident
    }


def _token_value(name: str, context: Mapping[str, Any], users: Mapping[str, str]) -> str | None:
    if name in users:
        return users[name]
    if not name.startswith("context."):
        return None
    value = context.get(name.removeprefix("context."))
    # P-04: only first-level primitives; `context.a.b` looks up a key with a dot and misses.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str) and value:
        return value
    return None


def _encode_path(value: str) -> str | None:
    # `{{context.userId}}` alone is a read of `Type/id`, so `/` stays; `.`/`..` segments would
    # step outside the FHIR base, so such a value is not rendered at all.
    segments = value.split("/")
    if any(segment in {"", ".", ".."} for segment in segments):
        return None
    return "/".join(quote(segment, safe="") for segment in segments)


def render(template: str, context: Mapping[str, Any]) -> str | None:
    """The relative FHIR URL for ``template`` (P-02..P-05, P-17); None if a token can't resolve."""
    users = user_tokens(context.get("userId"))
    query_start = template.find("?")
    out: list[str] = []
    position = 0
    for match in _TOKEN.finditer(template):
        value = _token_value(match.group(1), context, users)
        if value is None:
            return None
        in_query = query_start != -1 and match.start() > query_start
        encoded = quote(value, safe="") if in_query else _encode_path(value)
        if encoded is None:
            return None
        out.append(template[position : match.start()])
        out.append(encoded)
        position = match.end()
    out.append(template[position:])
    rendered = "".join(out)
    # A stray `{{` or `}}` means a malformed token the client would not have rendered either.
    if "{{" in rendered or "}}" in rendered:
        return None
    return rendered


def _check_tokens(template: str, allowed: frozenset[str]) -> list[str]:
    problems: list[str] = []
    stripped = _TOKEN.sub("", template)
    if "{{" in stripped or "}}" in stripped:
        problems.append("unbalanced '{{' / '}}'")
    for match in _TOKEN.finditer(template):
        name = match.group(1)
        if name in USER_TOKENS:
            continue
        if not name.startswith("context."):
            problems.append(f"token '{{{{{name}}}}}' is neither context.<field> nor a user token")
            continue
        fieldname = name.removeprefix("context.")
        if "." in fieldname:
            problems.append(f"token '{{{{{name}}}}}' is not a first-level context field")
        elif fieldname not in allowed:
            problems.append(f"token '{{{{{name}}}}}' is not a prefetch token of this hook")
    return problems


def _check_path(path: str) -> list[str]:
    if not path:
        return ["system-level search is outside the prefetch subset"]
    if path == "{{context.userId}}":
        return []
    segments = path.split("/")
    if not _RESOURCE_TYPE.match(segments[0]):
        return [f"'{segments[0]}' is not a resource type"]
    if len(segments) == 1:
        return []
    if len(segments) > 2:
        return ["only instance reads (Type/id) and type-level searches (Type?...) are allowed"]
    ident = segments[1]
    if ident == "{{context.userId}}":
        # docs#410: userId is already Type/id, so this expands to e.g. Practitioner/Practitioner/1.
        return ["'{{context.userId}}' is already Type/id; do not prefix it with a type"]
    if not (_TOKEN.fullmatch(ident) or _FHIR_ID.match(ident)):
        return [f"'{ident}' is not a FHIR id or a token"]
    return []


def _check_parameter(name: str, value: str) -> list[str]:
    problems: list[str] = []
    base, _, modifier = name.partition(":")
    if base in {"_include", "_revinclude"}:
        return [f"'{base}' is outside the prefetch subset"]
    if base.startswith("_has"):
        return ["'_has' (reverse chaining) is outside the prefetch subset"]
    if "." in base:
        problems.append(f"chained parameter '{name}' is outside the prefetch subset")
    elif base.startswith("_") and base not in _ALLOWED_UNDERSCORE_PARAMS:
        problems.append(f"parameter '{base}' is outside the prefetch subset")
    if modifier and modifier != "in":
        problems.append(f"modifier ':{modifier}' on '{base}' is not allowed (only ':in')")
    if base == "_count" and not (value.isdigit() and int(value) > 0):
        problems.append("'_count' must be a positive integer")
    if _DATE_PREFIX_OUTSIDE_SUBSET.match(value):
        problems.append(f"date prefix '{value[:2]}' is not allowed (only eq, lt, gt, ge, le)")
    return problems


def check_template(template: str, hook: str) -> list[str]:
    """Problems with ``template`` for ``hook`` under P-02..P-06; an empty list means it is fine."""
    allowed = HOOK_TOKENS.get(hook)
    if allowed is None:
        return [f"unknown hook '{hook}'"]
    problems = _check_tokens(template, allowed)
    path, has_query, query = template.partition("?")
    problems.extend(_check_path(path))
    if has_query:
        for part in query.split("&"):
            if not part:
                continue
            name, _, value = part.partition("=")
            problems.extend(_check_parameter(name, value))
    return problems
