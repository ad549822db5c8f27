"""Builders for CDS Hooks requests in tests: every advertised prefetch key answered."""

from __future__ import annotations

from typing import Any

PATIENT_ID = "p1"


def searchset(*resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [{"resource": r} for r in resources],
    }


def patient(birth_date: str = "1975-03-02", **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": PATIENT_ID, "birthDate": birth_date, **extra}


def condition(
    cid: str,
    system: str,
    code: str,
    display: str,
    onset: str,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": cid,
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "verificationStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "code": "confirmed",
                }
            ]
        },
        "code": {"coding": [{"system": system, "code": code, "display": display}]},
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "onsetDateTime": onset,
        **extra,
    }


ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"


def hook_request(
    discovery_entry: dict[str, Any],
    resources_by_key: dict[str, list[dict[str, Any]]] | None = None,
    *,
    hook_instance: str = "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
    context: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A request for ``discovery_entry`` whose prefetch answers every key it advertises."""
    given = resources_by_key or {}
    prefetch: dict[str, Any] = {}
    for key, template in discovery_entry.get("prefetch", {}).items():
        if key in given:
            prefetch[key] = searchset(*given[key]) if "?" in template else given[key][0]
        elif "?" in template:
            prefetch[key] = searchset()
        else:
            prefetch[key] = patient()
    return {
        "hook": discovery_entry["hook"],
        "hookInstance": hook_instance,
        "context": context or {"userId": "Practitioner/example", "patientId": PATIENT_ID},
        "prefetch": prefetch,
    }
