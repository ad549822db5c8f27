"""The FHIR fallback against a real FHIR server: fetched data equals prefetched data (P-09)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from cds.data.patient_data import PatientData
from cds.data.templates import render
from cds.errors import MissingData
from cds.fhir import ParseReport, parse_resources
from cds.settings import Settings
from tests.patient_data import fhir_access, hook_request, read_patient_data

pytestmark = [pytest.mark.fhir_server, pytest.mark.anyio]

ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
LOINC = "http://loinc.org"
TEMPLATES = {
    "patient": "Patient/{{context.patientId}}",
    "conditions": "Condition?patient={{context.patientId}}",
    "radiculopathy": f"Condition?patient={{{{context.patientId}}}}&code={ICD10CM}|M54.16",
    "pain-scores": f"Observation?patient={{{{context.patientId}}}}&code={LOINC}|72514-3",
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _settings(**overrides: Any) -> Settings:
    # The test server speaks plain http on loopback.
    return Settings(**{"env": "test", "fhir_allow_http": True, **overrides})


def _transaction(patient_id: str) -> dict[str, Any]:
    subject = {"reference": f"Patient/{patient_id}"}

    def condition(code: str, display: str) -> dict[str, Any]:
        return {
            "resourceType": "Condition",
            "clinicalStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                        "code": "active",
                    }
                ]
            },
            "code": {"coding": [{"system": ICD10CM, "code": code, "display": display}]},
            "subject": subject,
        }

    resources: list[dict[str, Any]] = [
        condition("M54.16", "Radiculopathy, lumbar region"),
        condition("M79.671", "Pain in right foot"),
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "72514-3"}]},
            "subject": subject,
            "effectiveDateTime": "2026-05-01T10:00:00Z",
            "valueQuantity": {
                "value": 7,
                "unit": "{score}",
                "system": "http://unitsofmeasure.org",
                "code": "{score}",
            },
        },
    ]
    entries: list[dict[str, Any]] = [
        {
            "resource": {
                "resourceType": "Patient",
                "id": patient_id,
                "gender": "female",
                "birthDate": "1961-03-14",
            },
            "request": {"method": "PUT", "url": f"Patient/{patient_id}"},
        },
        *(
            {"resource": r, "request": {"method": "POST", "url": r["resourceType"]}}
            for r in resources
        ),
    ]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


@pytest.fixture
async def patient_id(fhir_server_url: str) -> str:
    """A fresh patient (own id, so tests share the session's server safely) with data loaded."""
    patient = f"fp-{uuid.uuid4().hex[:12]}"
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(
            fhir_server_url,
            json=_transaction(patient),
            headers={"Content-Type": "application/fhir+json"},
        )
    assert response.status_code == 200, response.text
    return patient


async def _fallback(
    fhir_server_url: str, patient: str, templates: dict[str, str], **settings: Any
) -> PatientData:
    request = hook_request(
        {"userId": "Practitioner/abc", "patientId": patient},
        fhir_server=fhir_server_url,
        token="integration-test-token",
        token_patient=patient,
    )
    return await read_patient_data(
        fhir_access(_settings(**settings)), templates, request, templates
    )


async def _prefetch_as_a_client_would(
    fhir_server_url: str, patient: str, templates: dict[str, str]
) -> dict[str, Any]:
    context = {"userId": "Practitioner/abc", "patientId": patient}
    prefetch: dict[str, Any] = {}
    async with httpx.AsyncClient(timeout=30) as http:
        for key, template in templates.items():
            rendered = render(template, context)
            assert rendered is not None
            response = await http.get(f"{fhir_server_url}/{rendered}")
            assert response.status_code == 200, response.text
            prefetch[key] = response.json()
    return prefetch


def _ids(data: PatientData) -> dict[str, list[str]]:
    return {key: sorted(r["id"] for r in resources) for key, resources in data.resources.items()}


async def test_fetched_data_equals_the_same_data_passed_as_prefetch(
    fhir_server_url: str, patient_id: str
) -> None:
    """P-09, P-15(a), P-16: no prefetch + fhirServer + token gives what prefetch would give."""
    fetched = await _fallback(fhir_server_url, patient_id, TEMPLATES)
    prefetch = await _prefetch_as_a_client_would(fhir_server_url, patient_id, TEMPLATES)
    request = hook_request(
        {"userId": "Practitioner/abc", "patientId": patient_id}, prefetch=prefetch
    )
    prefetched = await read_patient_data(None, TEMPLATES, request, TEMPLATES)

    assert fetched.unavailable == {}
    assert fetched.fetched == len(TEMPLATES)
    assert prefetched.fetched == 0
    assert fetched.resources == prefetched.resources
    assert len(fetched.resources["patient"]) == 1
    assert len(fetched.resources["conditions"]) == 2
    assert [c["code"]["coding"][0]["code"] for c in fetched.resources["radiculopathy"]] == [
        "M54.16"
    ]
    assert [o["code"]["coding"][0]["code"] for o in fetched.resources["pain-scores"]] == ["72514-3"]


async def test_next_links_from_the_real_server_are_followed(
    fhir_server_url: str, patient_id: str
) -> None:
    """P-14: a one-per-page search is read to the end by following ``next``."""
    templates = {"conditions": "Condition?patient={{context.patientId}}&_count=1"}
    paged = await _fallback(fhir_server_url, patient_id, templates)
    whole = await _fallback(fhir_server_url, patient_id, {"conditions": TEMPLATES["conditions"]})

    assert paged.fetched == 2
    assert paged.incomplete == set()
    assert _ids(paged) == _ids(whole)


async def test_the_page_cap_holds_against_the_real_server(
    fhir_server_url: str, patient_id: str
) -> None:
    """P-14: at most fhir_max_pages pages; the key is marked incomplete."""
    templates = {"conditions": "Condition?patient={{context.patientId}}&_count=1"}
    data = await _fallback(fhir_server_url, patient_id, templates, fhir_max_pages=1)
    assert data.fetched == 1
    assert len(data.resources["conditions"]) == 1
    assert data.incomplete == {"conditions"}


async def test_a_patient_the_server_does_not_know_gives_412(fhir_server_url: str) -> None:
    """E-05, P-15(c): the read of required data fails with 404 -> MissingData."""
    with pytest.raises(MissingData, match="HTTP 404") as caught:
        await _fallback(fhir_server_url, "no-such-patient", {"patient": TEMPLATES["patient"]})
    assert caught.value.keys == ["patient"]


async def test_an_unknown_patient_has_empty_searches_not_missing_data(
    fhir_server_url: str,
) -> None:
    """P-12: an empty searchset from the server is known-empty, not unavailable."""
    data = await _fallback(fhir_server_url, "nobody", {"conditions": TEMPLATES["conditions"]})
    assert data.resources == {"conditions": []}
    assert data.unavailable == {}


async def test_resources_from_the_real_server_parse_as_r4b_models(
    fhir_server_url: str, patient_id: str
) -> None:
    """P-09: what the server returns is valid R4 for the lenient parser."""
    data = await _fallback(fhir_server_url, patient_id, TEMPLATES)
    report = ParseReport()
    models = parse_resources((r for rs in data.resources.values() for r in rs), report)
    assert report.skipped_total == 0
    assert sorted(type(m).__name__ for m in models) == [
        "Condition",
        "Condition",
        "Condition",
        "Observation",
        "Patient",
    ]
