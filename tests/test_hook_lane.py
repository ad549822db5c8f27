"""A hook call handed straight to its route answers exactly as the router would have: the same
status, headers and body, the same log lines, for good calls, refused ones, failures and paths
beside the route's; and the lane stands aside whenever the router could have chosen otherwise."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi import APIRouter, Depends, FastAPI
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from starlette.types import ASGIApp, Message, Scope

import cds.invocation
from cds.api import cds_routes
from cds.api.hook_lane import HookLane, hook_lane_for
from cds.api.request_edge import RequestEdge
from cds.api.routes import call_service, hook_route
from cds.app import create_app
from cds.catalogue import Catalogue
from cds.settings import Settings
from tests.jwt_minting import Issuer, make_issuer
from tests.test_auth_api import BASE, secured_app

pytestmark = pytest.mark.anyio

HOOK = "/cds-services/back-to-foot"
SANDBOX = "https://sandbox.cds-hooks.org"
Headers = list[tuple[bytes, bytes]]


def _scope(method: str, path: str, headers: Headers, root_path: str = "") -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "https",
        "path": path,
        "raw_path": path.encode("utf-8", "surrogateescape"),
        "query_string": b"",
        "root_path": root_path,
        "headers": [(b"host", b"cds.example.org"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("cds.example.org", 443),
        "state": {},
    }


async def _exchange(app: ASGIApp, scope: Scope, body: bytes) -> list[Message]:
    """What the app sends for one request whose body arrives at once."""
    sent: list[Message] = []
    delivered = False

    async def receive() -> Message:
        nonlocal delivered
        if delivered:
            return {"type": "http.disconnect"}
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def _edge(app: FastAPI) -> RequestEdge:
    layer: Any = app.middleware_stack
    while not isinstance(layer, RequestEdge):
        layer = layer.app
    return layer


@contextmanager
def _lane(app: FastAPI, on: bool) -> Iterator[None]:
    edge = _edge(app)
    lane = edge.hook_lane
    assert lane is not None
    edge.hook_lane = lane if on else None
    try:
        yield
    finally:
        edge.hook_lane = lane


@asynccontextmanager
async def _running(app: FastAPI) -> AsyncIterator[FastAPI]:
    async with app.router.lifespan_context(app):
        # The middleware stack (and the lane with it) is built by the first request.
        await _exchange(app, _scope("GET", "/healthz", []), b"")
        yield app


def _lines(records: list[logging.LogRecord]) -> list[tuple[str, str, str, dict[str, Any]]]:
    """Log lines as an operator reads them, less the call's duration."""
    lines = []
    for record in records:
        fields = {k: v for k, v in getattr(record, "fields", {}).items() if k != "duration_ms"}
        lines.append((record.name, record.levelname, record.getMessage(), fields))
    return lines


async def _both_ways(
    app: FastAPI,
    caplog: pytest.LogCaptureFixture,
    scope: Scope,
    body: bytes,
) -> tuple[list[Message], list[Message]]:
    """The messages sent with the lane and through the router, each after its log lines were
    compared."""
    answers, lines = [], []
    for on in (True, False):
        caplog.clear()
        with _lane(app, on), caplog.at_level(logging.INFO):
            answers.append(await _exchange(app, dict(scope), body))
        lines.append(_lines(caplog.records))
    assert lines[0] == lines[1]
    return answers[0], answers[1]


@pytest.fixture
def issuer(tmp_path: Path) -> Issuer:
    return make_issuer(tmp_path)


@pytest.fixture
async def open_app(settings: Settings, catalogue: Catalogue) -> AsyncIterator[FastAPI]:
    async with _running(create_app(settings, catalogue=catalogue)) as app:
        yield app


@pytest.fixture
async def guarded_app(
    settings: Settings, issuer: Issuer, catalogue: Catalogue
) -> AsyncIterator[FastAPI]:
    async with _running(secured_app(settings, issuer, catalogue)) as app:
        yield app


def _json(body: dict[str, Any]) -> bytes:
    return orjson.dumps(body)


JSON = [(b"content-type", b"application/json")]


def _cases(rb01: dict[str, Any]) -> list[tuple[str, str, Headers, bytes, str]]:
    """(method, path, headers, body, root path) of calls the lane takes and calls beside it."""
    good = _json(rb01)
    origin = [(b"origin", SANDBOX.encode())]
    return [
        ("POST", HOOK, JSON, good, ""),
        ("POST", HOOK, [*JSON, *origin], good, ""),
        ("POST", HOOK, [*JSON, (b"origin", b"https://elsewhere.example")], good, ""),
        ("POST", HOOK, [], good, ""),
        ("POST", "/cds-services/no-such-service", [*JSON, *origin], good, ""),
        ("POST", HOOK, JSON, b"{not json", ""),
        ("POST", HOOK, JSON, b"[]", ""),
        ("POST", HOOK, JSON, _json({**rb01, "hook": "order-sign"}), ""),
        ("POST", HOOK, [(b"content-type", b"text/plain")], good, ""),
        ("POST", HOOK, [*JSON, (b"content-length", b"999999999999")], good, ""),
        ("POST", HOOK, [*JSON, (b"authorization", b"a"), (b"Authorization", b"b")], good, ""),
        ("POST", HOOK + "/", JSON, good, ""),
        ("POST", HOOK + "/feedback", JSON, b"{}", ""),
        ("GET", HOOK, [], b"", ""),
        ("PUT", HOOK, JSON, good, ""),
        ("POST", "/cds-services/", JSON, good, ""),
        ("POST", "/cds-services", JSON, good, ""),
        ("POST", "/base" + HOOK, JSON, good, "/base"),
        ("POST", HOOK, JSON, good, "/base"),
        ("POST", "/basex" + HOOK, JSON, good, "/base"),
    ]


async def test_the_lane_answers_every_call_as_the_router_does(
    open_app: FastAPI, caplog: pytest.LogCaptureFixture, rb01_request: dict[str, Any]
) -> None:
    for method, path, headers, body, root_path in _cases(rb01_request):
        scope = _scope(method, path, headers, root_path)
        with_lane, through_router = await _both_ways(open_app, caplog, scope, body)
        assert with_lane == through_router, (method, path, headers, root_path)


async def test_the_lane_refuses_tokens_as_the_router_does(
    guarded_app: FastAPI,
    issuer: Issuer,
    caplog: pytest.LogCaptureFixture,
    rb01_request: dict[str, Any],
) -> None:
    good = _json(rb01_request)
    wrong_audience = issuer.header(f"{BASE}/cds-services/another-service")["Authorization"]
    for authorization in [None, "Bearer nonsense", wrong_audience]:
        headers = list(JSON)
        if authorization is not None:
            headers.append((b"authorization", authorization.encode()))
        scope = _scope("POST", HOOK, headers)
        with_lane, through_router = await _both_ways(guarded_app, caplog, scope, good)
        assert with_lane == through_router
        assert with_lane[0]["status"] == 401


async def test_a_valid_token_is_answered_alike_one_token_each_way(
    guarded_app: FastAPI,
    issuer: Issuer,
    caplog: pytest.LogCaptureFixture,
    rb01_request: dict[str, Any],
) -> None:
    answers = []
    for on in (True, False):
        token = issuer.header(BASE + HOOK)["Authorization"].encode()
        scope = _scope("POST", HOOK, [*JSON, (b"authorization", token)])
        with _lane(guarded_app, on):
            answers.append(await _exchange(guarded_app, scope, _json(rb01_request)))
    assert answers[0] == answers[1]
    assert answers[0][0]["status"] == 200


async def test_an_unexpected_failure_is_the_same_500_and_log_line_either_way(
    open_app: FastAPI,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    rb01_request: dict[str, Any],
) -> None:
    def explode(*_: object, **__: object) -> None:
        raise RuntimeError("secret internals for patient p1")

    monkeypatch.setattr(cds.invocation, "evaluate", explode)
    scope = _scope("POST", HOOK, JSON)
    with_lane, through_router = await _both_ways(open_app, caplog, scope, _json(rb01_request))
    assert with_lane == through_router
    assert with_lane[0]["status"] == 500


@hypothesis_settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    segment=st.text(st.characters(exclude_categories=["Cs"]), max_size=12),
    root_path=st.sampled_from(["", "/r", "/cds-services"]),
    method=st.sampled_from(["POST", "GET", "OPTIONS"]),
)
async def test_any_path_is_answered_alike_with_or_without_the_lane(
    open_app: FastAPI,
    caplog: pytest.LogCaptureFixture,
    segment: str,
    root_path: str,
    method: str,
) -> None:
    scope = _scope(method, f"{root_path}/cds-services/{segment}", JSON, root_path)
    with_lane, through_router = await _both_ways(open_app, caplog, scope, b"{}")
    assert with_lane == through_router


# --------------------------------------------------------------------------- what it takes


def _lane_scope(method: str, path: str, root_path: str = "") -> Scope:
    return _scope(method, path, [], root_path)


def test_the_app_builds_a_lane_for_its_hook_route(settings: Settings) -> None:
    app = create_app(settings)
    assert isinstance(hook_lane_for(app, hook_route(), call_service), HookLane)


@pytest.mark.parametrize(
    ("method", "path", "root_path", "service_id"),
    [
        ("POST", HOOK, "", "back-to-foot"),
        ("POST", "/cds-services/anything at all", "", "anything at all"),
        ("POST", "/base" + HOOK, "/base", "back-to-foot"),
        ("POST", HOOK, "/base", "back-to-foot"),
        ("GET", HOOK, "", None),
        ("POST", HOOK + "/", "", None),
        ("POST", HOOK + "/feedback", "", None),
        ("POST", "/cds-services/", "", None),
        ("POST", "/cds-services", "", None),
    ],
)
def test_the_lane_takes_a_post_to_one_service_and_nothing_else(
    settings: Settings, method: str, path: str, root_path: str, service_id: str | None
) -> None:
    lane = hook_lane_for(create_app(settings), hook_route(), call_service)
    assert lane is not None
    scope = _lane_scope(method, path, root_path)
    assert lane.claims(scope) is (service_id is not None)
    if service_id is not None:
        assert scope["path_params"] == {"service_id": service_id}


def test_a_request_telemetry_records_goes_through_the_router(settings: Settings) -> None:
    lane = hook_lane_for(create_app(settings), hook_route(), call_service)
    assert lane is not None
    scope = _lane_scope("POST", HOOK)
    scope["fastapi.telemetry"] = object()
    assert not lane.claims(scope)


def _app_with(router: APIRouter | None = None, **include: Any) -> FastAPI:
    app = FastAPI()
    if router is not None:
        app.include_router(router)
    app.include_router(cds_routes, **include)
    return app


def test_no_lane_when_a_route_before_the_hook_route_takes_post() -> None:
    earlier = APIRouter()

    @earlier.post("/cds-services/{name}")
    async def elsewhere(name: str) -> None: ...

    assert hook_lane_for(_app_with(earlier), hook_route(), call_service) is None


def test_a_route_before_it_that_takes_only_get_leaves_the_lane() -> None:
    earlier = APIRouter()

    @earlier.get("/cds-services/{name}")
    async def elsewhere(name: str) -> None: ...

    assert hook_lane_for(_app_with(earlier), hook_route(), call_service) is not None


def test_no_lane_when_the_hook_routes_are_included_under_a_prefix() -> None:
    assert hook_lane_for(_app_with(prefix="/v1"), hook_route(), call_service) is None


def test_no_lane_when_the_hook_routes_are_included_with_a_dependency() -> None:
    async def gate() -> None: ...

    app = _app_with(dependencies=[Depends(gate)])
    assert hook_lane_for(app, hook_route(), call_service) is None


def test_no_lane_when_the_app_adds_a_dependency_or_a_body_limit() -> None:
    async def gate() -> None: ...

    guarded = FastAPI(dependencies=[Depends(gate)])
    guarded.include_router(cds_routes)
    limited = FastAPI(max_body_size=1000)
    limited.include_router(cds_routes)
    assert hook_lane_for(guarded, hook_route(), call_service) is None
    assert hook_lane_for(limited, hook_route(), call_service) is None


def test_no_lane_for_a_route_the_app_does_not_hold() -> None:
    assert hook_lane_for(FastAPI(), hook_route(), call_service) is None


def test_no_lane_on_a_fastapi_older_than_the_body_limits_it_was_checked_against() -> None:
    older = FastAPI()
    older.include_router(cds_routes)
    assert hook_lane_for(older, hook_route(), call_service) is not None
    del older.max_body_size  # as FastAPI before 0.165 built it
    assert hook_lane_for(older, hook_route(), call_service) is None
