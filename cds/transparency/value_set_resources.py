"""The catalogue's value sets as FHIR R4 ValueSet resources, and a searchset Bundle of them.

- ``compose`` says what the set is: its exact codes (``include.concept``); each ICD-10-CM
  prefix entry (M41 and every code below it) as ``include.filter`` ``concept is-a M41``, since
  a prefix cannot be enumerated without the whole code system; carve-outs as ``exclude``.
- ``expansion`` lists what can be enumerated: the exact codes, with ``total`` only when that is
  all of the set (no prefix entry).
- A code the site added (CDS_SITE_CONFIG) carries the extension :data:`LOCAL_CODE_EXTENSION`
  whose ``valueString`` is its provenance note, in ``compose`` and in ``expansion``.
- A set that also matches free text says so in ``description``: text matching has no FHIR form.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from cds import __version__
from cds.errors import ConfigError
from cds.fhir import resource_problem
from cds.transparency.addresses import VALUE_SETS_PATH, value_set_url
from cds.transparency.rule_pages import CodeLine, ValueSetView, value_set_view
from cds.valuesets import ValueSet, ValueSets

FHIR_JSON = "application/fhir+json"
PUBLISHER = "footpath-cds"
# Marks a code the site added to a shipped value set; valueString: the site's provenance note.
LOCAL_CODE_EXTENSION = "https://footpath-cds.example.org/fhir/StructureDefinition/site-local-code"


def computable_name(vs_id: str) -> str:
    """A FHIR computable name (``[A-Z]([A-Za-z0-9_]){0,254}``): ``hipmimic-sciatic`` ->
    ``HipmimicSciatic``."""
    return "".join(part[:1].upper() + part[1:] for part in vs_id.split("-"))


def _version(view: ValueSetView) -> str:
    """The service's version; a set with the site's codes adds a digest of them (semver build
    metadata), so two sites' different sets never share a version."""
    local = sorted(f"{c.system}|{c.code}|{c.display}" for c in view.codes if c.local)
    if not local:
        return __version__
    digest = hashlib.sha256("\n".join(local).encode()).hexdigest()[:12]
    return f"{__version__}+site.{digest}"


def _concept(line: CodeLine) -> dict[str, Any]:
    concept: dict[str, Any] = {}
    if line.local:
        concept["extension"] = [{"url": LOCAL_CODE_EXTENSION, "valueString": line.note}]
    concept["code"] = line.code
    if line.display:
        concept["display"] = line.display
    return concept


def _by_system(lines: Iterable[CodeLine]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        grouped.setdefault(line.system, []).append(_concept(line))
    return grouped


def _compose(view: ValueSetView) -> dict[str, Any] | None:
    exact = [c for c in view.codes if c.match == "exact"]
    include: list[dict[str, Any]] = [
        {"system": system, "concept": concepts} for system, concepts in _by_system(exact).items()
    ]
    include += [
        {"system": c.system, "filter": [{"property": "concept", "op": "is-a", "value": c.code}]}
        for c in view.codes
        if c.match == "prefix"
    ]
    if not include:
        return None
    compose: dict[str, Any] = {"include": include}
    exclude = [
        {"system": system, "concept": [{"code": c["code"]} for c in concepts]}
        for system, concepts in _by_system(view.carved_out).items()
    ]
    if exclude:
        compose["exclude"] = exclude
    return compose


def _description(view: ValueSetView) -> str:
    parts = [f"{view.title}. Published by footpath-cds for its CDS Hooks rules."]
    if any(c.match == "prefix" for c in view.codes):
        parts.append(
            "ICD-10-CM prefix entries are in compose as is-a filters (the code and every code "
            "below it); the expansion lists only the codes that can be enumerated."
        )
    if view.text_match:
        parts.append(
            f"The service also matches free text of {', '.join(view.text_match_on)} naming any "
            f"of: {', '.join(view.text_match)}."
        )
    if any(c.local for c in view.codes):
        parts.append("Codes with the site-local-code extension were added by this site.")
    return " ".join(parts)


def value_set_resource(vs: ValueSet, public_base_url: str, now: datetime) -> dict[str, Any]:
    """``vs`` as a FHIR R4 ValueSet; its expansion stamped ``now``."""
    view = value_set_view(vs, public_base_url)
    exact = [c for c in view.codes if c.match == "exact"]
    expansion: dict[str, Any] = {"timestamp": now.isoformat().replace("+00:00", "Z")}
    if not any(c.match == "prefix" for c in view.codes):
        expansion["total"] = len(exact)
    if exact:
        expansion["contains"] = [{"system": c.system, **_concept(c)} for c in exact]
    resource: dict[str, Any] = {
        "resourceType": "ValueSet",
        "id": vs.id,
        "url": value_set_url(public_base_url, vs.id),
        "version": _version(view),
        "name": computable_name(vs.id),
        "title": vs.title,
        "status": "active",
        "experimental": False,
        "publisher": PUBLISHER,
        "description": _description(view),
    }
    compose = _compose(view)
    if compose is not None:
        resource["compose"] = compose
    resource["expansion"] = expansion
    return resource


def value_set_bundle(valuesets: ValueSets, public_base_url: str, now: datetime) -> dict[str, Any]:
    """Every value set, as the searchset Bundle ``GET /fhir/ValueSet`` answers."""
    resources = [value_set_resource(vs, public_base_url, now) for vs in valuesets.by_id.values()]
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": now.isoformat().replace("+00:00", "Z"),
        "total": len(resources),
        "link": [{"relation": "self", "url": f"{public_base_url.rstrip('/')}{VALUE_SETS_PATH}"}],
        "entry": [
            {"fullUrl": r["url"], "resource": r, "search": {"mode": "match"}} for r in resources
        ],
    }


def export_value_sets(
    valuesets: ValueSets, directory: Path, public_base_url: str, now: datetime
) -> list[Path]:
    """Write each value set as ``DIR/<id>.json`` (a FHIR R4 ValueSet, validated first); the
    paths written. ``ConfigError`` names the value set or the file that failed."""
    resources = [value_set_resource(vs, public_base_url, now) for vs in valuesets.by_id.values()]
    problems = [
        f"ValueSet '{r['id']}': not valid FHIR R4: {why}"
        for r in resources
        if (why := resource_problem(r)) is not None
    ]
    if problems:
        raise ConfigError(problems)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for resource in resources:
            path = directory / f"{resource['id']}.json"
            path.write_bytes(orjson.dumps(resource, option=orjson.OPT_INDENT_2) + b"\n")
            written.append(path)
    except OSError as exc:
        where = exc.filename or directory
        raise ConfigError([f"{where}: cannot write the value sets ({exc.strerror})"]) from None
    return written
