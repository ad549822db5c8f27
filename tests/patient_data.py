"""A hook request's patient data read in tests as a hook call reads it: ``read_prefetch``, then
``complete`` (``cds.invocation`` runs the same two steps)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from cds.data.fhir_client import FhirClient
from cds.data.patient_data import FhirAccess, PatientData, complete, read_prefetch
from cds.hooks import HookRequest
from cds.settings import Settings

HOOK_INSTANCE = "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea"


def fhir_access(settings: Settings, transport: Any = None, **client: Any) -> FhirAccess:
    """The app's FHIR access for ``settings``; ``transport`` stands in for the network."""
    return FhirAccess.of(settings, FhirClient(settings, transport, **client))


def hook_request(
    context: Mapping[str, Any],
    *,
    prefetch: Mapping[str, Any] | None = None,
    fhir_server: str | None = None,
    token: str | None = None,
    token_patient: str | None = None,
    scope: str = "patient/*.read",
    expires_in: int = 300,
) -> HookRequest:
    """A patient-view request as a CDS Client sends it; ``token`` None: no fhirAuthorization."""
    body: dict[str, Any] = {"hook": "patient-view", "hookInstance": HOOK_INSTANCE}
    body["context"] = dict(context)
    if fhir_server is not None:
        body["fhirServer"] = fhir_server
    if prefetch is not None:
        body["prefetch"] = dict(prefetch)
    if token is not None:
        authorization: dict[str, Any] = {"access_token": token, "token_type": "Bearer"}
        authorization |= {"scope": scope, "expires_in": expires_in, "subject": "cds-service"}
        if token_patient is not None:
            authorization["patient"] = token_patient
        body["fhirAuthorization"] = authorization
    return HookRequest.model_validate(body)


async def read_patient_data(
    access: FhirAccess | None,
    templates: Mapping[str, str],
    request: HookRequest,
    required: Iterable[str] = (),
) -> PatientData:
    """The data a hook call with ``templates`` reads for ``request``; ``access`` is closed."""
    try:
        return await complete(read_prefetch(templates, required, request, access), access)
    finally:
        if access is not None:
            await access.aclose()
