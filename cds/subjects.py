"""Whose data a resource is: the patient its ``subject`` / ``patient`` reference names.

A resource naming another patient is never used for the patient in context, wherever it came
from (prefetch, the FHIR server, the hook's draft orders): an EHR bug, a broad search or a
mixed-up Bundle must not fire a card on someone else's cauda equina.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

PATIENT_FIELDS = ("subject", "patient")
OTHER_PATIENT = "names another patient than context.patientId"


def patient_id_of(reference: str) -> str | None:
    """The Patient id a literal reference names, or None when it names no Patient by id.

    Relative (``Patient/123``), absolute (``https://host/fhir/Patient/123``) and versioned
    (``Patient/123/_history/2``) forms all name ``123``: only the id is compared, since the
    same patient is reached through different bases. Contained (``#p``), ``urn:uuid:`` and
    non-Patient references name no Patient id, so they cannot be told apart here.
    """
    path = reference.split("?", 1)[0].split("#", 1)[0]
    segments = path.split("/")
    if "_history" in segments:
        segments = segments[: segments.index("_history")]
    if len(segments) < 2 or segments[-2] != "Patient" or not segments[-1]:
        return None
    return segments[-1]


def names_other_patient(raw: Mapping[str, Any], patient_id: str) -> bool:
    """Whether ``raw``'s ``subject`` or ``patient`` reference names a Patient other than
    ``patient_id``."""
    for name in PATIENT_FIELDS:
        ref = raw.get(name)
        if not isinstance(ref, dict):
            continue
        reference = ref.get("reference")
        if isinstance(reference, str):
            named = patient_id_of(reference)
            if named is not None and named != patient_id:
                return True
    return False


def is_other_patient(raw: Mapping[str, Any], patient_id: str) -> bool:
    """Whether ``raw`` is a Patient resource with an id other than ``patient_id``."""
    ident = raw.get("id")
    return raw.get("resourceType") == "Patient" and isinstance(ident, str) and ident != patient_id


def holds_other_patient(resources: Iterable[Mapping[str, Any]], patient_id: object) -> bool:
    """Whether a prefetch key's resources include a Patient who is not ``patient_id``."""
    if not isinstance(patient_id, str):
        return False
    return any(is_other_patient(raw, patient_id) for raw in resources)
