"""One hook call: validate the request, obtain the patient's data, evaluate, audit, answer."""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from cds import hooks
from cds.catalogue import Catalogue, ServiceDefinition
from cds.engine import Evaluation, evaluate
from cds.errors import CdsError, InvalidRequest, NotFound
from cds.fhir_client import FhirClient, gather
from cds.logs import log_fields
from cds.prefetch import PatientData
from cds.runtime import Runtime
from cds.store import AuditRecord, patient_hash
from cds.wire import invalid

log = logging.getLogger("cds.invocation")


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
        raise invalid(exc) from exc
    if request.hook not in service.hooks:
        raise InvalidRequest(
            f"Service '{service_id}' answers hook(s) {', '.join(service.hooks)}, "
            f"not '{request.hook}'.",
            expression=["hook"],
        )
    try:
        context = hooks.CONTEXT_MODELS[request.hook].model_validate(request.context)
    except ValidationError as exc:
        raise invalid(exc, prefix="context") from exc
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
    authorization = request.fhir_authorization if client is not None else None
    data = await gather(
        service.prefetch,
        hook_context=request.context,
        prefetch=request.prefetch,
        fhir_server=request.fhir_server if client is not None else None,
        access_token=authorization.access_token if authorization else None,
        token_patient=authorization.patient if authorization else None,
        required=set(service.required_prefetch),
        client=client,
    )
    evaluation = evaluate(
        catalogue, service, request, context, data.resources, data.unavailable, now
    )
    return data, evaluation


async def invoke(rt: Runtime, service_id: str, body: Any) -> dict[str, Any]:
    """Run ``service_id`` on ``body`` and return the wire response; audit every outcome."""
    started = time.perf_counter()
    service, request, context = parse_request(rt.catalogue, service_id, body)
    status = 200
    fired: list[str] = []
    issued: list[Any] = []
    fetched = 0
    skipped = 0
    try:
        data, evaluation = await answer(
            rt.catalogue, service, request, context, client=rt.fhir_client, now=rt.clock()
        )
        fetched = data.fetched
        fired = evaluation.fired
        issued = list(evaluation.issued)
        skipped = sum(evaluation.skipped.values())
        for resource_type, count in evaluation.skipped.items():
            rt.metrics.skipped_resources(resource_type, count)
        for rule_id in fired:
            rt.metrics.card_emitted(service.id, rule_id)
        return hooks.to_wire(evaluation.response)
    except CdsError as exc:
        status = exc.status_code
        raise
    except Exception:
        status = 500
        raise
    finally:
        elapsed = time.perf_counter() - started
        rt.metrics.request_done(service.id, status, elapsed)
        audit = AuditRecord(
            hook_instance=request.hook_instance,
            service_id=service.id,
            hook=request.hook,
            rule_ids=fired,
            card_uuids=[card.card_uuid for card in issued],
            duration_ms=round(elapsed * 1000, 3),
            status=status,
            fhir_fetch_count=fetched,
            skipped_resource_count=skipped,
            received_at=rt.clock(),
            patient_hash=patient_hash(rt.settings.patient_hash_key, context.patient_id),
        )
        await rt.store.record_invocation(audit, issued)
        log.info(
            "hook answered",
            extra=log_fields(
                hook_instance=request.hook_instance,
                service=service.id,
                hook=request.hook,
                status=status,
                rule_ids=fired,
                card_uuids=audit.card_uuids,
                duration_ms=audit.duration_ms,
                fhir_fetch_count=fetched,
                skipped_resources=skipped,
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
