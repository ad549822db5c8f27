"""Demo patients: verified codes, a FHIR search that answers every prefetch, the expected cards."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
import yaml

from cds.catalogue import Catalogue
from cds.data.templates import render
from cds.demo import DemoData, load_demo
from cds.errors import InvalidRequest, NotFound
from cds.settings import Settings
from tests.demo_app import DEMO_FHIR_BASE, app_with_playground, demo_fhir_app
from tests.examples import published_valuesets

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[1]
DEMO = load_demo()
PATIENT_IDS = sorted(DEMO.patients)
BASE = "http://demo.test/fhir"
# The elements that carry clinical codes the rules read; the rest (statuses, categories,
# Encounter.class) are FHIR's own terminology.
CODED_ELEMENTS = {
    "Condition": "code",
    "Observation": "code",
    "Procedure": "code",
    "ServiceRequest": "code",
    "DiagnosticReport": "code",
    "MedicationRequest": "medicationCodeableConcept",
}


def _verified_codes(
    codes: Iterable[Mapping[str, Any]],
) -> tuple[set[tuple[str, str]], list[tuple[str, str]]]:
    exact: set[tuple[str, str]] = set()
    prefixes: list[tuple[str, str]] = []
    for code in codes:
        if not code["status"].startswith("VERIFIED"):
            continue
        exact.add((code["system"], code["code"]))
        if code["match"] == "prefix":
            prefixes.append((code["system"], code["code"].replace(".", "")))
    return exact, prefixes


def _shipped_codes() -> Iterator[Mapping[str, Any]]:
    for path in sorted((ROOT / "rules" / "valuesets").glob("*.yaml")):
        yield from yaml.safe_load(path.read_text(encoding="utf-8"))["codes"]


def _published_codes() -> Iterator[Mapping[str, Any]]:
    for valueset in published_valuesets()["valueSets"]:
        yield from valueset["codes"]


def _all_demo_resources() -> Iterator[dict[str, Any]]:
    for by_id in DEMO.resources.values():
        yield from by_id.values()
    for patient in DEMO.patients.values():
        yield from patient.draft_orders


def _unverified_demo_codes(
    verified: tuple[set[tuple[str, str]], list[tuple[str, str]]],
) -> list[str]:
    exact, prefixes = verified
    unverified = []
    for resource in _all_demo_resources():
        element = CODED_ELEMENTS.get(resource["resourceType"])
        concept = resource.get(element, {}) if element else {}
        for coding in concept.get("coding", []):
            key = (coding["system"], coding["code"])
            dotless = coding["code"].replace(".", "")
            by_prefix = any(s == key[0] and dotless.startswith(p) for s, p in prefixes)
            if key not in exact and not by_prefix:
                unverified.append(f"{resource['resourceType']}/{resource['id']}: {key}")
    return unverified


def test_every_clinical_code_in_the_demo_data_is_a_shipped_verified_value_set_code() -> None:
    assert _unverified_demo_codes(_verified_codes(_shipped_codes())) == []


def test_every_clinical_code_in_the_demo_data_is_verified_in_the_clinical_teams_list() -> None:
    assert _unverified_demo_codes(_verified_codes(_published_codes())) == []


def test_each_demo_bundle_holds_one_patient_and_every_resource_points_at_it() -> None:
    directory = Path(__file__).resolve().parents[1] / "demo" / "patients"
    for patient in DEMO.patients.values():
        bundle = json.loads((directory / patient.file).read_text())
        assert bundle["type"] in {"transaction", "collection"}
        resources = [entry["resource"] for entry in bundle["entry"]]
        assert [r["id"] for r in resources if r["resourceType"] == "Patient"] == [patient.id]
        for resource in resources:
            if resource["resourceType"] != "Patient":
                assert resource["subject"] == {"reference": f"Patient/{patient.id}"}
    assert len({p.id for p in DEMO.patients.values()}) == len(DEMO.patients)


def test_the_noisy_patients_hold_hundreds_of_resources() -> None:
    for patient_id in ("demo-noisy-stenosis", "demo-noisy-varicose"):
        everything = [
            r
            for by_id in DEMO.resources.values()
            for r in by_id.values()
            if r.get("subject", {}).get("reference") == f"Patient/{patient_id}"
        ]
        assert len(everything) >= 200


def test_the_order_sign_patient_carries_a_draft_lumbar_mri() -> None:
    (order,) = DEMO.patient("demo-s14a").draft_orders
    assert order["status"] == "draft"
    assert order["code"]["coding"][0] == {
        "system": "http://www.ama-assn.org/go/cpt",
        "code": "72148",
        "display": "MRI, spinal canal and contents, lumbar; without contrast material",
    }


@pytest.mark.parametrize("patient_id", PATIENT_IDS)
def test_every_prefetch_template_of_every_service_is_answered_for_each_patient(
    catalogue: Catalogue, patient_id: str
) -> None:
    context = {"userId": DEMO.user_id, "patientId": patient_id}
    for service in catalogue.services.values():
        for key, template in service.prefetch.items():
            rendered = render(template, context)
            assert rendered is not None, f"{service.id}.{key} does not render"
            answer = DEMO.answer(rendered, base_url=BASE)
            if "?" in rendered:
                assert answer["type"] == "searchset"
                assert answer["total"] == len(answer["entry"])
            else:
                assert answer["resourceType"] == rendered.split("/")[0]


def test_search_filters_by_patient_code_lists_and_status() -> None:
    bundle = DEMO.search(
        "Observation",
        [
            ("patient", "demo-noisy-stenosis"),
            ("code", "http://loinc.org|72514-3,http://loinc.org|4548-4"),
            ("status", "final"),
        ],
        base_url=BASE,
        paged=False,
    )
    codes = {e["resource"]["code"]["coding"][0]["code"] for e in bundle["entry"]}
    assert codes == {"72514-3", "4548-4"}
    assert all(e["resource"]["status"] == "final" for e in bundle["entry"])
    assert all(
        e["resource"]["subject"]["reference"] == "Patient/demo-noisy-stenosis"
        for e in bundle["entry"]
    )


def test_a_code_without_system_and_a_system_mismatch_behave_as_fhir_tokens() -> None:
    def total(token: str) -> int:
        params = [("subject", "Patient/demo-s01"), ("code", token)]
        return int(DEMO.search("Condition", params, base_url=BASE)["total"])

    assert total("M54.16") == 1
    assert total("http://hl7.org/fhir/sid/icd-10-cm|M54.16") == 1
    assert total("http://snomed.info/sct|M54.16") == 0
    assert total("|M54.16") == 0


def _follow(data: DemoData, first: dict[str, Any]) -> list[dict[str, Any]]:
    pages = [first]
    while nxt := next((lk["url"] for lk in pages[-1]["link"] if lk["relation"] == "next"), None):
        parts = urlsplit(nxt)
        resource_type = parts.path.rsplit("/", 1)[1]
        pages.append(data.search(resource_type, parse_qsl(parts.query), base_url=BASE))
    return pages


def test_count_pages_the_results_with_next_links_until_every_match_is_read() -> None:
    params = [("patient", "demo-noisy-varicose"), ("code", "http://loinc.org|29463-7")]
    first = DEMO.search("Observation", [*params, ("_count", "40")], base_url=BASE)
    pages = _follow(DEMO, first)
    ids = [e["resource"]["id"] for page in pages for e in page["entry"]]
    assert len(pages) == 4
    assert len(ids) == len(set(ids)) == first["total"] == 156


def test_unsupported_parameters_and_modifiers_are_refused_rather_than_ignored() -> None:
    with pytest.raises(InvalidRequest, match="onset-date"):
        DEMO.search("Condition", [("onset-date", "ge2026-01-01")], base_url=BASE)
    with pytest.raises(InvalidRequest, match="code:in"):
        DEMO.search("Condition", [("code:in", "http://example.org/vs")], base_url=BASE)
    with pytest.raises(NotFound):
        DEMO.read("Patient", "nobody")


async def test_the_demo_fhir_endpoint_answers_reads_searches_and_errors_as_fhir_json() -> None:
    transport = httpx.ASGITransport(app=demo_fhir_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://demo-fhir.test") as fhir:
        read = await fhir.get("/demo/fhir/Patient/demo-s01")
        search = await fhir.get(
            "/demo/fhir/Condition", params={"patient": "demo-s06", "_count": "2"}
        )
        posted = await fhir.post(
            "/demo/fhir/Condition/_search",
            content="patient=demo-s06",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        missing = await fhir.get("/demo/fhir/Condition/nope")
        refused = await fhir.get("/demo/fhir/Condition", params={"onset-date": "2026"})
        metadata = await fhir.get("/demo/fhir/metadata")
    assert read.status_code == 200
    assert read.headers["content-type"].startswith("application/fhir+json")
    assert read.json()["id"] == "demo-s01"
    body = search.json()
    assert (body["total"], len(body["entry"])) == (4, 2)
    next_url = next(lk["url"] for lk in body["link"] if lk["relation"] == "next")
    assert next_url.startswith("http://demo-fhir.test/demo/fhir/Condition?")
    assert posted.json()["total"] == 4
    assert missing.status_code == 404
    assert missing.json()["resourceType"] == "OperationOutcome"
    assert refused.status_code == 400
    assert metadata.json()["fhirVersion"] == "4.0.1"


# --------------------------------------------------------------------------- through the API


@pytest.fixture
async def demo_client(settings: Settings, catalogue: Catalogue) -> AsyncIterator[httpx.AsyncClient]:
    """The real app whose fallback FHIR client reaches the demo FHIR endpoint in-process."""
    demo_settings = settings.model_copy(update={"fhir_allow_http": True, "fhir_open_server": True})
    fhir = httpx.ASGITransport(app=demo_fhir_app())
    app = app_with_playground(demo_settings, fhir_transport=fhir, catalogue=catalogue)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://cds.example.org") as c:
            yield c


def _rule_ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return sorted({card["source"]["topic"]["code"] for card in response.json()["cards"]})


async def _call(
    client: httpx.AsyncClient, catalogue: Catalogue, patient_id: str, *, prefetch: bool
) -> httpx.Response:
    patient = DEMO.patient(patient_id)
    service = next(s for s in catalogue.services.values() if patient.hook in s.hooks)
    body = DEMO.hook_request(
        patient_id,
        patient.hook,
        service.prefetch,
        fhir_server=DEMO_FHIR_BASE,
        with_prefetch=prefetch,
    )
    assert ("prefetch" in body) is prefetch
    return await client.post(f"/cds-services/{service.id}", json=body)


@pytest.mark.parametrize("patient_id", PATIENT_IDS)
async def test_each_demo_patient_with_full_prefetch_gets_exactly_its_expected_cards(
    demo_client: httpx.AsyncClient, catalogue: Catalogue, patient_id: str
) -> None:
    response = await _call(demo_client, catalogue, patient_id, prefetch=True)
    assert _rule_ids(response) == sorted(DEMO.patient(patient_id).expected_rules)


@pytest.mark.parametrize("patient_id", PATIENT_IDS)
async def test_each_demo_patient_fetched_from_the_demo_fhir_server_gets_the_same_cards(
    demo_client: httpx.AsyncClient, catalogue: Catalogue, patient_id: str
) -> None:
    response = await _call(demo_client, catalogue, patient_id, prefetch=False)
    assert _rule_ids(response) == sorted(DEMO.patient(patient_id).expected_rules)
