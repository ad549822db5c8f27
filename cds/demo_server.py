"""``cds demo``: the service, the playground and a demo FHIR endpoint in one local process."""

from __future__ import annotations

from typing import Any

import uvicorn
from starlette.applications import Starlette

from cds.api.demo_fhir import mount_demo_fhir
from cds.app import create_app
from cds.demo import load_demo
from cds.logs import configure_logging
from cds.settings import Environment, Settings

DEMO_NOW = "2026-06-01T12:00:00Z"


def demo_settings(**overrides: Any) -> Settings:
    """Settings for the demo: playground on, a fixed clock, and the local plain-http FHIR server.

    The demo calls its own ``/demo/fhir`` over http without a token, hence the two FHIR switches;
    they stay off in ``cds serve`` unless set in the environment.
    """
    values: dict[str, Any] = {
        "env": Environment.development,
        "playground_enabled": True,
        "fhir_allow_http": True,
        "fhir_open_server": True,
        "fixed_now": DEMO_NOW,
        **overrides,
    }
    return Settings(**values)


def create_demo_app(settings: Settings | None = None) -> Starlette:
    """``create_app`` plus the demo FHIR endpoint the playground's "FHIR server" mode calls."""
    settings = settings or demo_settings()
    app = create_app(settings)
    mount_demo_fhir(app, load_demo(settings.demo_dir))
    return app


def serve_demo(host: str = "127.0.0.1", port: int = 8080) -> None:
    """Run the demo under uvicorn until interrupted; open http://host:port/playground."""
    settings = demo_settings(host=host, port=port, public_base_url=f"http://{host}:{port}")
    configure_logging(settings.log_level)
    # One worker: the service calls its own demo FHIR endpoint, which must be in this process.
    uvicorn.run(create_demo_app(settings), host=host, port=port, access_log=False, log_config=None)
