"""What each route receives: one part of the app (``AppParts``), or the view of the parts a
flow declares it uses (``FeedbackParts``, ``AuthenticationParts``, ``ReportParts``; the hook
call takes ``HookCallParts`` itself, see cds/api/routes.py), never the whole."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Protocol, TypeVar

from fastapi import Depends, Request

from cds.app_parts import AppParts
from cds.catalogue import Catalogue
from cds.clock import Clock
from cds.feedback import FeedbackParts
from cds.metrics import Metrics
from cds.security import JwtVerifier
from cds.settings import Settings
from cds.store import AuditWriter, Store
from cds.store.health import StoreHealth

T = TypeVar("T")


class AuthenticationParts(Protocol):
    """What checking a caller's JWT uses of the app's parts."""

    @property
    def settings(self) -> Settings: ...
    @property
    def verifier(self) -> JwtVerifier: ...
    @property
    def metrics(self) -> Metrics: ...


class ReportParts(Protocol):
    """What the report and the dashboard use of the app's parts."""

    @property
    def settings(self) -> Settings: ...
    @property
    def catalogue(self) -> Catalogue: ...
    @property
    def store(self) -> Store: ...
    @property
    def audit(self) -> AuditWriter: ...


def parts_of(request: Request) -> AppParts:
    parts: AppParts = request.app.state.parts
    return parts


def _part(read: Callable[[AppParts], T]) -> Callable[[Request], Awaitable[T]]:
    """A dependency on what ``read`` takes from the parts.

    A coroutine on purpose: FastAPI runs a plain function dependency in a worker thread, and
    that hop cost every request more than the work it guards. It reads the parts itself
    rather than through a shared sub-dependency: resolving one costs more than the read."""

    async def dependency(request: Request) -> T:
        return read(parts_of(request))

    return dependency


# A flow's view of the parts: mypy checks here that AppParts has what the flow declares, and
# holds the route, the dependency and the flow to that.
def _feedback_parts(parts: AppParts) -> FeedbackParts:
    return parts


def _authentication_parts(parts: AppParts) -> AuthenticationParts:
    return parts


def _report_parts(parts: AppParts) -> ReportParts:
    return parts


SettingsDep = Annotated[Settings, Depends(_part(lambda parts: parts.settings))]
CatalogueDep = Annotated[Catalogue, Depends(_part(lambda parts: parts.catalogue))]
ClockDep = Annotated[Clock, Depends(_part(lambda parts: parts.clock))]
StoreDep = Annotated[Store, Depends(_part(lambda parts: parts.store))]
StoreHealthDep = Annotated[StoreHealth, Depends(_part(lambda parts: parts.store_health))]
AuditDep = Annotated[AuditWriter, Depends(_part(lambda parts: parts.audit))]
MetricsDep = Annotated[Metrics, Depends(_part(lambda parts: parts.metrics))]
DiscoveryDep = Annotated[dict[str, Any], Depends(_part(lambda parts: parts.discovery))]
FeedbackDep = Annotated[FeedbackParts, Depends(_part(_feedback_parts))]
AuthenticationDep = Annotated[AuthenticationParts, Depends(_part(_authentication_parts))]
ReportDep = Annotated[ReportParts, Depends(_part(_report_parts))]
