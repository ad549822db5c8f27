"""Apps for the demo and playground tests: the real app plus the demo FHIR endpoint on its own."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI

from cds.api.demo_fhir import demo_fhir_router
from cds.app import create_app
from cds.catalogue import Catalogue
from cds.demo_server import create_demo_app, demo_settings
from cds.settings import Settings
from tests.served import free_port

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


def browser_demo_settings(tmp_path: Path) -> Settings:
    """The demo's settings on a free port (its own public URL) and a new SQLite file."""
    port = free_port()
    return demo_settings(
        env="test",
        port=port,
        public_base_url=f"http://127.0.0.1:{port}",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'cds.db'}",
    )


@contextmanager
def demo_served(settings: Settings) -> Iterator[str]:
    """The demo app (service, playground, demo FHIR endpoint) under uvicorn in a thread, on
    ``settings.port``; its base URL."""
    app = create_demo_app(settings)
    assert isinstance(app, FastAPI)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=settings.port,
        log_level="warning",
        # Only what the test needs: no websockets stack, the pure-Python HTTP parser.
        ws="none",
        http="h11",
        loop="asyncio",
        lifespan="on",
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started:
        assert thread.is_alive(), "uvicorn stopped during startup"
        assert time.monotonic() < deadline, "uvicorn did not start within 20 s"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{settings.port}"
    finally:
        uv.should_exit = True
        thread.join(timeout=10)
