"""Slow clients cannot hold the service: a dribbled body gets a 408, connections are capped."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from cds.app import create_app
from cds.settings import Settings
from tests.conftest import FIXED_NOW, changed, serving
from tests.served import HOST, Server, cds_serve

HOOK = "/cds-services/back-to-foot"
PARTIAL_POST = (
    f"POST {HOOK} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
    "Content-Length: 1000\r\n\r\n{"
).encode()


def _response(conn: socket.socket) -> tuple[int, dict[str, str], dict[str, Any], bytes]:
    """Status, headers and JSON body of the one response on ``conn``, then what follows it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before a response: {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    length = int(headers["content-length"])
    while len(rest) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        rest += chunk
    return int(status_line.split()[1]), headers, json.loads(rest[:length]), rest[length:]


def _until_closed(conn: socket.socket) -> bytes:
    """What the server sends until it closes the connection (raises if it never does)."""
    received = b""
    while chunk := conn.recv(65536):
        received += chunk
    return received


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the timeout tests: headers and body each get one second."""
    folder = tmp_path_factory.mktemp("slow")
    with cds_serve(
        folder / "server.log",
        CDS_ENV="test",
        CDS_DATABASE_URL=f"sqlite+aiosqlite:///{folder / 'cds.db'}",
        CDS_FIXED_NOW=FIXED_NOW,
        CDS_BODY_READ_TIMEOUT="1",
        CDS_HEADER_READ_TIMEOUT="1",
    ) as running:
        yield running


@pytest.fixture
def capped(tmp_path: Path) -> Iterator[Server]:
    """A server that serves four connections at once, and lets idle ones wait a minute."""
    with cds_serve(
        tmp_path / "server.log",
        CDS_ENV="test",
        CDS_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'cds.db'}",
        CDS_MAX_CONNECTIONS="4",
        CDS_HEADER_READ_TIMEOUT="60",
    ) as running:
        yield running


def _connect(server: Server) -> socket.socket:
    conn = socket.create_connection((HOST, server.port), timeout=15)
    return conn


def _timed_out(server: Server, partial: bytes) -> tuple[dict[str, Any], float]:
    """Send ``partial`` and nothing more: the 408 OperationOutcome that closes the connection,
    and the seconds it took to come."""
    with _connect(server) as slow:
        slow.sendall(partial)
        started = time.monotonic()
        status, headers, body, _ = _response(slow)
        waited = time.monotonic() - started
        assert _until_closed(slow) == b""
    assert status == 408
    assert headers["connection"] == "close"
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == "timeout"
    return body, waited


def test_a_body_dribbled_slower_than_the_read_timeout_gets_a_408_and_its_connection_closed(
    server: Server, rb01_request: dict[str, Any]
) -> None:
    _, waited = _timed_out(server, PARTIAL_POST)
    # Answered when the timeout ran out, not when the client gave up (1 s; the rest is CI load).
    assert waited < 10
    # The service is not held: a normal call is answered.
    assert httpx.post(server.url + HOOK, json=rb01_request, timeout=15).status_code == 200


def test_connections_beyond_the_cap_get_a_503_operation_outcome(capped: Server) -> None:
    """CDS_MAX_CONNECTIONS=4: four open connections are served, a fifth is refused politely."""
    server = capped
    held = [_connect(server) for _ in range(3)]
    try:
        # The fourth connection: still within the cap.
        assert httpx.get(server.url + "/cds-services", timeout=15).status_code == 200
        held.append(_connect(server))
        with _connect(server) as fifth:
            fifth.sendall(f"GET /cds-services HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
            status, headers, body, _ = _response(fifth)
            assert _until_closed(fifth) == b""
    finally:
        for conn in held:
            conn.close()
    assert status == 503
    assert headers["retry-after"] == "1"
    assert headers["connection"] == "close"
    [issue] = body["issue"]
    assert body["resourceType"] == "OperationOutcome"
    assert issue["severity"] == "error"
    assert issue["code"] == "throttled"
    assert "temporarily unavailable" in issue["diagnostics"]
    # Once the held connections are gone, calls are served again.
    deadline = time.monotonic() + 10
    while (status := httpx.get(server.url + "/cds-services", timeout=15).status_code) != 200:
        assert time.monotonic() < deadline, status
        time.sleep(0.1)


def test_headers_dribbled_slower_than_the_header_timeout_get_a_408_and_the_connection_closed(
    server: Server,
) -> None:
    partial = f"GET /cds-services HTTP/1.1\r\nHost: {HOST}\r\nAccept: ".encode()
    body, waited = _timed_out(server, partial)
    assert "headers" in body["issue"][0]["diagnostics"]
    assert waited < 10


def test_a_connection_that_never_sends_a_byte_is_closed_without_an_answer(
    server: Server,
) -> None:
    with _connect(server) as idle:
        assert _until_closed(idle) == b""


def test_a_kept_alive_connection_is_served_and_then_held_to_the_header_timeout_too(
    server: Server,
) -> None:
    with _connect(server) as conn:
        conn.sendall(f"GET /healthz HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        status, _, body, _ = _response(conn)
        assert (status, body) == (200, {"status": "ok"})
        conn.sendall(f"GET /healthz HTTP/1.1\r\nHost: {HOST}\r\n".encode())
        status, _, body, _ = _response(conn)
        assert _until_closed(conn) == b""
    assert status == 408
    assert body["issue"][0]["code"] == "timeout"


@pytest.mark.anyio
async def test_the_read_timeout_runs_from_the_request_not_from_each_chunk(
    settings: Settings,
) -> None:
    """In process: chunks that each come in time but add up to too long still get the 408."""
    app = create_app(changed(settings, body_read_timeout=0.3))
    chunks = [b'{"feedback": [', b"", b"", b"", b"", b"", b"]}"]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(0.1)
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/cds-services/back-to-foot/feedback",
        "raw_path": b"/cds-services/back-to-foot/feedback",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"host", b"cds.example.org")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8080),
    }
    async with serving(app):
        await app(scope, receive, send)
    start, body = sent[0], sent[1]
    assert start["status"] == 408
    assert (b"connection", b"close") in start["headers"]
    assert json.loads(body["body"])["issue"][0]["code"] == "timeout"
