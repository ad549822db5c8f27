"""One hook call, top to bottom: parse -> patient data -> evaluate -> audit -> answer.

The route reads the body's bytes once (cds/api/request_body.py); everything after is here.
A call whose prefetch holds all its data runs from bytes to answer in one synchronous stretch
with the cyclic collector paused (parsed JSON holds no cycles, so the collector would only
walk it for nothing); a call that needs the FHIR server awaits it between two such stretches.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, Protocol

import orjson
from pydantic import SecretStr, ValidationError

from cds import hooks
from cds.caches import EvaluationCaches
from cds.catalogue import Catalogue, ServiceDefinition
from cds.clock import Clock
from cds.data.patient_data import FhirAccess, Gathering, PatientData, complete, read_prefetch
from cds.engine import Evaluation, IssuedCard, evaluate
from cds.errors import CdsError, InvalidRequest, NotFound, UnreadableData, invalid_request
from cds.evaluation_slots import EvaluationSlots
from cds.gc_pause import collector_paused
from cds.logs import log_fields
from cds.metrics import Metrics
from cds.request_json import EntryNotJson, check_limits, parse_json, refuse_as_orjson
from cds.settings import DEFAULT_PUBLIC_BASE_URL, Settings
from cds.snooze.snoozing import Snoozing
from cds.store import AuditRecord, AuditWriter, patient_hash

log = logging.getLogger("cds.invocation")

HookContext = hooks.PatientViewContext | hooks.OrderSignContext


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
    def fhir_access(self) -> FhirAccess: ...
    @property
    def evaluations(self) -> EvaluationSlots: ...
    @property
    def metrics(self) -> Metrics: ...
    @property
    def audit(self) -> AuditWriter: ...
    @property
    def caches(self) -> EvaluationCaches: ...  # what evaluation remembers: this app's own
    @property
    def snoozes(self) -> Snoozing: ...


async def invoke(
    parts: HookCallParts, service_id: str, body: bytes, issuer: str | None = None
) -> bytes:
    """Run ``service_id`` on the request ``body`` from a caller of ``issuer`` (None when auth
    is off) and return the wire answer as JSON bytes. A request that fails to parse is refused
    (4xx) and not audited; every outcome past that is audited, then answered."""
    started, received = time.perf_counter(), time.monotonic()
    # Parse, patient data from prefetch and, when prefetch holds it all, evaluate.
    call = await parts.evaluations.run(
        partial(_from_prefetch, parts, service_id, body, received, issuer),
        in_thread=len(body) >= parts.settings.evaluation_thread_bytes,
    )
    # Patient data from the FHIR server (keys prefetch left out, or sent unreadable), evaluate.
    while call.waiting is not None:
        data = await _fetched(call, call.waiting, parts.fhir_access)
        if data is not None:
            # What came from the FHIR server may be large: always off the loop.
            await parts.evaluations.run(partial(_evaluated, parts, call, data), in_thread=True)
        del data
    await _unsnoozed(parts, call)
    await _audit(parts, call, started)
    return call.answer()


# --------------------------------------------------------------------------- the call's state


@dataclass(slots=True)
class _Waiting:
    """A parsed call waiting for data from the FHIR server: its request and its gathering,
    and the body's bytes, which the call holds anyway: a prefetch entry left undecoded that
    turns out not to be JSON orjson reads (``EntryNotJson``) refuses the call with orjson's
    verdict on them, unaudited, as when the body was parsed, even after a fetch."""

    request: hooks.HookRequest
    context: HookContext
    gathering: Gathering
    body: bytes


@dataclass(slots=True)
class _Call:
    """One validated hook call: whether it waits for data, its outcome, and what its audit row
    needs. Only ``waiting`` holds the parsed body, and only while data is outstanding: an
    answered or failed call has dropped it, so its (possibly megabytes of) JSON is freed
    before the collector resumes."""

    service: ServiceDefinition
    hook: str
    hook_instance: str
    patient_id: str
    waiting: _Waiting | None = None
    status: int = 200
    failure: Exception | None = None
    wire: dict[str, Any] | None = None
    # ``wire`` as JSON (Evaluation.wire_json); None once ``wire`` has changed since.
    encoded: bytes | None = None
    fired: list[str] = field(default_factory=list)
    would_fire: list[str] = field(default_factory=list)  # rules in shadow: audited, not shown
    snoozed: list[str] = field(default_factory=list)  # rules fired whose card a snooze hid
    issued: list[IssuedCard] = field(default_factory=list)
    skipped: int = 0
    repaired: int = 0
    fetched: int = 0
    # The patient's keyed hash, computed once: the snooze lookup and the audit row both use it.
    hashed_patient: str | None = None

    def patient_hash(self, key: SecretStr) -> str:
        if self.hashed_patient is None:
            self.hashed_patient = patient_hash(key, self.patient_id)
        return self.hashed_patient

    def fail(self, exc: Exception) -> None:
        """Keep ``exc`` (a CdsError's status, else 500) for the audit; ``answer`` raises it."""
        self.status = exc.status_code if isinstance(exc, CdsError) else 500
        self.failure = exc
        self.waiting = None

    def answer(self) -> bytes:
        if self.failure is not None:
            raise self.failure
        assert self.wire is not None  # noqa: S101 - a call ends answered or failed
        return self.encoded if self.encoded is not None else orjson.dumps(self.wire)


# --------------------------------------------------------------------------- parse


def parse(
    parts: HookCallParts, service_id: str, body: bytes
) -> tuple[ServiceDefinition, hooks.HookRequest, HookContext]:
    """The body's JSON within the input limits, validated as a call of ``service_id``, or 4xx."""
    raw = parse_json(body)
    settings = parts.settings
    check_limits(raw, settings.max_json_depth, settings.max_prefetch_entries)
    return parse_request(parts.catalogue, service_id, raw)


def parse_request(
    catalogue: Catalogue, service_id: str, body: Any
) -> tuple[ServiceDefinition, hooks.HookRequest, HookContext]:
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


# --------------------------------------------------------------------------- patient data


def _from_prefetch(
    parts: HookCallParts, service_id: str, body: bytes, received: float, issuer: str | None
) -> _Call:
    """Parse, read prefetch and, when it holds every key, evaluate: one synchronous stretch
    with the collector paused, which ends with the parsed body dropped unless data is awaited.

    ``received`` (time.monotonic()) starts the access token's ``expires_in`` clock;
    ``issuer`` is the authenticated caller's, whose fhirServers bound where we fetch."""
    with collector_paused():
        return _parsed_and_read(parts, service_id, body, received, issuer)


def _parsed_and_read(
    parts: HookCallParts, service_id: str, body: bytes, received: float, issuer: str | None
) -> _Call:
    service, request, context = parse(parts, service_id, body)
    call = _Call(service, request.hook, request.hook_instance, context.patient_id)
    try:
        gathering = read_prefetch(
            service.prefetch,
            service.required_prefetch,
            request,
            parts.fhir_access,
            received=received,
            issuer=issuer,
        )
        if gathering.jobs:
            call.waiting = _Waiting(request, context, gathering, body)
        else:
            _evaluate(parts, call, _Waiting(request, context, gathering, body), gathering.finish())
    except EntryNotJson:
        # Refused unaudited with orjson's own message, as a body that does not parse is.
        raise refuse_as_orjson(body) from None
    except Exception as exc:
        call.fail(exc)
    return call


async def _fetched(call: _Call, waiting: _Waiting, access: FhirAccess) -> PatientData | None:
    """The patient's data completed from the FHIR server, or None with the call failed."""
    try:
        return await complete(waiting.gathering, access)
    except Exception as exc:
        call.fail(exc)
        return None


# --------------------------------------------------------------------------- evaluate


def _evaluated(parts: HookCallParts, call: _Call, data: PatientData) -> None:
    """Evaluate on data completed from the FHIR server, with the collector paused."""
    waiting = call.waiting
    assert waiting is not None  # noqa: S101 - only a waiting call fetches
    call.waiting = None
    with collector_paused():
        try:
            _evaluate(parts, call, waiting, data)
        except EntryNotJson:
            raise refuse_as_orjson(waiting.body) from None
        except Exception as exc:
            call.fail(exc)
        del waiting


def _evaluate(parts: HookCallParts, call: _Call, waiting: _Waiting, data: PatientData) -> None:
    """Evaluate ``call`` on ``data`` and keep its wire answer and what its audit needs.

    A required key holding a resource that cannot be read is read again from the FHIR server
    (the call waits again), or, when it may not be, the call is a 412.
    """
    service, gathering = call.service, waiting.gathering
    try:
        evaluation = evaluate(
            service,
            waiting.request,
            waiting.context,
            data.resources,
            data.unavailable,
            parts.clock(),
            caches=parts.caches,
            issued_at=parts.stamp(),
        )
    except UnreadableData as exc:
        if gathering.refetch(exc.reasons):
            call.waiting = waiting
            return
        gathering.finish()  # raises MissingData (412): the keys are unavailable now
        raise
    call.fetched = data.fetched
    call.fired = evaluation.fired
    call.would_fire = evaluation.would_fire
    call.issued = list(evaluation.issued)
    call.skipped = sum(evaluation.skipped.values())
    call.repaired = sum(evaluation.repaired.values())
    _count(parts.metrics, service, evaluation)
    call.wire, call.encoded = evaluation.wire_json()


def _count(metrics: Metrics, service: ServiceDefinition, evaluation: Evaluation) -> None:
    for resource_type, count in evaluation.skipped.items():
        metrics.skipped_resources(resource_type, count)
    for (resource_type, path), count in evaluation.repaired.items():
        metrics.repaired_elements(resource_type, path, count)
    metrics.resources_validated(
        remembered=evaluation.validations_remembered,
        validated=evaluation.models_built - evaluation.validations_remembered,
    )
    for rule_id in evaluation.would_fire:
        metrics.card_would_fire(service.id, rule_id)


# --------------------------------------------------------------------------- snooze


async def _unsnoozed(parts: HookCallParts, call: _Call) -> None:
    """Take the cards an earlier override snoozed out of the answer: one indexed query, and
    only when a card that could be snoozed would be shown. A snoozed card's rule still counts
    as fired (it is in the audit's rule ids, and in ``snoozed``); precedence stays as it was,
    so a snoozed card does not bring back one it outranked."""
    if call.wire is None or call.failure is not None:
        return
    snoozes = parts.snoozes
    candidates = snoozes.candidates(call.issued)
    if candidates:
        who = call.patient_hash(parts.settings.patient_hash_key)
        hidden = await snoozes.hidden(call.service.id, who, candidates, parts.stamp())
        if hidden:
            _hide(parts.metrics, call, hidden)
    for rule_id in dict.fromkeys(card.rule_id for card in call.issued):
        parts.metrics.card_emitted(call.service.id, rule_id)


def _hide(metrics: Metrics, call: _Call, hidden: set[str]) -> None:
    assert call.wire is not None  # noqa: S101 - only an answered call has cards to hide
    snoozed = [card for card in call.issued if card.card_uuid in hidden]
    call.issued = [card for card in call.issued if card.card_uuid not in hidden]
    call.wire["cards"] = [card for card in call.wire["cards"] if card["uuid"] not in hidden]
    call.encoded = None
    call.snoozed = list(dict.fromkeys(card.rule_id for card in snoozed))
    for card in snoozed:
        metrics.card_snoozed(call.service.id, card.rule_id)


# --------------------------------------------------------------------------- audit


async def _audit(parts: HookCallParts, call: _Call, started: float) -> None:
    elapsed = time.perf_counter() - started
    service_id = call.service.id
    parts.metrics.request_done(service_id, call.status, elapsed)
    audit = AuditRecord(
        hook_instance=call.hook_instance,
        service_id=service_id,
        hook=call.hook,
        rule_ids=call.fired,
        would_fire=call.would_fire,
        snoozed=call.snoozed,
        rule_versions=parts.catalogue.governance.versions(call.fired + call.would_fire),
        card_uuids=[card.card_uuid for card in call.issued],
        duration_ms=round(elapsed * 1000, 3),
        status=call.status,
        fhir_fetch_count=call.fetched,
        skipped_resource_count=call.skipped,
        repaired_element_count=call.repaired,
        received_at=parts.stamp(),
        patient_hash=call.patient_hash(parts.settings.patient_hash_key),
        site_digest=parts.catalogue.site.digest,
    )
    # Queued, not written: the audit writer batches many calls into one transaction.
    await parts.audit.submit(audit, call.issued)
    log.info(
        "hook answered",
        extra=log_fields(
            hook_instance=call.hook_instance,
            service=service_id,
            hook=call.hook,
            status=call.status,
            rule_ids=call.fired,
            snoozed=call.snoozed,
            card_uuids=audit.card_uuids,
            duration_ms=audit.duration_ms,
            fhir_fetch_count=call.fetched,
            skipped_resources=call.skipped,
            repaired_elements=call.repaired,
        ),
    )


# --------------------------------------------------------------------------- offline


async def evaluate_offline(
    catalogue: Catalogue, body: Any, now: datetime, public_base_url: str = DEFAULT_PUBLIC_BASE_URL
) -> dict[str, Any]:
    """``cds evaluate``: the same validation and rules on a request's prefetch, with no I/O;
    the cards link to their rule pages under ``public_base_url``."""
    service_id = body.get("serviceId") if isinstance(body, dict) else None
    candidates = [s for s in catalogue.services.values() if service_id in (None, s.id)]
    hook = body.get("hook") if isinstance(body, dict) else None
    matching = [s for s in candidates if hook in s.hooks]
    if not matching:
        raise InvalidRequest(f"No CDS service answers hook '{hook}'.", expression=["hook"])
    service, request, context = parse_request(catalogue, matching[0].id, body)
    gathering = read_prefetch(service.prefetch, service.required_prefetch, request, None)
    data = await complete(gathering, None)
    evaluation = evaluate(
        service,
        request,
        context,
        data.resources,
        data.unavailable,
        now,
        caches=EvaluationCaches.for_catalogue(catalogue, public_base_url=public_base_url),
    )
    return evaluation.answer
