"""The one middleware every request meets before the routes still does the three jobs the three
layers it replaced did, in their order: one Authorization header, the body deadline, and a 500
OperationOutcome for anything unhandled."""

from __future__ import annotations

import asyncio
import logging

import orjson
import pytest
from starlette.middleware.cors import CORSMiddleware
from starlette.types import Message, Receive, Scope, Send

from cds.api.request_edge import RequestEdge
from cds.app import create_app
from cds.errors import BodyTimeout
from cds.settings import Settings

pytestmark = pytest.mark.anyio


def _scope(*headers: tuple[bytes, bytes]) -> Scope:
    return {"type": "http", "method": "POST", "path": "/cds-services/x", "headers": list(headers)}


class _Exchange:
    """What an inner app saw and what went out to the client."""

    def __init__(self, body_delay: float = 0.0) -> None:
        self.sent: list[Message] = []
        self.body_delay = body_delay

    async def receive(self) -> Message:
        await asyncio.sleep(self.body_delay)
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def body(self) -> dict[str, object]:
        loaded: dict[str, object] = orjson.loads(self.sent[1]["body"])
        return loaded


async def _answers(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def test_the_app_wires_one_edge_layer_inside_cors(settings: Settings) -> None:
    app = create_app(settings)
    layers: list[object] = [m.cls for m in app.user_middleware]
    assert layers == [CORSMiddleware, RequestEdge]


async def test_two_authorization_headers_answer_400_before_the_app_runs() -> None:
    ran: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        ran.append(scope)

    exchange = _Exchange()
    scope = _scope((b"Authorization", b"Bearer one"), (b"authorization", b"Bearer two"))
    await RequestEdge(app, body_seconds=5)(scope, exchange.receive, exchange.send)
    assert ran == []
    assert exchange.status == 400
    assert exchange.body["resourceType"] == "OperationOutcome"
    assert "more than one Authorization header" in str(exchange.body)


async def test_one_authorization_header_reaches_the_app() -> None:
    exchange = _Exchange()
    scope = _scope((b"authorization", b"Bearer one"))
    await RequestEdge(_answers, body_seconds=5)(scope, exchange.receive, exchange.send)
    assert exchange.status == 200


async def test_a_body_arriving_after_the_deadline_is_a_body_timeout_for_the_app() -> None:
    seen: list[BodyTimeout] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await receive()
        except BodyTimeout as exc:
            seen.append(exc)
            raise

    exchange = _Exchange(body_delay=1.0)
    await RequestEdge(app, body_seconds=0.05)(_scope(), exchange.receive, exchange.send)
    assert [exc.status_code for exc in seen] == [408]


async def test_an_unhandled_exception_is_one_500_logged_by_type_and_path(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("secret internals for patient p1")

    exchange = _Exchange()
    with caplog.at_level(logging.ERROR, logger="cds"):
        await RequestEdge(app, body_seconds=5)(_scope(), exchange.receive, exchange.send)
    assert exchange.status == 500
    assert exchange.body["issue"] == [
        {"severity": "error", "code": "exception", "diagnostics": "An unexpected error occurred."}
    ]
    assert "secret" not in str(exchange.body)
    [record] = [r for r in caplog.records if r.message == "unexpected failure"]
    assert record.name == "cds"
    assert record.fields == {"path": "/cds-services/x"}  # type: ignore[attr-defined]


async def test_an_exception_after_the_answer_started_is_raised_not_answered_twice() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("after the start")

    exchange = _Exchange()
    with pytest.raises(RuntimeError):
        await RequestEdge(app, body_seconds=5)(_scope(), exchange.receive, exchange.send)
    assert [m["type"] for m in exchange.sent] == ["http.response.start"]


async def test_a_lifespan_scope_passes_through_untouched() -> None:
    seen: list[tuple[Scope, Receive, Send]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((scope, receive, send))

    exchange = _Exchange()
    scope: Scope = {"type": "lifespan"}
    await RequestEdge(app, body_seconds=5)(scope, exchange.receive, exchange.send)
    assert seen == [(scope, exchange.receive, exchange.send)]
