"""One hook call: validate the request, obtain the patient's data, evaluate, audit, answer."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, Protocol, TypeVar

from pydantic import ValidationError

from cds import hooks
from cds.catalogue import Catalogue, ServiceDefinition
from cds.clock import Clock
from cds.data.fhir_client import FhirClient
from cds.data.grant import Grant
from cds.data.patient_data import Gathering, PatientData, complete, read_prefetch
from cds.engine import Evaluation, IssuedCard, evaluate
from cds.errors import CdsError, InvalidRequest, NotFound, UnreadableData, invalid_request
from cds.evaluation_slots import EvaluationSlots
from cds.gc_pause import collector_paused
from cds.logs import log_fields
from cds.metrics import Metrics
from cds.request_json import check_limits, parse_json
from cds.settings import Settings
from cds.store import AuditRecord, AuditWriter, patient_hash

log = logging.getLogger("cds.invocation")
T = TypeVar("T")


class HookCallParts(Protocol):
    """What a hook call uses of the app's long-lived parts."""

    @property
    def settings(self) -> Settings: ...
    @property
    def catalogue(self) -> Catalogue: ...
    @property
    def clock(self) -> Clock: ...  # the evaluation's "now"
    @property
    def stamp(self) -> Clock: ...  # the audit row's time: always the real clock
    @property
    def fhir_client(self) -> FhirClient: ...
    @property
    def evaluations(self) -> EvaluationSlots: ...
    @property
    def metrics(self) -> Metrics: ...
    @property
    def audit(self) -> AuditWriter: ...


def parse_request(
    catalogue: Catalogue, service_id: str, body: Any
) -> tuple[ServiceDefinition, hooks.HookRequest, hooks.PatientViewContext | hooks.OrderSignContext]:
    """R-01..R-10: the service, the request envelope and its hook's context, or a 4xx."""
    service = catalogue.services.get(service_id)
    if service is None:
        raise NotFound(f"No CDS service '{service_id}'.")
    if not isinstance(body, dict):
        raise InvalidRequest("The body must be a JSON object.")
    try:
        request = hooks.HookRequest.model_validate(body)
    except ValidationError as exc:
        raise invalid_request(exc) from exc
    if request.hook not in service.hooks:
        raise InvalidRequest(
            f"Service '{service_id}' answers hook(s) {', '.join(service.hooks)}, "
            f"not '{request.hook}'.",
            expression=["hook"],
        )
    try:
        context = hooks.CONTEXT_MODELS[request.hook].model_validate(request.context)
    except ValidationError as exc:
        raise invalid_request(exc, prefix="context") from exc
    return service, request, context


async def answer(
    catalogue: Catalogue,
    service: ServiceDefinition,
    request: hooks.HookRequest,
    context: hooks.PatientViewContext | hooks.OrderSignContext,
    *,
    client: FhirClient | None,
    now: datetime,
) -> tuple[PatientData, Evaluation]:
    """The patient's data (prefetch, then the FHIR server when ``client``) and the evaluation."""
    data = await complete(_read_prefetch(service, request, client), client)
    evaluation = evaluate(
        catalogue, service, request, context, data.resources, data.unavailable, now
    )
    return data, evaluation


def _read_prefetch(
    service: ServiceDefinition,
    request: hooks.HookRequest,
    client: FhirClient | None,
    received: float | None = None,
    issuer: str | None = None,
) -> Gathering:
    authorization = request.fhir_authorization if client is not None else None
    grant = (
        Grant.of(
            authorization.access_token,
            patient=authorization.patient,
            scope=authorization.scope,
            expires_in=authorization.expires_in,
            received=received,
        )
        if authorization is not None
        else Grant(None)
    )
    return read_prefetch(
        service.prefetch,
        hook_context=request.context,
        prefetch=request.prefetch,
        fhir_server=request.fhir_server if client is not None else None,
        client=client,
        grant=grant,
        required=set(service.required_prefetch),
        issuer=issuer,
    )


@dataclass(slots=True)
class _Call:
    """One hook call from its bytes to its answer, and what its audit row needs.

    ``release`` drops every reference to the parsed body, so that a call answered from prefetch
    alone frees its (possibly megabytes of) JSON before the collector resumes: otherwise the
    collector's next pass would walk all of it once for nothing, since JSON holds no cycles.
    """

    rt: HookCallParts
    service: ServiceDefinition
    request: hooks.HookRequest | None
    context: hooks.PatientViewContext | hooks.OrderSignContext | None
    gathering: Gathering | None
    hook: str
    hook_instance: str
    patient_id: str
    status: int = 200
    failure: BaseException | None = None
    wire: dict[str, Any] | None = None
    fired: list[str] = field(default_factory=list)
    issued: list[IssuedCard] = field(default_factory=list)
    skipped: int = 0
    repaired: int = 0
    fetched: int = 0

    @classmethod
    def start(
        cls, rt: HookCallParts, service_id: str, body: bytes, received: float, issuer: str | None
    ) -> _Call:
        """Parse and validate the call and read its prefetch; a 4xx here is raised, unaudited.

        ``received`` (time.monotonic()) starts the access token's ``expires_in`` clock;
        ``issuer`` is the authenticated caller's, whose fhirServers bound where we fetch."""
        raw = parse_json(body)
        check_limits(raw, rt.settings.max_json_depth, rt.settings.max_prefetch_entries)
        service, request, context = parse_request(rt.catalogue, service_id, raw)
        call = cls(
            rt,
            service,
            request,
            context,
            None,
            request.hook,
            request.hook_instance,
            context.patient_id,
        )
        call.gathering = call.attempt(
            lambda: _read_prefetch(service, request, rt.fhir_client, received, issuer)
        )
        return call

    @property
    def needs_fetch(self) -> bool:
        return self.gathering is not None and bool(self.gathering.jobs)

    def attempt(self, step: Callable[[], T]) -> T | None:
        """``step()``, or None with the failure kept for the audit and re-raised later."""
        try:
            return step()
        except Exception as exc:
            self.fail(exc)
            return None

    def fail(self, exc: Exception) -> None:
        """Keep ``exc`` (a CdsError's status, else 500) for the audit; ``invoke`` re-raises it."""
        self.status = exc.status_code if isinstance(exc, CdsError) else 500
        self.failure = exc
        self.release()

    def conclude(self, data: PatientData) -> None:
        """Evaluate on ``data`` and keep the wire answer; then drop the parsed body.

        When a required key holds a resource that cannot be read, the key is read again from
        the FHIR server (``needs_fetch``, and the body is kept) or the call is a 412.
        """
        request, context = self.request, self.context
        if request is None or context is None:  # released: the call already failed
            return
        rt, service = self.rt, self.service
        try:
            evaluation = evaluate(
                rt.catalogue,
                service,
                request,
                context,
                data.resources,
                data.unavailable,
                rt.clock(),
                issued_at=rt.stamp(),
            )
        except UnreadableData as exc:
            gathering = self.gathering
            if gathering is None:
                raise
            if gathering.refetch(exc.reasons):
                return
            gathering.finish()  # raises MissingData (412): the keys are unavailable now
            raise
        self.fetched = data.fetched
        self.fired = evaluation.fired
        self.issued = list(evaluation.issued)
        self.skipped = sum(evaluation.skipped.values())
        self.repaired = sum(evaluation.repaired.values())
        for resource_type, count in evaluation.skipped.items():
            rt.metrics.skipped_resources(resource_type, count)
        for (resource_type, path), count in evaluation.repaired.items():
            rt.metrics.repaired_elements(resource_type, path, count)
        rt.metrics.resources_validated(
            remembered=evaluation.validations_remembered,
            validated=evaluation.models_built - evaluation.validations_remembered,
        )
        for rule_id in self.fired:
            rt.metrics.card_emitted(service.id, rule_id)
        self.wire = hooks.to_wire(evaluation.response)
        self.release()

    def release(self) -> None:
        self.request = self.context = self.gathering = None


async def invoke(
    rt: HookCallParts, service_id: str, body: bytes, issuer: str | None = None
) -> dict[str, Any]:
    """Run ``service_id`` on the request ``body`` from a caller of ``issuer`` (None when auth
    is off) and return the wire response; audit every outcome past request validation."""
    started, received = time.perf_counter(), time.monotonic()
    slots = rt.evaluations
    call = await slots.run(
        lambda: _prepared(rt, service_id, body, received, issuer),
        in_thread=len(body) >= rt.settings.evaluation_thread_bytes,
    )
    # Keys missing from prefetch, or (at most once each) holding what cannot be read.
    while call.needs_fetch:
        assert call.gathering is not None  # noqa: S101
        gathering = call.gathering
        fetched = await _fetch(call, gathering)
        del gathering
        if fetched is None:
            break
        # What came from the FHIR server may be large: always off the loop.
        await slots.run(partial(_concluded, call, fetched), in_thread=True)
        del fetched
    await _audit(rt, call, started)
    if call.failure is not None:
        raise call.failure
    assert call.wire is not None  # noqa: S101
    return call.wire


def _prepared(
    rt: HookCallParts, service_id: str, body: bytes, received: float, issuer: str | None
) -> _Call:
    """The call parsed and its prefetch read; with complete prefetch, answered too: bytes to
    answer in one synchronous stretch (nothing else of this call runs meanwhile)."""
    with collector_paused():
        call = _Call.start(rt, service_id, body, received, issuer)
        if call.gathering is not None and not call.needs_fetch:
            ready = call.attempt(call.gathering.finish)
            if ready is not None:
                call.attempt(lambda: call.conclude(ready))
            del ready
    return call


def _concluded(call: _Call, fetched: PatientData) -> None:
    with collector_paused():
        call.attempt(lambda: call.conclude(fetched))


async def _fetch(call: _Call, gathering: Gathering) -> PatientData | None:
    try:
        return await complete(gathering, call.rt.fhir_client)
    except Exception as exc:
        call.fail(exc)
        return None


async def _audit(rt: HookCallParts, call: _Call, started: float) -> None:
    elapsed = time.perf_counter() - started
    service_id = call.service.id
    rt.metrics.request_done(service_id, call.status, elapsed)
    audit = AuditRecord(
        hook_instance=call.hook_instance,
        service_id=service_id,
        hook=call.hook,
        rule_ids=call.fired,
        card_uuids=[card.card_uuid for card in call.issued],
        duration_ms=round(elapsed * 1000, 3),
        status=call.status,
        fhir_fetch_count=call.fetched,
        skipped_resource_count=call.skipped,
        repaired_element_count=call.repaired,
        received_at=rt.stamp(),
        patient_hash=patient_hash(rt.settings.patient_hash_key, call.patient_id),
    )
    # Queued, not written: the audit writer batches many calls into one transaction.
    await rt.audit.submit(audit, call.issued)
    log.info(
        "hook answered",
        extra=log_fields(
            hook_instance=call.hook_instance,
            service=service_id,
            hook=call.hook,
            status=call.status,
            rule_ids=call.fired,
            card_uuids=audit.card_uuids,
            duration_ms=audit.duration_ms,
            fhir_fetch_count=call.fetched,
            skipped_resources=call.skipped,
            repaired_elements=call.repaired,
        ),
    )


async def evaluate_offline(catalogue: Catalogue, body: Any, now: datetime) -> dict[str, Any]:
    """``cds evaluate``: the same validation and rules on a request's prefetch, with no I/O."""
    service_id = body.get("serviceId") if isinstance(body, dict) else None
    candidates = [s for s in catalogue.services.values() if service_id in (None, s.id)]
    hook = body.get("hook") if isinstance(body, dict) else None
    matching = [s for s in candidates if hook in s.hooks]
    if not matching:
        raise InvalidRequest(f"No CDS service answers hook '{hook}'.", expression=["hook"])
    service, request, context = parse_request(catalogue, matching[0].id, body)
    _, evaluation = await answer(catalogue, service, request, context, client=None, now=now)
    return hooks.to_wire(evaluation.response)
