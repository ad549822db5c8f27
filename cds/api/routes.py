"""CDS Hooks and operations routes: discovery, invoke, feedback, health, metrics, report,
dashboard."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Final, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.routing import APIRoute
from starlette.responses import HTMLResponse, Response

from cds.api.bearer import check_admin, check_metrics
from cds.api.dependencies import (
    AuthenticationDep,
    AuthenticationParts,
    CatalogueDep,
    ClockDep,
    DiscoveryDep,
    FeedbackDep,
    MetricsDep,
    ReportDep,
    ReportParts,
    SettingsDep,
    StoreHealthDep,
    parts_of,
)
from cds.api.request_body import read_body, read_json
from cds.api.responses import JSON_MEDIA_TYPE, EncodedJsonResponse, JsonResponse
from cds.catalogue import Catalogue
from cds.dashboard import HEADERS as DASHBOARD_HEADERS
from cds.dashboard import figures, render_page
from cds.errors import InvalidRequest, NotFound, Unauthorized
from cds.feedback import accept_feedback
from cds.invocation import HookCallParts, invoke
from cds.report import BOUND_FORMAT, check_weekly, parse_bound, report_json, report_window
from cds.security import VerifiedCaller
from cds.settings import AuthMode
from cds.transparency.addresses import rule_page_url


async def authenticate(request: Request, parts: AuthenticationDep) -> None:
    """S-03..S-14: every CDS endpoint checks the EHR's JWT when auth is required.

    The verified caller is kept on ``request.state.caller`` (None with auth off)."""
    request.state.caller = await verified_caller(request, parts)


async def verified_caller(request: Request, parts: AuthenticationParts) -> VerifiedCaller | None:
    """The EHR's verified JWT (None with auth off), or ``Unauthorized`` (counted): its issuer
    decides which FHIR servers the call may send the service to."""
    if parts.settings.effective_auth_mode is AuthMode.off:
        return None
    audiences = parts.settings.audiences(url_path(request))
    try:
        return await parts.verifier.verify(request.headers.get("authorization"), audiences)
    except Unauthorized as exc:
        parts.metrics.auth_failure(exc.reason)
        raise


# What makes the path of starlette's ``request.url`` differ from the scope's: characters it
# percent-escapes (?, #, \) or that URL parsing drops (tab, CR, LF), and a leading "//".
_URL_CHANGES: Final = re.compile(r"[?#\\\t\r\n]|^//")


def url_path(request: Request) -> str:
    """``request.url.path`` without building the URL (its host, port and parse: about 5 us a
    call): the scope's path itself whenever the two are the same."""
    path: str = request.scope["path"]
    if path.startswith("/") and _URL_CHANGES.search(path) is None:
        return path
    return request.url.path


Authenticated = Depends(authenticate)
# Every route here checks the caller's JWT first: the hook call itself (see call_service), the
# others through the Authenticated dependency.
cds_routes = APIRouter(prefix="/cds-services")
ops_routes = APIRouter()


@cds_routes.get("", include_in_schema=True, dependencies=[Authenticated])
@cds_routes.get("/", include_in_schema=False, dependencies=[Authenticated])
async def discovery(rendered: DiscoveryDep) -> JsonResponse:
    """List every CDS service with its hook and prefetch templates (D-01..D-06)."""
    return JsonResponse(rendered)


@cds_routes.post("/{service_id}")
async def call_service(service_id: str, request: Request) -> EncodedJsonResponse:
    """Run a CDS service on one hook call and return its cards (R-01..R-12, C-01..C-23)."""
    # No FastAPI dependency: solving them (the parts, the JWT check) cost every call more than
    # reading the parts here; the JWT is checked first all the same, before the body is read.
    app_parts = parts_of(request)
    caller = await verified_caller(request, app_parts)
    parts: HookCallParts = app_parts  # what the flow may use of them
    body = await read_body(request, parts.settings.max_body_bytes)
    return EncodedJsonResponse(
        await invoke(parts, service_id, body, caller.iss if caller is not None else None)
    )


def hook_route() -> APIRoute:
    """The route of ``call_service``, for the lane that hands it its requests directly."""
    [route] = [r for r in cds_routes.routes if getattr(r, "endpoint", None) is call_service]
    assert isinstance(route, APIRoute)  # noqa: S101 - declared above with cds_routes.post
    return route


@cds_routes.post("/{service_id}/feedback", dependencies=[Authenticated])
async def feedback(service_id: str, request: Request, parts: FeedbackDep) -> JsonResponse:
    """Store what clinicians did with the cards (F-01..F-08)."""
    body = await read_json(request, parts.settings.max_body_bytes)
    return JsonResponse(await accept_feedback(parts, service_id, body))


@ops_routes.get("/healthz")
async def healthz() -> JsonResponse:
    """Liveness: the process answers."""
    return JsonResponse({"status": "ok"})


@ops_routes.get("/readyz")
async def readyz(health: StoreHealthDep, catalogue: CatalogueDep, clock: ClockDep) -> JsonResponse:
    """Readiness: rules loaded and the store reachable at its last check (cds/store/health.py).
    Rules past their review date are named (a warning: they still run, so it stays 200); the
    site settings in use are named by their file's sha256 ("none": the rules as shipped)."""
    store_ok = health.ready()
    body: dict[str, object] = {
        "status": "ok" if store_ok else "unavailable",
        "rules": "loaded",
        "store": store_ok,
        "siteDigest": catalogue.site.digest,
    }
    overdue = catalogue.governance.overdue(clock().date())
    if overdue:
        body["reviewOverdue"] = overdue
    return JsonResponse(body, status_code=200 if store_ok else 503)


@ops_routes.get("/metrics")
async def metrics(request: Request, settings: SettingsDep, metrics: MetricsDep) -> Response:
    """Prometheus metrics (no PHI in any label); behind CDS_METRICS_TOKEN when it is set."""
    check_metrics(settings.metrics_token, request.headers.get("authorization"))
    payload, media_type = metrics.render()
    return Response(payload, media_type=media_type)


def _bound(name: str, text: str | None, *, end: bool) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_bound(text, end=end)
    except ValueError:
        raise InvalidRequest(f"'{name}' is not {BOUND_FORMAT}.", expression=[name]) from None


@dataclass(frozen=True)
class ReportQuery:
    """What the report's and the dashboard's query asks: an empty field is one not given (as a
    form sends it)."""

    service: str | None
    since: str | None
    until: str | None

    def period(self, catalogue: Catalogue) -> tuple[datetime, datetime]:
        """[start, end), as ``cds report`` reads its options; 404 for an unknown service."""
        if self.service is not None and self.service not in catalogue.services:
            raise NotFound(f"No CDS service '{self.service}'.")
        return report_window(
            _bound("since", self.since, end=False),
            _bound("until", self.until, end=True),
            datetime.now(UTC),
        )


def report_query(
    service: Annotated[str | None, Query(description="one service id (default: all)")] = None,
    since: Annotated[str | None, Query(description=f"start, inclusive: {BOUND_FORMAT}")] = None,
    until: Annotated[
        str | None, Query(description=f"end, exclusive (a date: its whole day): {BOUND_FORMAT}")
    ] = None,
) -> ReportQuery:
    return ReportQuery(service or None, since or None, until or None)


ReportQueryDep = Annotated[ReportQuery, Depends(report_query)]


async def _period(
    request: Request, parts: ReportParts, query: ReportQuery, *, weekly: bool
) -> tuple[datetime, datetime]:
    """The admin token checked, then the period asked; the audit written up to now, so the
    report counts the cards just answered too, even those still in the writer's queue."""
    check_admin(parts.settings.admin_token, request.headers.get("authorization"))
    start, end = query.period(parts.catalogue)
    if weekly:
        try:
            check_weekly(start, end)
        except ValueError as exc:
            raise InvalidRequest(str(exc), expression=["since", "until"]) from None
    await parts.audit.flush()
    return start, end


@ops_routes.get("/admin/report")
async def report(
    request: Request,
    parts: ReportDep,
    query: ReportQueryDep,
    by: Annotated[
        Literal["week"] | None, Query(description="also per ISO week (UTC), as the dashboard")
    ] = None,
) -> JsonResponse:
    """Per-rule feedback report: times shown, would fire (rules in shadow), snoozed (cards an
    override snoozed), distinct cards, patients, cards without feedback, accepted and
    overridden with rates over the feedback received, top override reasons; with
    ``by=week``, the same per ISO week as well.
    Default window: the last 30 days up to now."""
    start, end = await _period(request, parts, query, weekly=by == "week")
    if by == "week":
        weekly = await parts.store.weekly_rule_report(query.service, start, end)
        return JsonResponse(report_json(weekly))
    return JsonResponse(report_json(await parts.store.rule_report(query.service, start, end)))


@ops_routes.get("/admin/dashboard", response_model=None)
async def dashboard(
    request: Request, parts: ReportDep, query: ReportQueryDep
) -> HTMLResponse | JsonResponse:
    """Feedback dashboard: per rule and version, per ISO week, the report's counts as charts
    (inline SVG, nothing loaded from anywhere) with the numbers behind each; as JSON (the
    report with ``by=week``) when the request accepts ``application/json`` and not HTML."""
    start, end = await _period(request, parts, query, weekly=True)
    weekly = await parts.store.weekly_rule_report(query.service, start, end)
    accept = request.headers.get("accept", "")
    if JSON_MEDIA_TYPE in accept and "text/html" not in accept:
        return JsonResponse(report_json(weekly))
    page = render_page(
        figures(weekly),
        since=query.since or "",
        until=query.until or "",
        services=sorted(parts.catalogue.services),
        rule_url=lambda rule_id: rule_page_url(parts.settings.public_base_url, rule_id),
    )
    return HTMLResponse(page, headers=DASHBOARD_HEADERS)
