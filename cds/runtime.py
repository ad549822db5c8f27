"""The long-lived parts one app shares across requests: settings, catalogue, clients, store."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import SecretStr
from starlette.requests import Request

from cds.catalogue import Catalogue
from cds.clock import Clock, system_clock
from cds.data.fhir_client import FhirClient
from cds.errors import NotFound, Unauthorized
from cds.evaluation_slots import EvaluationSlots
from cds.hooks import DiscoveryResponse, to_wire
from cds.metrics import Metrics
from cds.report import report_json
from cds.security import JwtVerifier
from cds.settings import Settings
from cds.store import AuditWriter, Store


@dataclass
class Runtime:
    """What ``create_app`` builds at startup and every route reads through ``runtime_of``."""

    settings: Settings
    catalogue: Catalogue
    clock: Clock
    verifier: JwtVerifier
    fhir_client: FhirClient
    store: Store
    metrics: Metrics
    # Writes each call's audit row and issued cards in batches; started by the app's lifespan.
    audit: AuditWriter
    # What stamps the store's records (audit rows, issued cards): always the real clock, even
    # when ``clock`` (the evaluation's "now") is fixed, as in the demo.
    stamp: Clock = system_clock
    discovery: dict[str, Any] = field(init=False)
    # Heavy calls' parsing and evaluation, off the event loop (CDS_MAX_CONCURRENT_EVALUATIONS).
    evaluations: EvaluationSlots = field(init=False)
    # Extra async resources to release at shutdown (for example the JWKS HTTP client).
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Discovery never changes while the process runs: render it once.
        self.discovery = to_wire(DiscoveryResponse(services=self.catalogue.descriptors()))
        self.evaluations = EvaluationSlots(self.settings.max_concurrent_evaluations)

    async def aclose(self) -> None:
        """Release everything, writing every queued audit row first (the store is still open)."""
        await self.audit.close()
        await self.fhir_client.aclose()
        for close in self.closers:
            await close()
        await self.store.close()

    def check_admin(self, authorization: str | None) -> None:
        """The admin routes exist only with CDS_ADMIN_TOKEN set, and need exactly that token."""
        expected = self.settings.admin_token
        if expected is None:
            raise NotFound("Not found.")
        if not _bearer_is(authorization, expected):
            raise Unauthorized("admin token mismatch")

    def check_metrics(self, authorization: str | None) -> None:
        """/metrics needs CDS_METRICS_TOKEN as bearer token when it is set."""
        expected = self.settings.metrics_token
        if expected is not None and not _bearer_is(authorization, expected):
            raise Unauthorized("metrics token mismatch")

    async def report(self, service: str | None, start: datetime, end: datetime) -> Any:
        # The report counts the cards just answered too, even those still in the writer's queue.
        await self.audit.flush()
        return report_json(await self.store.rule_report(service, start, end))


def _bearer_is(authorization: str | None, expected: SecretStr) -> bool:
    scheme, _, token = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        token.strip().encode(), expected.get_secret_value().encode()
    )


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime
