"""What each route receives: one part of the app (``AppParts``), or the view of them that a
flow declares it uses (``HookCallParts``, ``FeedbackParts``), never the whole."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request

from cds.app_parts import AppParts
from cds.catalogue import Catalogue
from cds.feedback import FeedbackParts
from cds.invocation import HookCallParts
from cds.metrics import Metrics
from cds.security import JwtVerifier
from cds.settings import Settings
from cds.store import AuditWriter, Store

T = TypeVar("T")


def parts_of(request: Request) -> AppParts:
    parts: AppParts = request.app.state.parts
    return parts


# Coroutines on purpose: FastAPI runs a plain function dependency in a worker thread, and that
# hop cost every request more than the work it guards. FastAPI calls ``_parts`` once per request
# however many of the dependencies below a route takes.
async def _parts(request: Request) -> AppParts:
    return parts_of(request)


def _part(read: Callable[[AppParts], T]) -> Callable[[AppParts], Awaitable[T]]:
    """A dependency on what ``read`` takes from the parts."""

    async def dependency(parts: Annotated[AppParts, Depends(_parts)]) -> T:
        return read(parts)

    return dependency


# A flow's view of the parts: mypy checks here that AppParts has what the flow declares, and
# holds the route and the flow to that.
def _hook_call_parts(parts: AppParts) -> HookCallParts:
    return parts


def _feedback_parts(parts: AppParts) -> FeedbackParts:
    return parts


SettingsDep = Annotated[Settings, Depends(_part(lambda parts: parts.settings))]
CatalogueDep = Annotated[Catalogue, Depends(_part(lambda parts: parts.catalogue))]
StoreDep = Annotated[Store, Depends(_part(lambda parts: parts.store))]
AuditDep = Annotated[AuditWriter, Depends(_part(lambda parts: parts.audit))]
MetricsDep = Annotated[Metrics, Depends(_part(lambda parts: parts.metrics))]
VerifierDep = Annotated[JwtVerifier, Depends(_part(lambda parts: parts.verifier))]
DiscoveryDep = Annotated[dict[str, Any], Depends(_part(lambda parts: parts.discovery))]
HookCallsDep = Annotated[HookCallParts, Depends(_part(_hook_call_parts))]
FeedbackDep = Annotated[FeedbackParts, Depends(_part(_feedback_parts))]
