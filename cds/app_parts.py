"""The long-lived parts one app builds at startup, shares across requests and releases at
shutdown. Routes receive only the parts they use (cds/api/dependencies.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from cds.caches import EvaluationCaches
from cds.catalogue import Catalogue
from cds.clock import Clock, system_clock
from cds.data.patient_data import FhirAccess
from cds.evaluation_slots import EvaluationSlots
from cds.hooks import DiscoveryResponse, to_wire
from cds.metrics import Metrics
from cds.security import JwtVerifier
from cds.settings import Settings
from cds.snooze.snoozing import Snoozing
from cds.store import AuditWriter, Store
from cds.store.health import StoreHealth


@dataclass
class AppParts:
    """What ``create_app`` builds at startup; ``aclose`` releases it at shutdown."""

    settings: Settings
    clock: Clock
    verifier: JwtVerifier
    fhir_access: FhirAccess
    store: Store
    metrics: Metrics
    # Writes each call's audit row and issued cards in batches; started by the app's lifespan.
    audit: AuditWriter
    # What evaluation remembers between calls (validation, matching), the card frames and the
    # compiled rules, for the catalogue the app serves: this app's own, never shared.
    caches: EvaluationCaches
    # Cards overridden with a snoozing reason, hidden for their rule's period (shared table).
    snoozes: Snoozing
    # What stamps the store's records (audit rows, issued cards): always the real clock, even
    # when ``clock`` (the evaluation's "now") is fixed, as in the demo.
    stamp: Clock = system_clock
    discovery: dict[str, Any] = field(init=False)
    # Heavy calls' parsing and evaluation, off the event loop (CDS_MAX_CONCURRENT_EVALUATIONS).
    evaluations: EvaluationSlots = field(init=False)
    # The store's reachability, checked by a task the app's lifespan starts; /readyz reads it.
    store_health: StoreHealth = field(init=False)
    # Extra async resources to release at shutdown (for example the JWKS HTTP client).
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @property
    def catalogue(self) -> Catalogue:
        """The catalogue the app serves: the one its caches were built for, so the two cannot
        disagree."""
        return self.caches.catalogue

    def __post_init__(self) -> None:
        # Discovery never changes while the process runs: render it once.
        self.discovery = to_wire(DiscoveryResponse(services=self.catalogue.descriptors()))
        self.evaluations = EvaluationSlots(self.settings.max_concurrent_evaluations)
        self.store_health = StoreHealth(self.store.ping, interval=self.settings.readiness_interval)

    async def aclose(self) -> None:
        """Release everything, writing every queued audit row first (the store is still open)."""
        await self.store_health.close()
        await self.audit.close()
        await self.fhir_access.aclose()
        for close in self.closers:
            await close()
        await self.snoozes.close()
        await self.store.close()
