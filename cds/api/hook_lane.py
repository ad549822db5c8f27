"""The hook call's own way past FastAPI's routing: ``POST /cds-services/{service_id}`` handed
straight to ``call_service``, with the app's exception handlers, as the router would.

A small call spent about a tenth of its CPU between the edge middleware and ``call_service``:
FastAPI's exception and exit-stack layers, the path matched against the routes twice (once to
pick the included router, once inside it), the route's own exit stacks and its parameters
solved (query string, cookies, the path parameter validated as a ``str``). None of it changes
what a hook call answers: the route declares no dependency, no body and no response model, and
returns a ``Response``, which FastAPI sends as it is.

What can be seen is kept: Starlette's ``ExceptionMiddleware`` with the app's handlers outside
and the route's own ``wrap_app_handling_exceptions`` inside (a handler that fails is handled
by the outer layer, as before), ``path_params`` in the scope, and everything around the edge
(CORS, the edge's checks, FastAPI's outer layers) untouched. The lane takes a request only
when the router would give it to ``call_service``; a request FastAPI's telemetry is recording
(``fastapi.telemetry`` in the scope) goes through the router, so its spans still name the route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from re import Pattern
from typing import Any, Final

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette._exception_handler import wrap_app_handling_exceptions
from starlette._utils import get_route_path
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ExceptionHandler, Receive, Scope, Send

Endpoint = Callable[[str, Request], Awaitable[Response]]

SERVICE_ID: Final = "service_id"


class HookLane:
    """``endpoint`` for the requests the router would give the hook route, without the
    router."""

    def __init__(
        self,
        path_regex: Pattern[str],
        endpoint: Endpoint,
        handlers: Mapping[Any, ExceptionHandler],
        *,
        debug: bool = False,
    ) -> None:
        self._path_regex = path_regex
        self._endpoint = endpoint
        self._handled = ExceptionMiddleware(self._route, handlers=handlers, debug=debug)

    def claims(self, scope: Scope) -> bool:
        """Whether the router would hand this ``http`` request to the hook route; if so, its
        ``path_params`` are in the scope, as the router would have put them."""
        if scope["method"] != "POST" or scope.get("fastapi.telemetry") is not None:
            return False
        match = self._path_regex.match(get_route_path(scope))
        if match is None:
            return False
        path_params = dict(scope.get("path_params", {}))
        # The route's one parameter is a plain string: Starlette's "str" convertor keeps it.
        path_params[SERVICE_ID] = match[SERVICE_ID]
        scope["path_params"] = path_params
        return True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._handled(scope, receive, send)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        service_id: str = scope["path_params"][SERVICE_ID]
        endpoint = self._endpoint

        async def answer(scope: Scope, receive: Receive, send: Send) -> None:
            response = await endpoint(service_id, request)
            await response(scope, receive, send)

        await wrap_app_handling_exceptions(answer, request)(scope, receive, send)


def hook_lane_for(app: FastAPI, route: APIRoute, endpoint: Endpoint) -> HookLane | None:
    """The lane for ``route`` (the hook route, whose function is ``endpoint``) in ``app`` as it
    stands, or None, leaving every request to the router, when the router could do more or
    other than the lane for one of its requests: a route tried before it that takes POST or
    that the lane cannot read, a prefix, dependency or body limit added where it is included,
    or a parameter, dependency or body it declares beyond the service id."""
    if not _checked_against(app, route):
        return None
    found = _tried_before(app.router.routes, route)
    if found is None or not _plain(route) or app.router.dependencies:
        return None
    if app.max_body_size is not None:
        return None
    before, inclusions = found
    if not all(_plain_inclusion(inclusion) for inclusion in inclusions):
        return None
    if not all(_never_post(earlier) for earlier in before):
        return None
    handlers = {k: v for k, v in app.exception_handlers.items() if k not in (500, Exception)}
    return HookLane(route.path_regex, endpoint, handlers, debug=app.debug)


def _checked_against(app: FastAPI, route: APIRoute) -> bool:
    """Whether this FastAPI has the body limits (app, route, inclusion) the lane was checked
    against (0.165): an older one, which pyproject allows, may route in ways the lane does not
    know, so its router takes every request, as it did before the lane."""
    return hasattr(app, "max_body_size") and hasattr(route, "max_body_size")


def _plain(route: APIRoute) -> bool:
    """POST only, the service id its one parameter, no dependency, body or body limit."""
    dependant = route.dependant
    return (
        route.methods == {"POST"}
        and [param.name for param in dependant.path_params] == [SERVICE_ID]
        and not (route.dependencies or dependant.dependencies or dependant.query_params)
        and route.body_field is None
        and route.max_body_size is None
    )


def _plain_inclusion(inclusion: BaseRoute) -> bool:
    context = getattr(inclusion, "include_context", None)
    return (
        context is not None
        and not context.prefix
        and not context.dependencies
        and context.max_body_size is None
    )


def _never_post(route: BaseRoute) -> bool:
    return isinstance(route, Route) and route.methods is not None and "POST" not in route.methods


def _tried_before(
    routes: Iterable[BaseRoute], route: APIRoute
) -> tuple[list[BaseRoute], list[BaseRoute]] | None:
    """The routes the router tries before ``route``, in its order (included routers opened),
    and the inclusions on the way to it; None when ``route`` is not among them."""
    before: list[BaseRoute] = []
    for candidate in routes:
        if candidate is route:
            return before, []
        included = getattr(candidate, "original_router", None)
        if included is None:
            before.append(candidate)
            continue
        inside = _tried_before(included.routes, route)
        if inside is not None:
            return before + inside[0], [candidate, *inside[1]]
        before.extend(_leaves(included.routes))
    return None


def _leaves(routes: Iterable[BaseRoute]) -> list[BaseRoute]:
    found: list[BaseRoute] = []
    for candidate in routes:
        included = getattr(candidate, "original_router", None)
        found.extend([candidate] if included is None else _leaves(included.routes))
    return found
