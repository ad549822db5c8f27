"""The transparency routes: a page for every rule (HTML, or JSON when asked) and the value sets
as FHIR ValueSet resources (docs/transparency.md).

Public, with no token: a clinician follows a card's "About this rule" link in a browser, which
holds no CDS Hooks JWT, and the pages show the published catalogue only, never patient data."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from starlette.responses import FileResponse, HTMLResponse, Response

from cds.api.dependencies import CatalogueDep, ClockDep, SettingsDep
from cds.api.playground import STATIC_DIR
from cds.api.responses import JsonResponse
from cds.catalogue import Catalogue
from cds.errors import NotFound, operation_outcome
from cds.settings import Settings
from cds.transparency.addresses import RULES_PATH, VALUE_SETS_PATH
from cds.transparency.page_views import STYLESHEET, index_html, not_found_html, rule_html
from cds.transparency.rule_pages import rule_index, rule_page, to_json
from cds.transparency.source_attributes import load_source_attributes
from cds.transparency.value_set_resources import (
    FHIR_JSON,
    value_set_bundle,
    value_set_resource,
)


class FhirJsonResponse(JsonResponse):
    media_type = FHIR_JSON


def wants_json(accept: str | None) -> bool:
    """Whether the Accept header prefers ``application/json`` to HTML (HTML when it ties or
    names neither: a browser's default)."""
    best = {"json": -1.0, "html": -1.0}
    for part in (accept or "").split(","):
        media, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        kind = {"application/json": "json", "text/html": "html"}.get(media.lower())
        if kind is not None:
            best[kind] = max(best[kind], quality)
    return best["json"] > 0 and best["json"] > best["html"]


def _page_headers(settings: Settings) -> dict[str, str]:
    origin = urlsplit(settings.public_base_url)
    public = f"{origin.scheme}://{origin.netloc}"
    return {
        # The page's one stylesheet, from this service; no script, no frame, nothing else.
        "Content-Security-Policy": (
            f"default-src 'none'; style-src 'self' {public}; img-src data:; base-uri 'none'; "
            "form-action 'none'; frame-ancestors 'none'"
        ),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Vary": "Accept",
        "Cache-Control": "no-cache",
    }


def transparency_router(settings: Settings, catalogue: Catalogue) -> APIRouter:
    """The rule pages and the ValueSet endpoint over ``catalogue``; the source attributes file
    is read (and checked) here, once."""
    stated = load_source_attributes(settings.rules_dir, catalogue)
    headers = _page_headers(settings)
    rules_url = settings.public_url(RULES_PATH)
    router = APIRouter(include_in_schema=False)

    @router.get(f"{RULES_PATH}/{STYLESHEET}")
    async def stylesheet() -> Response:
        """The rule pages' style sheet (screen and print)."""
        return FileResponse(STATIC_DIR / STYLESHEET, media_type="text/css", headers=headers)

    @router.get(RULES_PATH)
    async def rules(request: Request, catalogue: CatalogueDep, settings: SettingsDep) -> Response:
        """Every service and its rules, each linked to its page."""
        index = rule_index(catalogue, settings.public_base_url)
        if wants_json(request.headers.get("accept")):
            return JsonResponse(to_json(index), headers={"Vary": "Accept"})
        return HTMLResponse(index_html(index, rules_url), headers=headers)

    @router.get(RULES_PATH + "/{rule_id}")
    async def rule(
        rule_id: str,
        request: Request,
        catalogue: CatalogueDep,
        settings: SettingsDep,
        clock: ClockDep,
    ) -> Response:
        """One rule: governance, evidence, logic in plain language, value sets, attributes."""
        page = rule_page(
            catalogue,
            rule_id,
            stated=stated,
            public_base_url=settings.public_base_url,
            today=clock().date(),
        )
        as_json = wants_json(request.headers.get("accept"))
        if page is None:
            error = NotFound(f"No rule '{rule_id}'.")
            if as_json:
                return JsonResponse(operation_outcome(error), status_code=404)
            return HTMLResponse(not_found_html(rule_id, rules_url), 404, headers=headers)
        if as_json:
            return JsonResponse(to_json(page), headers={"Vary": "Accept"})
        return HTMLResponse(rule_html(page, rules_url), headers=headers)

    @router.get(VALUE_SETS_PATH)
    async def value_sets(catalogue: CatalogueDep, settings: SettingsDep) -> Response:
        """Every value set as a FHIR R4 ValueSet, in a searchset Bundle."""
        now = datetime.now(UTC)
        return FhirJsonResponse(
            value_set_bundle(catalogue.valuesets, settings.public_base_url, now)
        )

    @router.get(VALUE_SETS_PATH + "/{vs_id}")
    async def value_set(vs_id: str, catalogue: CatalogueDep, settings: SettingsDep) -> Response:
        """One value set as a FHIR R4 ValueSet; 404 OperationOutcome when there is none."""
        if vs_id not in catalogue.valuesets:
            error = NotFound(f"No ValueSet '{vs_id}'.")
            return FhirJsonResponse(operation_outcome(error), status_code=404)
        resource = value_set_resource(
            catalogue.valuesets[vs_id], settings.public_base_url, datetime.now(UTC)
        )
        return FhirJsonResponse(resource)

    return router
