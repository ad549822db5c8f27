"""The playground: a static page that fires demo hook calls and renders cards like an EHR."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, FastAPI, Query, Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import NoMatchFound

from cds.api.demo_fhir import SEARCH_ROUTE
from cds.api.dependencies import parts_of
from cds.api.responses import JsonResponse
from cds.demo import DemoData, load_demo
from cds.errors import InvalidRequest, NotFound
from cds.logs import log_fields
from cds.settings import Settings

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
ASSETS = {
    "playground.js": "text/javascript",
    "playground.css": "text/css",
    # Vendored from npm (its origin, digest and licences in the .txt): renders card.detail.
    "markdown-it.umd.min.js": "text/javascript",
    "markdown-it.LICENSE.txt": "text/plain; charset=utf-8",
}
PAGE = "/playground"
# The page loads only its own files and calls only its own origin; no inline code anywhere.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' https: data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

DataSource = Literal["prefetch", "server"]

log = logging.getLogger("cds.playground")


def demo_fhir_base(request: Request) -> str | None:
    """The absolute URL of the demo FHIR endpoint when this app mounts it (``cds demo``)."""
    try:
        url = request.url_for(SEARCH_ROUTE, resource_type="Patient")
    except NoMatchFound:
        return None
    return str(url).removesuffix("/Patient")


def playground_router(settings: Settings, demo: DemoData | None = None) -> APIRouter:
    """The playground routes; no routes at all (404) unless ``settings.effective_playground``."""
    router = APIRouter(prefix=PAGE, include_in_schema=False)
    if not settings.effective_playground:
        return router
    if demo is None and not settings.demo_dir.is_dir():
        # A wheel or image without the demo patients still serves the API; say why, once.
        log.warning(
            "playground off: no demo patients", extra=log_fields(path=str(settings.demo_dir))
        )
        return router
    data = demo or load_demo(settings.demo_dir)

    @router.get("")
    async def page() -> Response:
        """The playground page."""
        return FileResponse(STATIC_DIR / "playground.html", headers=PAGE_HEADERS)

    @router.get("/static/{name}")
    async def asset(name: str) -> Response:
        """The page's script and style sheet (a fixed list: no path ever reaches the disk)."""
        media_type = ASSETS.get(name)
        if media_type is None:
            raise NotFound("Not found.")
        return FileResponse(STATIC_DIR / name, media_type=media_type, headers=PAGE_HEADERS)

    @router.get("/patients")
    async def patients(request: Request) -> JsonResponse:
        """The demo patients, with the hooks each can fire and the rules each should trigger."""
        return JsonResponse(
            {
                "demoNow": data.demo_now,
                "fhirServer": demo_fhir_base(request),
                "patients": [p.listing() for p in data.patients.values()],
            }
        )

    @router.get("/patients/{patient_id}/request")
    async def hook_request(
        patient_id: str,
        request: Request,
        hook: Annotated[str, Query()] = "patient-view",
        data_source: Annotated[DataSource, Query(alias="data")] = "prefetch",
    ) -> JsonResponse:
        """The CDS Hooks request the playground would send, and the service it goes to: the
        catalogue's service for ``hook``, so the playground offers what discovery lists."""
        catalogue = parts_of(request).catalogue
        service = next((s for s in catalogue.services.values() if hook in s.hooks), None)
        if service is None:
            raise InvalidRequest(f"No CDS service here answers hook '{hook}'.", expression=["hook"])
        fhir_server = demo_fhir_base(request)
        if data_source == "server" and fhir_server is None:
            raise InvalidRequest(
                "The demo FHIR endpoint is not mounted here; run `cds demo` to fetch from it.",
                expression=["data"],
            )
        body = data.hook_request(
            patient_id,
            hook,
            service.prefetch,
            fhir_server=fhir_server,
            with_prefetch=data_source == "prefetch",
        )
        return JsonResponse({"serviceId": service.id, "request": body})

    return router


def mount_demo_landing(app: FastAPI) -> None:
    """``/`` sends a person who opens the demo's bare address to the playground. Only the demo
    does this: under ``cds serve`` ``/`` stays a 404, as nothing an EHR calls lives there."""

    @app.get("/", include_in_schema=False)
    async def landing() -> Response:
        return RedirectResponse(PAGE, status_code=307)
