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
    return SubjectCheck(patient_id).names_other_patient(raw)


class SubjectCheck:
    """:func:`names_other_patient` for one hook call's patient, remembering for that call only
    what each reference string names: a chart names its patient the same way in every resource,
    so each distinct string is parsed once. The strings hold patient ids, so a check is never
    kept beyond its call."""

    def __init__(self, patient_id: str) -> None:
        self.patient_id = patient_id
        self._other: dict[str, bool] = {}  # reference -> whether it names another patient

    def names_other_patient(self, raw: Mapping[str, Any]) -> bool:
        """Whether ``raw``'s ``subject`` or ``patient`` reference names another patient."""
        for name in PATIENT_FIELDS:
            ref = raw.get(name)
            if not isinstance(ref, dict):
                continue
            reference = ref.get("reference")
            if not isinstance(reference, str):
                continue
            other = self._other.get(reference)
            if other is None:
                named = patient_id_of(reference)
                other = self._other[reference] = named is not None and named != self.patient_id
            if other:
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
