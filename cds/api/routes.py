"""CDS Hooks and operations routes: discovery, invoke, feedback, health, metrics, report."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from cds.api.request_body import read_body, read_json
from cds.api.responses import JsonResponse
from cds.errors import InvalidRequest, NotFound, Unauthorized
from cds.feedback import accept_feedback
from cds.invocation import invoke
from cds.report import BOUND_FORMAT, parse_bound, report_window
from cds.runtime import Runtime, runtime_of
from cds.security import VerifiedCaller
from cds.settings import AuthMode


async def _runtime(request: Request) -> Runtime:
    # A coroutine on purpose: FastAPI runs a plain function dependency in a worker thread,
    # and that hop cost every request more than the work it guards.
    return runtime_of(request)


RuntimeDep = Annotated[Runtime, Depends(_runtime)]


async def authenticate(request: Request, rt: RuntimeDep) -> None:
    """S-03..S-14: every CDS endpoint checks the EHR's JWT when auth is required.

    The verified caller is kept on ``request.state.caller`` (None with auth off): its issuer
    decides which FHIR servers the call may send the service to."""
    request.state.caller = None
    if rt.settings.effective_auth_mode is AuthMode.off:
        return
    audiences = rt.settings.audiences(request.url.path)
    try:
        request.state.caller = await rt.verifier.verify(
            request.headers.get("authorization"), audiences
        )
    except Unauthorized as exc:
        rt.metrics.auth_failure(exc.reason)
        raise


Authenticated = Depends(authenticate)
cds_routes = APIRouter(prefix="/cds-services", dependencies=[Authenticated])
ops_routes = APIRouter()


@cds_routes.get("", include_in_schema=True)
@cds_routes.get("/", include_in_schema=False)
async def discovery(rt: RuntimeDep) -> JsonResponse:
    """List every CDS service with its hook and prefetch templates (D-01..D-06)."""
    return JsonResponse(rt.discovery)


@cds_routes.post("/{service_id}")
async def call_service(service_id: str, request: Request, rt: RuntimeDep) -> JsonResponse:
    """Run a CDS service on one hook call and return its cards (R-01..R-12, C-01..C-23)."""
    body = await read_body(request, rt.settings.max_body_bytes)
    caller: VerifiedCaller | None = request.state.caller
    return JsonResponse(
        await invoke(rt, service_id, body, caller.iss if caller is not None else None)
    )


@cds_routes.post("/{service_id}/feedback")
async def feedback(service_id: str, request: Request, rt: RuntimeDep) -> JsonResponse:
    """Store what clinicians did with the cards (F-01..F-08)."""
    body = await read_json(request, rt.settings.max_body_bytes)
    return JsonResponse(await accept_feedback(rt, service_id, body))


@ops_routes.get("/healthz")
async def healthz() -> JsonResponse:
    """Liveness: the process answers."""
    return JsonResponse({"status": "ok"})


@ops_routes.get("/readyz")
async def readyz(rt: RuntimeDep) -> JsonResponse:
    """Readiness: rules loaded and the store reachable."""
    store_ok = await rt.store.ping()
    body = {"status": "ok" if store_ok else "unavailable", "rules": "loaded", "store": store_ok}
    return JsonResponse(body, status_code=200 if store_ok else 503)


@ops_routes.get("/metrics")
async def metrics(request: Request, rt: RuntimeDep) -> Response:
    """Prometheus metrics (no PHI in any label); behind CDS_METRICS_TOKEN when it is set."""
    rt.check_metrics(request.headers.get("authorization"))
    payload, media_type = rt.metrics.render()
    return Response(payload, media_type=media_type)


def _bound(name: str, text: str | None, *, end: bool) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_bound(text, end=end)
    except ValueError:
        raise InvalidRequest(f"'{name}' is not {BOUND_FORMAT}.", expression=[name]) from None


@ops_routes.get("/admin/report")
async def report(
    request: Request,
    rt: RuntimeDep,
    service: Annotated[str | None, Query(description="one service id (default: all)")] = None,
    since: Annotated[str | None, Query(description=f"start, inclusive: {BOUND_FORMAT}")] = None,
    until: Annotated[
        str | None, Query(description=f"end, exclusive (a date: its whole day): {BOUND_FORMAT}")
    ] = None,
) -> JsonResponse:
    """Per-rule feedback report: times shown, distinct cards, patients, cards without feedback,
    accepted and overridden with rates over the feedback received, top override reasons.
    Default window: the last 30 days up to now."""
    rt.check_admin(request.headers.get("authorization"))
    if service is not None and service not in rt.catalogue.services:
        raise NotFound(f"No CDS service '{service}'.")
    start, end = report_window(
        _bound("since", since, end=False), _bound("until", until, end=True), datetime.now(UTC)
    )
    return JsonResponse(await rt.report(service, start, end))
