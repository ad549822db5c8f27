"""``cds demo``: the service, the playground and a demo FHIR endpoint in one local process."""

from __future__ import annotations

import sys
from typing import Any

import uvicorn
from starlette.applications import Starlette

from cds.api.demo_fhir import mount_demo_fhir
from cds.api.playground import mount_demo_landing
from cds.app import create_app
from cds.demo import load_demo
from cds.logs import configure_logging
from cds.settings import Environment, Settings

DEMO_NOW = "2026-06-01T12:00:00Z"


# What the demo needs that ``cds serve`` does not: the playground, a fixed clock (the demo
# patients' dates are written relative to it), and its own plain-http, token-less FHIR endpoint.
DEMO_DEFAULTS: dict[str, Any] = {
    "env": Environment.development,
    "playground_enabled": True,
    "fhir_allow_http": True,
    "fhir_open_server": True,
    "fixed_now": DEMO_NOW,
}


def demo_settings(**overrides: Any) -> Settings:
    """The ``CDS_`` environment, with the demo's defaults for what it leaves unset, then
    ``overrides`` (command-line flags, tests) over both."""
    from_environment = Settings()
    values: dict[str, Any] = {
        **DEMO_DEFAULTS,
        **from_environment.model_dump(include=from_environment.model_fields_set),
        **overrides,
    }
    host = values.get("host", from_environment.host)
    port = values.get("port", from_environment.port)
    values.setdefault("public_base_url", f"http://{host}:{port}")
    return Settings(**values)


def create_demo_app(settings: Settings | None = None) -> Starlette:
    """``create_app`` plus the demo FHIR endpoint the playground's "FHIR server" mode calls, and
    ``/`` leading to the playground."""
    settings = settings or demo_settings()
    app = create_app(settings)
    mount_demo_fhir(app, load_demo(settings.demo_dir))
    mount_demo_landing(app)
    return app


def serve_demo(host: str | None = None, port: int | None = None) -> None:
    """Run the demo under uvicorn until interrupted; open http://host:port/playground.

    ``host`` and ``port`` (the command's flags) override ``CDS_HOST`` / ``CDS_PORT``."""
    flags = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    settings = demo_settings(**flags)
    configure_logging(settings.log_level)
    # On stdout, apart from the JSON log lines on stderr: the one thing to do next.
    sys.stdout.write(
        f"footpath-cds demo: open {settings.public_url('/playground')} "
        f"(API {settings.public_url('/cds-services')}, FHIR {settings.public_url('/demo/fhir')})\n"
    )
    sys.stdout.flush()
    # One worker: the service calls its own demo FHIR endpoint, which must be in this process.
    uvicorn.run(
        create_demo_app(settings),
        host=settings.host,
        port=settings.port,
        access_log=False,
        log_config=None,
    )
