"""A hook call's patient data: prefetch first, then the FHIR server for what is missing.

The hook call runs it in two steps, ``read_prefetch`` (synchronous: a call with complete
prefetch never waits on anything) and ``complete`` (the fetches, only when keys are missing).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from cds.data.fhir_client import Fetches, FetchJob, FhirClient, absolute_url
from cds.data.grant import NO_CLIENT, Grant, GrantPolicy
from cds.data.prefetch import Classified, PrefetchState, classify_all
from cds.data.scopes import target_of
from cds.data.templates import render
from cds.errors import MissingData
from cds.hooks import HookRequest
from cds.settings import Settings
from cds.subjects import holds_other_patient

OTHER_PATIENT_PREFETCHED = "the prefetched Patient is not the patient of context.patientId"
OTHER_PATIENT_FETCHED = "the FHIR server answered with a Patient other than context.patientId"


@dataclass(slots=True)
class PatientData:
    """Raw FHIR JSON per prefetch key, from prefetch or the FHIR server, plus what is missing.

    A key in ``resources`` with an empty list is known to have no data; a key in ``unavailable``
    is unknown (its reason names no patient data); ``incomplete`` keys hold only some pages;
    ``fetched`` counts the HTTP requests sent to the FHIR server.
    """

    resources: dict[str, Sequence[dict[str, Any]]] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    fetched: int = 0
    incomplete: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class FhirAccess:
    """How the app reads what prefetch lacks, for its lifetime: the FHIR client, the grant
    policy, and whether errored prefetch is read again (CDS_REFETCH_PREFETCH_ERRORS)."""

    client: FhirClient
    policy: GrantPolicy
    refetch_errors: bool
    budget_seconds: float  # CDS_REQUEST_BUDGET_SECONDS: all of one call's fetches

    @classmethod
    def of(cls, settings: Settings, client: FhirClient) -> FhirAccess:
        return cls(
            client,
            GrantPolicy.from_settings(settings),
            refetch_errors=settings.refetch_prefetch_errors,
            budget_seconds=settings.request_budget_seconds,
        )

    def grant(self, request: HookRequest, *, received: float | None, issuer: str | None) -> Grant:
        """What ``request``'s ``fhirServer`` and ``fhirAuthorization`` let the call read."""
        authorization = request.fhir_authorization
        patient_id = request.context.get("patientId")
        if authorization is None:
            return self.policy.grant(
                request.fhir_server, None, patient_id=patient_id, issuer=issuer
            )
        return self.policy.grant(
            request.fhir_server,
            authorization.access_token,
            patient_id=patient_id,
            token_patient=authorization.patient,
            scope=authorization.scope,
            expires_in=authorization.expires_in,
            received=received,
            issuer=issuer,
        )

    async def aclose(self) -> None:
        await self.client.aclose()


@dataclass(slots=True)
class Gathering:
    """What prefetch alone answered, and the keys still to read from the FHIR server."""

    data: PatientData
    grant: Grant
    required: set[str]
    templates: Mapping[str, str]
    hook_context: Mapping[str, Any]
    refetch_errors: bool = False  # CDS_REFETCH_PREFETCH_ERRORS
    jobs: list[FetchJob] = field(default_factory=list)
    fetched: set[str] = field(default_factory=set)  # keys already read from the FHIR server
    patient_id: object = field(init=False)  # context.patientId, as the client sent it
    patient_keys: frozenset[str] = field(init=False)  # keys whose template reads a Patient

    def __post_init__(self) -> None:
        self.patient_id = self.hook_context.get("patientId")
        self.patient_keys = frozenset(
            key for key, template in self.templates.items() if _reads_patient(template)
        )

    def read(self, key: str, value: Classified) -> None:
        """Take what the client prefetched for ``key`` (P-09..P-14): its resources, a job to
        read the rest or all of it, or the key unavailable."""
        if key in self.patient_keys and holds_other_patient(value.resources, self.patient_id):
            # Another patient's Patient discredits the whole key: fetch it again, or go without.
            value = Classified(PrefetchState.needs_fetch, reason=OTHER_PATIENT_PREFETCHED)
        if value.state is PrefetchState.no_data:
            self.data.resources[key] = []
        elif value.state is PrefetchState.data:
            self._first_page(key, value)
        elif value.errored and not self.refetch_errors:
            self.data.unavailable[key] = (
                f"{value.reason}; not queried again (CDS_REFETCH_PREFETCH_ERRORS is off)"
            )
        else:
            self.fetch(key, value.reason or "")

    def _first_page(self, key: str, value: Classified) -> None:
        # As classified: a Bundle's resources stay unlisted, for the record to read in one pass.
        self.data.resources[key] = value.resources
        if value.next_url is None:
            return
        server = self.grant.server
        if server is None or self.grant.refuses(self.templates[key]):
            # P-14: without a usable server (or scope) only the first page counts.
            self.data.incomplete.add(key)
            return
        url = absolute_url(server, "").join(value.next_url)
        self.jobs.append(FetchJob(key, url, resources=tuple(value.resources), pages=1))

    def fetch(self, key: str, why: str) -> None:
        """A job to read ``key`` from the FHIR server; or, when it may not be asked, ``key``
        unavailable for ``why`` and what stops the fetch."""
        server = self.grant.server
        if server is None:
            self.data.unavailable[key] = f"{why}; {self.grant.refusal}"
            return
        rendered = render(self.templates[key], self.hook_context)
        if rendered is None:
            self.data.unavailable[key] = f"{why}; a template token is not in context"
            return
        scope_refusal = self.grant.refuses(rendered)
        if scope_refusal is not None:
            self.data.unavailable[key] = f"{why}; {scope_refusal}"
            return
        self.jobs.append(FetchJob(key, absolute_url(server, rendered), why=why))

    def take(self, fetches: Fetches) -> None:
        """What the FHIR server answered for the jobs: each key's pages, or why it has none."""
        data = self.data
        data.fetched += fetches.requests
        for key in fetches.keys:
            if key.pages > 0:
                data.resources[key.key] = key.resources
                if key.incomplete:
                    data.incomplete.add(key.key)
            else:
                data.unavailable[key.key] = f"{key.why}; {key.reason or 'no data arrived'}"
        self.jobs = []

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


@cache
def _reads_patient(template: str) -> bool:
    # Remembered: a service's templates are few and fixed, and every call asks about each.
    return target_of(template)[0] == "Patient"


def read_prefetch(
    templates: Mapping[str, str],
    required: Iterable[str],
    request: HookRequest,
    access: FhirAccess | None,
    *,
    received: float | None = None,
    issuer: str | None = None,
) -> Gathering:
    """Each of a service's prefetch ``templates`` read from ``request``'s prefetch (P-08..P-14),
    and a job for each key the FHIR server must answer; without ``access`` (``cds evaluate``)
    nothing is.

    ``received`` (time.monotonic()) starts the access token's ``expires_in`` clock; ``issuer``
    is the authenticated caller's, whose fhirServers bound where the service fetches. A key the
    client answered with an OperationOutcome is not asked for again unless
    CDS_REFETCH_PREFETCH_ERRORS: the client sends one to spare the service that query (P-13).
    """
    if access is None:
        grant = Grant.refused(NO_CLIENT)
    else:
        grant = access.grant(request, received=received, issuer=issuer)
    gathering = Gathering(
        PatientData(),
        grant,
        set(required),
        templates,
        request.context,
        refetch_errors=access is not None and access.refetch_errors,
    )
    for key, value in classify_all(templates, request.prefetch).items():
        gathering.read(key, value)
    return gathering


async def complete(gathering: Gathering, access: FhirAccess | None) -> PatientData:
    """Run ``gathering``'s jobs on the FHIR server (P-15..P-19, E-05), then finish it.

    The fetches stop at the request's budget or when the access token expires, whichever is
    first (R-08).
    """
    grant = gathering.grant
    if gathering.jobs and access is not None and grant.server is not None:
        gathering.fetched.update(job.key for job in gathering.jobs)
        budget, out_of_time = grant.time_left(access.budget_seconds)
        fetches = await access.client.fetch(
            gathering.jobs,
            fhir_server=grant.server,
            access_token=grant.access_token,
            budget_seconds=budget,
            out_of_time=out_of_time,
        )
        gathering.take(fetches)
    return gathering.finish()
