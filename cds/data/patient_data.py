"""A hook call's patient data: prefetch first, then the FHIR server for what is missing."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from cds.data.fhir_client import FetchJob, FhirClient, absolute_url
from cds.data.grant import TOKEN_EXPIRED, Grant
from cds.data.prefetch import Classified, PrefetchState, classify_all
from cds.data.scopes import target_of
from cds.data.templates import render
from cds.errors import MissingData
from cds.settings import Settings
from cds.subjects import holds_other_patient

OTHER_PATIENT_PREFETCHED = "the prefetched Patient is not the patient of context.patientId"
OTHER_PATIENT_FETCHED = "the FHIR server answered with a Patient other than context.patientId"


@dataclass(slots=True)
class PatientData:
    """Raw FHIR JSON per prefetch key, from prefetch or the FHIR server, plus what is missing.

    A key in ``resources`` with an empty list is known to have no data; a key in ``unavailable``
    is unknown (its reason names no patient data); ``incomplete`` keys hold only some pages.
    """

    resources: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    fetched: int = 0
    incomplete: set[str] = field(default_factory=set)


@dataclass(slots=True)
class Gathering:
    """What prefetch alone answered, and the keys still to read from the FHIR server."""

    data: PatientData
    jobs: list[FetchJob]
    required: set[str]
    fhir_server: str | None
    grant: Grant
    patient_id: object = None  # context.patientId, as the client sent it
    patient_keys: frozenset[str] = frozenset()  # keys whose template reads a Patient
    refusal: str | None = None  # why the FHIR server may not be asked at all
    templates: Mapping[str, str] = field(default_factory=dict)
    hook_context: Mapping[str, Any] = field(default_factory=dict)
    fetched: set[str] = field(default_factory=set)  # keys already read from the FHIR server

    def finish(self) -> PatientData:
        """The data, or ``MissingData`` (412) when a key in ``required`` stayed unavailable.

        A Patient key the FHIR server answered with another patient is unavailable.
        """
        data = self.data
        for key in self.patient_keys & data.resources.keys():
            if holds_other_patient(data.resources[key], self.patient_id):
                del data.resources[key]
                data.unavailable[key] = OTHER_PATIENT_FETCHED
        missing = sorted(self.required & data.unavailable.keys())
        if missing:
            raise MissingData(missing, "; ".join(f"{k}: {data.unavailable[k]}" for k in missing))
        return data

    def fetch(self, key: str, why: str) -> None:
        """A job to read ``key`` from the FHIR server; or, when it may not be asked, ``key``
        unavailable for ``why`` and what stops the fetch."""
        if self.refusal is not None or self.fhir_server is None:
            self.data.unavailable[key] = f"{why}; {self.refusal}"
            return
        rendered = render(self.templates[key], self.hook_context)
        if rendered is None:
            self.data.unavailable[key] = f"{why}; a template token is not in context"
            return
        scope_refusal = self.grant.refuses(rendered)
        if scope_refusal is not None:
            self.data.unavailable[key] = f"{why}; {scope_refusal}"
            return
        self.jobs.append(FetchJob(key, absolute_url(self.fhir_server, rendered), why=why))

    def refetch(self, reasons: Mapping[str, str]) -> bool:
        """The keys in ``reasons`` hold data that cannot be read: a job to read each again from
        the FHIR server (once: a key the server answered is not asked again), else the key is
        unavailable. Whether any fetch is to run."""
        self.jobs = []
        for key, why in reasons.items():
            self.data.resources.pop(key, None)
            self.data.incomplete.discard(key)
            if key in self.fetched:
                self.data.unavailable[key] = f"{why}; as the FHIR server sent it"
            else:
                self.fetch(key, why)
        return bool(self.jobs)


def read_prefetch(
    templates: Mapping[str, str],
    *,
    hook_context: Mapping[str, Any],
    prefetch: Mapping[str, Any] | None,
    fhir_server: str | None,
    client: FhirClient | None,
    grant: Grant,
    required: set[str],
    issuer: str | None = None,
) -> Gathering:
    """Each declared key read from prefetch (P-08..P-14), and a job for each key the FHIR
    server must answer; without ``client`` (or when it refuses the server for this call, from
    the authenticated ``issuer``) nothing is.

    A key the client answered with an OperationOutcome is not asked for again unless
    CDS_REFETCH_PREFETCH_ERRORS: the client sends one to spare the service that query (P-13).

    Synchronous on purpose: a call with complete prefetch never waits on anything.
    """
    if client is None:
        refusal: str | None = "no FHIR client is configured"
        refetch_errors = False
    else:
        refusal = client.refusal(
            fhir_server,
            grant.access_token,
            grant.patient,
            hook_context.get("patientId"),
            issuer=issuer,
        )
        refetch_errors = client.settings.refetch_prefetch_errors
    data = PatientData()
    patient_id = hook_context.get("patientId")
    patient_keys = frozenset(k for k, t in templates.items() if target_of(t)[0] == "Patient")
    gathering = Gathering(
        data,
        [],
        required,
        fhir_server,
        grant,
        patient_id=patient_id,
        patient_keys=patient_keys,
        refusal=refusal,
        templates=templates,
        hook_context=hook_context,
    )
    jobs = gathering.jobs
    for key, classified in classify_all(templates, prefetch).items():
        value = classified
        if key in patient_keys and holds_other_patient(value.resources, patient_id):
            # Another patient's Patient discredits the whole key: fetch it again, or go without.
            value = Classified(PrefetchState.needs_fetch, reason=OTHER_PATIENT_PREFETCHED)
        if value.state is PrefetchState.no_data:
            data.resources[key] = []
        elif value.state is PrefetchState.data:
            data.resources[key] = list(value.resources)
            if value.next_url is None:
                continue
            if refusal is not None or fhir_server is None or grant.refuses(templates[key]):
                # P-14: without a usable server (or scope) only the first page counts.
                data.incomplete.add(key)
                continue
            url = absolute_url(fhir_server, "").join(value.next_url)
            jobs.append(FetchJob(key, url, resources=list(value.resources), pages=1))
        elif value.errored and not refetch_errors:
            data.unavailable[key] = (
                f"{value.reason}; not queried again (CDS_REFETCH_PREFETCH_ERRORS is off)"
            )
        else:
            gathering.fetch(key, value.reason or "")
    return gathering


async def complete(
    gathering: Gathering, client: FhirClient | None, budget_seconds: float | None = None
) -> PatientData:
    """Run ``gathering``'s jobs on the FHIR server (P-15..P-19, E-05), then finish it.

    The fetches stop at the request's budget or when the access token expires, whichever is
    first (R-08: the token is transient and never used past ``expires_in``).
    """
    if gathering.jobs and client is not None and gathering.fhir_server is not None:
        gathering.fetched.update(job.key for job in gathering.jobs)
        budget = budget_seconds or client.settings.request_budget_seconds
        out_of_time = None
        expires_at = gathering.grant.expires_at
        token_left = budget if expires_at is None else expires_at - time.monotonic()
        if token_left < budget:
            budget, out_of_time = max(token_left, 0.0), TOKEN_EXPIRED
        await client.run(
            gathering.jobs,
            fhir_server=gathering.fhir_server,
            access_token=gathering.grant.access_token,
            budget_seconds=budget,
            data=gathering.data,
            out_of_time=out_of_time,
        )
        gathering.jobs = []
    return gathering.finish()


async def gather(
    templates: Mapping[str, str],
    *,
    hook_context: Mapping[str, Any],
    prefetch: Mapping[str, Any] | None,
    fhir_server: str | None,
    access_token: SecretStr | None,
    token_patient: str | None,
    required: set[str],
    client: FhirClient | None,
    settings: Settings | None = None,
    budget_seconds: float | None = None,
    scope: str | None = None,
    expires_in: int | None = None,
) -> PatientData:
    """Each declared key's resources from prefetch or the FHIR server (P-08..P-19, E-05).

    Without ``client`` a temporary one is made from ``settings``; with neither, nothing is
    fetched. Raises ``MissingData`` (412) when a key in ``required`` stays unavailable.
    """
    own_client = FhirClient(settings) if client is None and settings is not None else None
    if own_client is not None:
        client = own_client
    try:
        gathering = read_prefetch(
            templates,
            hook_context=hook_context,
            prefetch=prefetch,
            fhir_server=fhir_server,
            client=client,
            grant=Grant.of(access_token, patient=token_patient, scope=scope, expires_in=expires_in),
            required=required,
        )
        return await complete(gathering, client, budget_seconds)
    finally:
        if own_client is not None:
            await own_client.aclose()
