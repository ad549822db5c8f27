"""A symptom recorded only as a finding Observation (rules.md 3.3) fires as a Condition does.

The `findings` (Observation.code) and `findingvalues` (valueCodeableConcept) prefetch keys fetch
them, from the FHIR server when the EHR sends no prefetch and from prefetch when it does.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from cds.catalogue import Catalogue
from tests.fhirserver import fetching_app

pytestmark = pytest.mark.anyio

SERVICE = "back-to-foot"
SNOMED = "http://snomed.info/sct"
FOOT_DROP = {"system": SNOMED, "code": "6077001", "display": "Foot drop"}
# A finding whose code only says "a finding" carries the symptom in its value.
CLINICAL_FINDING = {"system": SNOMED, "code": "404684003", "display": "Clinical finding"}
NOW = "2026-03-01T12:00:00+00:00"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def app(
    tmp_path_factory: pytest.TempPathFactory, catalogue: Catalogue
) -> AsyncIterator[FastAPI]:
    db = tmp_path_factory.mktemp("findings") / "cds.db"
    async with fetching_app(db, catalogue, NOW) as application:
        yield application


def _condition(patient: str, code: dict[str, str], onset: str) -> dict[str, Any]:
    status = "http://terminology.hl7.org/CodeSystem/condition-clinical"
    return {
        "resourceType": "Condition",
        "subject": {"reference": f"Patient/{patient}"},
        "clinicalStatus": {"coding": [{"system": status, "code": "active"}]},
        "code": {"coding": [code]},
        "onsetDateTime": onset,
    }


def _sciatica(patient: str) -> dict[str, Any]:
    radiculopathy = {
        "system": "http://hl7.org/fhir/sid/icd-10-cm",
        "code": "M54.17",
        "display": "Radiculopathy, lumbosacral region",
    }
    return _condition(patient, radiculopathy, "2025-11-01")


def _finding(patient: str, *, in_value: bool) -> dict[str, Any]:
    finding: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": "2026-02-19",
    }
    if in_value:
        return finding | {
            "code": {"coding": [CLINICAL_FINDING]},
            "valueCodeableConcept": {"coding": [FOOT_DROP]},
        }
    return finding | {"code": {"coding": [FOOT_DROP]}}


def _chart(patient: str, recorded_as: str) -> list[dict[str, Any]]:
    """The patient's sciatica and a new foot drop, recorded as a Condition or a finding."""
    foot_drop = {
        "condition": _condition(patient, FOOT_DROP, "2026-02-19"),
        "finding": _finding(patient, in_value=False),
        "finding value": _finding(patient, in_value=True),
    }[recorded_as]
    return [_sciatica(patient), foot_drop]


def _patient(patient: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": patient, "gender": "male", "birthDate": "1968-01-15"}


def _request(patient: str, **extra: Any) -> dict[str, Any]:
    return {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/dr1", "patientId": patient},
        **extra,
    }


def _red_flags(response: httpx.Response) -> list[tuple[str, str, str, list[str]]]:
    """Each card's rule, indicator, summary and suggested codes: what the clinician sees."""
    assert response.status_code == 200, response.text
    return [
        (
            card["source"]["topic"]["code"],
            card["indicator"],
            card["summary"],
            [
                coding["code"]
                for suggestion in card.get("suggestions", [])
                for action in suggestion.get("actions", [])
                for coding in action.get("resource", {}).get("code", {}).get("coding", [])
            ],
        )
        for card in response.json()["cards"]
    ]


async def _call(app: FastAPI, body: dict[str, Any]) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://cds.example.org") as c:
        return await c.post(f"/cds-services/{SERVICE}", json=body)


async def _load(server: str, patient: str, resources: list[dict[str, Any]]) -> None:
    entries = [
        {"resource": _patient(patient), "request": {"method": "PUT", "url": f"Patient/{patient}"}},
        *(
            {"resource": r, "request": {"method": "POST", "url": r["resourceType"]}}
            for r in resources
        ),
    ]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(
            server, json=bundle, headers={"Content-Type": "application/fhir+json"}
        )
    assert response.status_code == 200, response.text


async def _fetched_from_the_server(app: FastAPI, server: str, recorded_as: str) -> httpx.Response:
    patient = f"fd-{uuid.uuid4().hex[:12]}"
    await _load(server, patient, _chart(patient, recorded_as))
    authorization = {
        "access_token": "test-access-token",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "footpath-cds",
        "patient": patient,
    }
    return await _call(app, _request(patient, fhirServer=server, fhirAuthorization=authorization))


def _bundle(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r | {"id": f"r{n}"}} for n, r in enumerate(resources)],
    }


KEY_OF = {"condition": "conditions", "finding": "findings", "finding value": "findingvalues"}


def _prefetch(catalogue: Catalogue, patient: str, recorded_as: str) -> dict[str, Any]:
    """Every key of the service, each holding what its template would return."""
    sciatica, foot_drop = _chart(patient, recorded_as)
    holds: dict[str, list[dict[str, Any]]] = {"conditions": [sciatica]}
    holds.setdefault(KEY_OF[recorded_as], []).append(foot_drop)
    prefetch: dict[str, Any] = {"patient": _patient(patient)}
    for key in catalogue.services[SERVICE].prefetch:
        if key != "patient":
            prefetch[key] = _bundle(holds.get(key, []))
    return prefetch


@pytest.mark.fhir_server
@pytest.mark.parametrize("recorded_as", ["finding", "finding value"])
async def test_a_foot_drop_recorded_only_as_a_finding_is_fetched_and_raises_the_red_flag(
    app: FastAPI, fhir_server_url: str, recorded_as: str
) -> None:
    """No prefetch: the findings keys are read from the real FHIR server, so RF-02 fires with the
    card a Condition gives."""
    as_condition = _red_flags(await _fetched_from_the_server(app, fhir_server_url, "condition"))
    as_finding = _red_flags(await _fetched_from_the_server(app, fhir_server_url, recorded_as))
    assert [rule for rule, *_ in as_condition] == ["RF-02"]
    assert as_finding == as_condition


@pytest.mark.parametrize("recorded_as", ["finding", "finding value"])
async def test_a_foot_drop_prefetched_under_a_findings_key_raises_the_red_flag(
    app: FastAPI, catalogue: Catalogue, recorded_as: str
) -> None:
    condition = _prefetch(catalogue, "p1", "condition")
    as_condition = _red_flags(await _call(app, _request("p1", prefetch=condition)))
    prefetch = _prefetch(catalogue, "p1", recorded_as)
    assert prefetch[KEY_OF[recorded_as]]["entry"], "the foot drop travels under its findings key"
    as_finding = _red_flags(await _call(app, _request("p1", prefetch=prefetch)))
    assert [rule for rule, *_ in as_condition] == ["RF-02"]
    assert as_finding == as_condition
