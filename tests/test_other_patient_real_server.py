"""Another patient's data from a real FHIR server: never used, counted; a foreign Patient is 412."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from cds.data.patient_data import PatientData
from cds.errors import MissingData
from cds.record import build_record
from cds.rules.policy import load_policy
from cds.settings import PROJECT_ROOT, Settings
from cds.valuesets import load_valuesets
from tests.patient_data import fhir_access, hook_request, read_patient_data

pytestmark = [pytest.mark.fhir_server, pytest.mark.anyio]

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
CPT = "http://www.ama-assn.org/go/cpt"
TYPES = (
    "Condition",
    "Observation",
    "MedicationRequest",
    "MedicationStatement",
    "Procedure",
    "ServiceRequest",
    "DiagnosticReport",
)


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


def _chart(patient: str, tag: str) -> list[dict[str, Any]]:
    """One resource of each type the rules read, each one a rule would act on."""
    subject = {"reference": f"Patient/{patient}"}
    bodies: list[dict[str, Any]] = [
        {
            "resourceType": "Condition",
            "clinicalStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                        "code": "active",
                    }
                ]
            },
            "code": {"coding": [{"system": ICD10CM, "code": "R33.9", "display": "Retention"}]},
            "onsetDateTime": "2026-05-30",
        },
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
            "effectiveDateTime": "2026-05-20",
            "valueQuantity": {
                "value": 70,
                "unit": "kg",
                "system": "http://unitsofmeasure.org",
                "code": "kg",
            },
        },
        {
            "resourceType": "MedicationRequest",
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": {"text": "Metformin 500 mg tablet"},
        },
        {
            "resourceType": "MedicationStatement",
            "status": "active",
            "medicationCodeableConcept": {"text": "Metformin 1000 mg tablet"},
        },
        {
            "resourceType": "Procedure",
            "status": "completed",
            "code": {"coding": [{"system": CPT, "code": "95886", "display": "Needle EMG"}]},
            "performedDateTime": "2026-04-01",
        },
        {
            "resourceType": "ServiceRequest",
            "status": "active",
            "intent": "order",
            "code": {
                "coding": [
                    {
                        "system": "http://snomed.info/sct",
                        "code": "307777008",
                        "display": "Referral to vascular surgeon",
                    }
                ]
            },
            "authoredOn": "2026-04-01",
        },
        {
            "resourceType": "DiagnosticReport",
            "status": "final",
            "code": {"coding": [{"system": CPT, "code": "95886", "display": "Needle EMG"}]},
            "effectiveDateTime": "2026-04-01",
        },
    ]
    return [
        {**raw, "id": f"{tag}-{raw['resourceType'].lower()}", "subject": subject} for raw in bodies
    ]


def _patient(patient: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": patient, "birthDate": "1961-03-14"}


@pytest.fixture(scope="module")
async def two_patients(fhir_server_url: str) -> tuple[str, str]:
    """The patient in context and someone else, each with a chart under client-chosen ids."""
    ours, theirs = f"fp-{uuid.uuid4().hex[:10]}", f"fp-{uuid.uuid4().hex[:10]}"
    resources = [
        _patient(ours),
        _patient(theirs),
        *_chart(ours, ours),
        *_chart(theirs, theirs),
    ]
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
            for r in resources
        ],
    }
    async with httpx.AsyncClient(timeout=60) as http:
        response = await http.post(
            fhir_server_url, json=bundle, headers={"Content-Type": "application/fhir+json"}
        )
    assert response.status_code == 200, response.text[:500]
    return ours, theirs


async def _gather(
    fhir_server_url: str,
    patient: str,
    templates: dict[str, str],
    prefetch: dict[str, Any] | None = None,
) -> PatientData:
    # The test server speaks plain http on loopback.
    settings = Settings(env="test", fhir_allow_http=True, request_budget_seconds=30)
    request = hook_request(
        {"userId": "Practitioner/abc", "patientId": patient},
        prefetch=prefetch,
        fhir_server=fhir_server_url,
        token="integration-test-token",
        token_patient=patient,
    )
    return await read_patient_data(fhir_access(settings), templates, request, {"patient"})


async def test_a_fetched_bundle_mixing_in_another_patients_resources_uses_only_ours(
    fhir_server_url: str, two_patients: tuple[str, str]
) -> None:
    ours, theirs = two_patients
    # A server that answers a search with more than the patient asked for (here by _id).
    templates = {"patient": "Patient/{{context.patientId}}"} | {
        t.lower(): f"{t}?_id={ours}-{t.lower()},{theirs}-{t.lower()}" for t in TYPES
    }
    data = await _gather(fhir_server_url, ours, templates)
    assert {k: len(v) for k, v in data.resources.items() if k != "patient"} == {
        t.lower(): 2 for t in TYPES
    }
    everything = [raw for found in data.resources.values() for raw in found]
    record = build_record(
        load_valuesets(PROJECT_ROOT / "rules" / "valuesets"),
        NOW,
        ours,
        everything,
        windows=load_policy(PROJECT_ROOT / "rules").condition_windows,
    )
    assert sorted(e.id for e in record.entries) == sorted(f"{ours}-{t.lower()}" for t in TYPES)
    assert record.skipped == dict.fromkeys(TYPES, 1)
    assert record.patient_known


async def test_a_prefetched_patient_who_is_someone_else_is_read_again_from_the_server(
    fhir_server_url: str, two_patients: tuple[str, str]
) -> None:
    ours, theirs = two_patients
    data = await _gather(
        fhir_server_url,
        ours,
        {"patient": "Patient/{{context.patientId}}"},
        prefetch={"patient": _patient(theirs)},
    )
    assert [raw["id"] for raw in data.resources["patient"]] == [ours]
    assert data.fetched >= 1


async def test_a_server_answering_with_someone_elses_patient_leaves_the_key_missing(
    fhir_server_url: str, two_patients: tuple[str, str]
) -> None:
    ours, theirs = two_patients
    with pytest.raises(MissingData) as raised:
        await _gather(
            fhir_server_url, ours, {"patient": f"Patient?_id={{{{context.patientId}}}},{theirs}"}
        )
    assert raised.value.expression == ["prefetch.patient"]
    assert theirs not in str(raised.value)
