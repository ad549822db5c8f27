"""``cds serve`` with its per-call store work taken out, for ``bench.wrk --store-cost``.

The same app, settings, uvicorn options and workers as ``cds serve``, except that the JWT
replay cache answers "first use" without asking anyone and the audit writer's batches go
nowhere. Everything else a call does (verifying the token, evaluating, building the audit
record and queueing it, the readiness check) is unchanged, so the difference in server CPU per
request between this and ``cds serve`` in the same run is what the replay cache and the audit
writes cost. A benchmark instrument only: it refuses no replayed token and keeps no audit.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import httpx
from fastapi import FastAPI

from cds.app import create_app as create_service_app
from cds.logs import configure_logging
from cds.security import JwtVerifier
from cds.serving import uvicorn_options
from cds.settings import Settings
from cds.store import AuditWriter
from cds.store.models import Invocation


class NoReplayCheck:
    """A replay cache that records nothing: every jti is new."""

    async def first_use(self, iss: str, jti: str, expires_at: datetime) -> bool:
        return True


class NoAuditWrites:
    """Where audit batches go in this app: nowhere."""

    async def record_invocations(self, calls: Sequence[Invocation]) -> None:
        return None


def create_app() -> FastAPI:
    """The service app from the environment, with the replay check and audit writes removed."""
    settings = Settings()
    app = create_service_app(settings)
    parts = app.state.parts
    jwks_client = httpx.AsyncClient(timeout=5.0)
    parts.verifier = JwtVerifier(settings, NoReplayCheck(), jwks_client)
    parts.closers.append(jwks_client.aclose)
    parts.audit = AuditWriter(NoAuditWrites(), parts.metrics)
    return app


def main() -> None:
    """Serve like ``cds serve``, migrations and options included, with this app."""
    import uvicorn  # noqa: PLC0415 - only when serving

    from cds.startup import preflight  # noqa: PLC0415

    settings = Settings()
    configure_logging(settings.log_level)
    preflight(settings)
    uvicorn.run(
        "bench.null_store:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        **uvicorn_options(settings),
    )


if __name__ == "__main__":
    main()
