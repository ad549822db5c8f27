"""Request headers the service refuses: two Authorization headers, and too many header bytes;
and /metrics behind its own token when one is set."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from cds.app import create_app
from cds.settings import Settings
from tests.conftest import changed, serving
from tests.served import cds_serve

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("path", ["/cds-services", "/metrics", "/admin/report"])
async def test_two_authorization_headers_answer_400(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(
        path, headers=[("Authorization", "Bearer one"), ("Authorization", "Bearer two")]
    )
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"
    assert "more than one Authorization header" in response.text


async def test_metrics_need_the_metrics_token_when_one_is_set(settings: Settings) -> None:
    app = create_app(changed(settings, metrics_token="scrape-secret"))
    async with serving(app) as client:
        anonymous = await client.get("/metrics")
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer guess"})
        scraper = await client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
    assert anonymous.status_code == wrong.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert scraper.status_code == 200
    assert "cds_requests_total" in scraper.text


async def test_metrics_answer_without_a_token_while_none_is_set(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/metrics")).status_code == 200


def _get_with_header(base_url: str, header_bytes: int) -> bytes:
    """A GET /healthz whose one extra header holds ``header_bytes`` bytes; the raw answer."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"GET /healthz HTTP/1.1\r\nHost: cds\r\nX-Padding: "
            + b"a" * header_bytes
            + b"\r\nConnection: close\r\n\r\n"
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_the_server_answers_431_to_headers_over_the_limit(tmp_path: Path) -> None:
    """httptools alone accepted a 10 MB header; cds serve stops reading at the limit."""
    with cds_serve(
        tmp_path / "cds.log",
        CDS_ENV="test",
        CDS_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'cds.db'}",
        CDS_MAX_HEADER_BYTES=str(32 * 1024),
    ) as service:
        within = _get_with_header(service.url, 16 * 1024)
        over = _get_with_header(service.url, 200 * 1024)
    assert within.startswith(b"HTTP/1.1 200 ")
    assert over.startswith(b"HTTP/1.1 431 ")
    assert b'"resourceType":"OperationOutcome"' in over
