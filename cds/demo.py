"""Synthetic demo patients: load their Bundles, answer read-only FHIR searches, build hook calls."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from cds.data.templates import render
from cds.errors import InvalidRequest, NotFound
from cds.settings import PROJECT_ROOT

DEMO_DIR = PROJECT_ROOT / "demo" / "patients"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
ORDER_HOOKS = frozenset({"order-sign", "order-select"})

_RESOURCE_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")

# Search parameter -> the element it reads, per the FHIR R4 search parameter registry.
_CODE_ELEMENT = {
    "MedicationRequest": "medicationCodeableConcept",
    "MedicationStatement": "medicationCodeableConcept",
}
_TOKEN_ELEMENTS = {
    "clinical-status": "clinicalStatus",
    "verification-status": "verificationStatus",
    "category": "category",
    "value-concept": "valueCodeableConcept",  # Observation: a finding coded in its value
}
_STRING_TOKENS = {"status": "status", "intent": "intent"}
_PAGING = frozenset({"_count", "_offset"})
_SUPPORTED = frozenset({"_id", "patient", "subject", "code", *_TOKEN_ELEMENTS, *_STRING_TOKENS})

Resource = dict[str, Any]


@dataclass(frozen=True, slots=True)
class DemoPatient:
    """One entry of ``demo/patients/index.json``."""

    id: str
    name: str
    file: str
    scenario: str
    hook: str
    expected_rules: tuple[str, ...]
    description: str
    draft_orders: tuple[Resource, ...] = ()

    @property
    def hooks(self) -> list[str]:
        """The hooks the playground can fire for this patient (orders need a draft order)."""
        return ["patient-view", *(sorted(ORDER_HOOKS) if self.draft_orders else [])]

    def listing(self) -> dict[str, Any]:
        """The wire form the playground lists."""
        return {
            "id": self.id,
            "name": self.name,
            "scenario": self.scenario,
            "hook": self.hook,
            "hooks": self.hooks,
            "expectedRules": list(self.expected_rules),
            "description": self.description,
            "draftOrders": list(self.draft_orders),
        }


def _codings(value: Any) -> Iterable[Mapping[str, Any]]:
    concepts = value if isinstance(value, list) else [value]
    for concept in concepts:
        if isinstance(concept, Mapping):
            for item in concept.get("coding") or []:
                if isinstance(item, Mapping):
                    yield item


def _token_matches(value: Any, token: str) -> bool:
    """FHIR token search over a CodeableConcept (or a list of them): system|code, |code, code."""
    system, bar, code = token.partition("|")
    if not bar:
        system, code = "", token
    for item in _codings(value):
        if code and item.get("code") != code:
            continue
        if bar and system and item.get("system") != system:
            continue
        if bar and not system and item.get("system"):
            continue
        return True
    return False


def _reference_matches(value: Any, wanted: str) -> bool:
    if not isinstance(value, Mapping):
        return False
    reference = value.get("reference")
    if not isinstance(reference, str):
        return False
    target = wanted if "/" in wanted else f"Patient/{wanted}"
    return reference == target or reference.endswith("/" + target)


def _matches(resource: Resource, name: str, values: list[str]) -> bool:
    """Whether ``resource`` satisfies one parameter; ``values`` are OR'd (comma-separated)."""
    resource_type = resource["resourceType"]
    if name == "_id":
        return resource.get("id") in values
    if name in {"patient", "subject"}:
        if resource_type == "Patient":
            return any(v.removeprefix("Patient/") == resource.get("id") for v in values)
        return any(_reference_matches(resource.get("subject"), v) for v in values)
    if name == "code":
        element = resource.get(_CODE_ELEMENT.get(resource_type, "code"))
        return any(_token_matches(element, v) for v in values)
    if name in _TOKEN_ELEMENTS:
        return any(_token_matches(resource.get(_TOKEN_ELEMENTS[name]), v) for v in values)
    actual = resource.get(_STRING_TOKENS[name])
    return any(v.rpartition("|")[2] == actual for v in values)


def _page_size(value: str | None) -> int:
    if value is None:
        return DEFAULT_PAGE_SIZE
    if not value.isdigit():
        raise InvalidRequest("_count must be a non-negative integer.", expression=["_count"])
    return min(int(value), MAX_PAGE_SIZE)


@dataclass(slots=True)
class DemoData:
    """Every demo patient's resources, indexed by type and id; read-only after loading."""

    user_id: str
    demo_now: str
    patients: dict[str, DemoPatient] = field(default_factory=dict)
    resources: dict[str, dict[str, Resource]] = field(default_factory=dict)

    def add(self, resource: Resource, origin: str) -> None:
        resource_type, ident = resource.get("resourceType"), resource.get("id")
        if not isinstance(resource_type, str) or not isinstance(ident, str):
            raise TypeError(f"{origin}: every demo resource needs resourceType and id")
        by_id = self.resources.setdefault(resource_type, {})
        if ident in by_id:
            raise ValueError(f"{origin}: duplicate demo resource {resource_type}/{ident}")
        by_id[ident] = resource

    def patient(self, patient_id: str) -> DemoPatient:
        found = self.patients.get(patient_id)
        if found is None:
            raise NotFound(f"No demo patient '{patient_id}'.")
        return found

    def read(self, resource_type: str, ident: str) -> Resource:
        """FHIR read; NotFound when the resource does not exist."""
        found = self.resources.get(resource_type, {}).get(ident)
        if found is None:
            raise NotFound(f"{resource_type}/{ident} is not in the demo data.")
        return found

    def search(
        self,
        resource_type: str,
        params: Sequence[tuple[str, str]],
        *,
        base_url: str,
        paged: bool = True,
    ) -> Resource:
        """A searchset Bundle for ``resource_type?params``; pages carry ``next`` links."""
        if not _RESOURCE_TYPE.match(resource_type):
            raise InvalidRequest(f"'{resource_type}' is not a resource type.")
        given = dict(params)
        criteria = [(name, value) for name, value in params if name not in _PAGING]
        for name, _ in criteria:
            if name not in _SUPPORTED:
                # Ignoring an unknown parameter would silently widen the result (FHIR 3.2.1.4).
                raise InvalidRequest(
                    f"Search parameter '{name}' is not supported by the demo FHIR server.",
                    expression=[name],
                )
        matches = [
            resource
            for resource in self.resources.get(resource_type, {}).values()
            if all(_matches(resource, name, value.split(",")) for name, value in criteria)
        ]
        offset = int(given["_offset"]) if given.get("_offset", "").isdigit() else 0
        size = _page_size(given.get("_count")) if paged else len(matches)
        page = matches[offset : offset + size]
        base = base_url.rstrip("/")

        def url(at: int) -> str:
            query = [*criteria, ("_count", str(size)), ("_offset", str(at))]
            return f"{base}/{resource_type}?{urlencode(query)}"

        links = [{"relation": "self", "url": url(offset)}]
        if paged and size and offset + size < len(matches):
            links.append({"relation": "next", "url": url(offset + size)})
        return {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(matches),
            "link": links,
            "entry": [
                {
                    "fullUrl": f"{base}/{resource_type}/{resource['id']}",
                    "resource": resource,
                    "search": {"mode": "match"},
                }
                for resource in page
            ],
        }

    def answer(self, relative_url: str, *, base_url: str) -> Resource:
        """The whole answer to a rendered prefetch template (``Type/id`` or ``Type?query``)."""
        path, _, query = relative_url.partition("?")
        resource_type, slash, ident = path.partition("/")
        if slash:
            if not _FHIR_ID.match(ident):
                raise InvalidRequest(f"'{ident}' is not a FHIR id.")
            return self.read(resource_type, ident)
        params = parse_qsl(query, keep_blank_values=True)
        return self.search(resource_type, params, base_url=base_url, paged=False)

    def prefetch(
        self, templates: Mapping[str, str], context: Mapping[str, Any], *, base_url: str
    ) -> dict[str, Any]:
        """Every template answered in full, as an EHR would prefetch (P-08); misses are omitted."""
        out: dict[str, Any] = {}
        for key, template in templates.items():
            rendered = render(template, context)
            if rendered is None:
                continue
            try:
                out[key] = self.answer(rendered, base_url=base_url)
            except NotFound:
                # SB-06: a client that cannot answer a key leaves it out.
                continue
        return out

    def hook_request(
        self,
        patient_id: str,
        hook: str,
        templates: Mapping[str, str],
        *,
        fhir_server: str | None,
        with_prefetch: bool,
        hook_instance: str | None = None,
    ) -> dict[str, Any]:
        """The CDS Hooks request an EHR would send for this demo patient and hook."""
        patient = self.patient(patient_id)
        context: dict[str, Any] = {"userId": self.user_id, "patientId": patient.id}
        if hook in ORDER_HOOKS:
            if not patient.draft_orders:
                raise InvalidRequest(
                    f"Demo patient '{patient.id}' has no draft order; use patient-view.",
                    expression=["hook"],
                )
            # R4 wants a typed Bundle even though the sandbox omits Bundle.type (SB-02).
            context["draftOrders"] = {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"resource": order} for order in patient.draft_orders],
            }
            if hook == "order-select":
                context["selections"] = [
                    f"{order['resourceType']}/{order['id']}" for order in patient.draft_orders
                ]
        elif hook != "patient-view":
            raise InvalidRequest(f"The playground cannot fire hook '{hook}'.", expression=["hook"])
        body: dict[str, Any] = {
            "hook": hook,
            "hookInstance": hook_instance or str(uuid.uuid4()),
        }
        if fhir_server is not None:
            body["fhirServer"] = fhir_server
        body["context"] = context
        if with_prefetch:
            body["prefetch"] = self.prefetch(
                templates, context, base_url=fhir_server or "http://demo.invalid/fhir"
            )
        return body


def _entry_resources(bundle: Any, origin: str) -> list[Resource]:
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise ValueError(f"{origin}: not a FHIR Bundle")
    resources = [entry.get("resource") for entry in bundle.get("entry") or []]
    if not all(isinstance(r, dict) for r in resources):
        raise ValueError(f"{origin}: every entry needs a resource")
    return [r for r in resources if isinstance(r, dict)]


def demo_instant(request: object, directory: Path = DEMO_DIR) -> str | None:
    """The demo's clock when ``request`` was made by the demo (its clinician), else None."""
    try:
        index = json.loads((directory / "index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    context = request.get("context") if isinstance(request, dict) else None
    if isinstance(context, dict) and context.get("userId") == index.get("userId"):
        now = index.get("demoNow")
        return now if isinstance(now, str) else None
    return None


@lru_cache(maxsize=4)
def load_demo(directory: Path = DEMO_DIR) -> DemoData:
    """The demo patients in ``directory`` (index.json plus one Bundle per patient), checked."""
    index = json.loads((directory / "index.json").read_text(encoding="utf-8"))
    data = DemoData(user_id=index["userId"], demo_now=index["demoNow"])
    for item in index["patients"]:
        patient = DemoPatient(
            id=item["id"],
            name=item["name"],
            file=item["file"],
            scenario=item["scenario"],
            hook=item["hook"],
            expected_rules=tuple(item["expectedRules"]),
            description=item["description"],
            draft_orders=tuple(item.get("draftOrders", [])),
        )
        if patient.id in data.patients:
            raise ValueError(f"index.json: duplicate demo patient id '{patient.id}'")
        origin = f"demo/patients/{patient.file}"
        bundle = json.loads((directory / patient.file).read_text(encoding="utf-8"))
        resources = _entry_resources(bundle, origin)
        ids = [r["id"] for r in resources if r.get("resourceType") == "Patient"]
        if ids != [patient.id]:
            raise ValueError(f"{origin}: expected exactly one Patient with id '{patient.id}'")
        for resource in resources:
            data.add(resource, origin)
        data.patients[patient.id] = patient
    return data
