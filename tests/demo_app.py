"""Apps for the demo and playground tests: the real app plus the demo FHIR endpoint on its own."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from cds.api.demo_fhir import demo_fhir_router
from cds.app import create_app
from cds.catalogue import Catalogue
from cds.settings import Settings

DEMO_FHIR_BASE = "http://demo-fhir.test/demo/fhir"


def app_with_playground(
    settings: Settings,
    *,
    with_demo_fhir: bool = False,
    fhir_transport: httpx.AsyncBaseTransport | None = None,
    catalogue: Catalogue | None = None,
) -> FastAPI:
    """``create_app(settings)`` (playground included), optionally with the demo FHIR endpoint."""
    app = create_app(settings, fhir_transport=fhir_transport, catalogue=catalogue)
    if with_demo_fhir:
        app.include_router(demo_fhir_router())
    return app


def demo_fhir_app() -> FastAPI:
    """Only the demo FHIR endpoint: the in-process "FHIR server" of the no-prefetch tests."""
    app = FastAPI()
    app.include_router(demo_fhir_router())
    return app
