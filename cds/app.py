"""The app factory: validate the catalogue, build the shared parts, wire routes and errors."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import httpx
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response

from cds import __version__
from cds.api import cds_routes, ops_routes
from cds.api.api_docs import mount_api_docs, swagger_assets
from cds.api.hook_lane import hook_lane_for
from cds.api.openapi import describe_real_answers
from cds.api.playground import playground_router
from cds.api.request_edge import RequestEdge
from cds.api.responses import error_response
from cds.api.routes import call_service, hook_route
from cds.api.transparency import transparency_router
from cds.app_parts import AppParts
from cds.caches import EvaluationCaches
from cds.catalogue import Catalogue, load_catalogue
from cds.clock import clock_for
from cds.config_errors import scrub
from cds.cors import cors_policy
from cds.data.fhir_client import FhirClient
from cds.data.patient_data import FhirAccess
from cds.errors import CdsError, ConfigError, InvalidRequest
from cds.logs import configure_logging, log_fields
from cds.metrics import Metrics
from cds.security import JwtVerifier, replay_cache_for
from cds.settings import Environment, Settings
from cds.snooze.snoozing import Snoozing
from cds.startup import migrate_or_explain
from cds.store import AuditWriter, Store

log = logging.getLogger("cds")

HTTP_REASONS = {404: "Not found.", 405: "Method not allowed."}


async def _cds_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, CdsError)  # noqa: S101 - registered for CdsError only
    return error_response(exc)


async def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)  # noqa: S101 - registered for HTTPException only
    error = CdsError(HTTP_REASONS.get(exc.status_code, str(exc.detail)))
    error.status_code = exc.status_code
    error.issue_code = "not-found" if exc.status_code == 404 else "not-supported"
    response = error_response(error)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _validation_error(_: Request, exc: Exception) -> Response:
    # Query-parameter problems (admin report) answer 400, never FastAPI's 422 shape (E-02).
    assert isinstance(exc, RequestValidationError)  # noqa: S101
    paths = [".".join(str(p) for p in e["loc"]) for e in exc.errors()]
    return error_response(
        InvalidRequest(f"Invalid parameters: {', '.join(paths)}", expression=paths)
    )


def build_parts(
    settings: Settings,
    fhir_transport: httpx.AsyncBaseTransport | None = None,
    jwks_transport: httpx.AsyncBaseTransport | None = None,
    *,
    catalogue: Catalogue | None = None,
) -> AppParts:
    """Everything long-lived; a bad rule, card or value set raises ConfigError here.

    ``catalogue``, when given, is the one ``settings``' directories hold, already loaded (the
    tests load it once for the session); otherwise it is loaded here.
    """
    if catalogue is None:
        catalogue = load_catalogue(
            settings.rules_dir, settings.cards_dir, settings.topic_system, site=settings.site_config
        )
    metrics = Metrics(
        service_ids=list(catalogue.services),
        rule_ids=catalogue.rule_ids(),
    )
    store = Store.from_settings(settings, metrics)
    jwks_client = httpx.AsyncClient(transport=jwks_transport, timeout=5.0)
    parts = AppParts(
        settings=settings,
        clock=clock_for(settings.fixed_now),
        verifier=JwtVerifier(settings, replay_cache_for(settings, store), jwks_client),
        fhir_access=FhirAccess.of(
            settings, FhirClient(settings, transport=fhir_transport, metrics=metrics)
        ),
        store=store,
        metrics=metrics,
        audit=AuditWriter(store, metrics),
        caches=EvaluationCaches.for_catalogue(
            catalogue, settings.validation_memo_size, public_base_url=settings.public_base_url
        ),
        snoozes=Snoozing.for_catalogue(store, catalogue),
    )
    parts.closers.append(jwks_client.aclose)
    return parts


def create_app(
    settings: Settings | None = None,
    fhir_transport: httpx.AsyncBaseTransport | None = None,
    jwks_transport: httpx.AsyncBaseTransport | None = None,
    *,
    catalogue: Catalogue | None = None,
) -> FastAPI:
    """A ready app; nothing happens at import time, everything fails here if misconfigured.

    ``catalogue``: see ``build_parts``.
    """
    settings = settings or Settings()
    # Workers spawned by uvicorn do not inherit the parent's logging set-up.
    configure_logging(settings.log_level)
    parts = build_parts(settings, fhir_transport, jwks_transport, catalogue=catalogue)
    cors = cors_policy(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        log.info(cors.describe())
        if settings.migrate_on_start:
            try:
                await migrate_or_explain(settings)
            except ConfigError as exc:
                # Whole, as the operator needs it ("connection refused"); no patient data exists
                # yet, and the database password is hidden.
                for problem in exc.problems:
                    # Not log.exception: the frames are what buried the cause before.
                    log.error("startup failed", extra=log_fields(startup_error=scrub(problem)))  # noqa: TRY400
                await parts.aclose()
                raise
        parts.audit.start()
        await parts.store_health.start()
        try:
            yield
        finally:
            await parts.aclose()

    app = FastAPI(
        title="footpath-cds",
        version=__version__,
        description="CDS Hooks 2.0 service: back-to-foot referral rules.",
        lifespan=lifespan,
        # FastAPI's pages load their scripts from a CDN: /docs is ours (cds/api/api_docs.py)
        # and ReDoc is not served.
        docs_url=None,
        redoc_url=None,
    )
    app.state.parts = parts
    describe_real_answers(app)
    app.include_router(cds_routes)
    app.include_router(ops_routes)
    app.include_router(playground_router(settings))
    app.include_router(transparency_router(settings, parts.catalogue))
    if settings.effective_api_docs:
        mount_api_docs(app, swagger_assets())
    app.add_exception_handler(CdsError, _cds_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    # Added first, so it runs inside CORS and its 400s, 408s and 500s carry CORS headers.
    app.add_middleware(
        RequestEdge,
        body_seconds=settings.body_read_timeout,
        hook_lane=partial(hook_lane_for, app, hook_route(), call_service),
    )
    # The catalogue and models built above live as long as the process: freezing them keeps
    # every later collection from re-scanning them (typical-chart p99 61 -> 14 ms in bench).
    gc.collect()
    gc.freeze()
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(cors.origins),
        allow_origin_regex=cors.origin_regex,
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type"],
        allow_credentials=False,
        max_age=600,
        # Chromium's Private Network Access: the public sandbox calling a local dev server.
        allow_private_network=settings.env is not Environment.production,
    )
    return app
