"""Errors are OperationOutcomes without internals; browsers get CORS headers on every answer."""

from __future__ import annotations

import httpx
import pytest

import cds.invocation
from tests.requests import hook_request

pytestmark = pytest.mark.anyio

SANDBOX = "https://sandbox.cds-hooks.org"


async def test_an_unexpected_failure_is_a_500_without_stack_or_phi(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """E-06: fault injected into the engine; the body says nothing about the patient or code."""

    def explode(*_: object, **__: object) -> None:
        raise RuntimeError("secret internals for patient p1")

    monkeypatch.setattr(cds.invocation, "evaluate", explode)
    entries = (await client.get("/cds-services")).json()["services"]
    entry = next(e for e in entries if e["hook"] == "patient-view")
    response = await client.post(
        f"/cds-services/{entry['id']}", json=hook_request(entry), headers={"Origin": SANDBOX}
    )
    assert response.status_code == 500
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == "exception"
    assert "secret" not in response.text
    assert "p1" not in response.text
    assert "Traceback" not in response.text
    assert response.headers["access-control-allow-origin"] == SANDBOX


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/cds-services"),
        ("POST", "/cds-services/back-to-foot"),
        ("POST", "/cds-services/back-to-foot/feedback"),
    ],
)
async def test_a_preflight_succeeds_without_a_token(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    """S-18, PP-05: preflights never need the JWT."""
    response = await client.options(
        path,
        headers={
            "Origin": SANDBOX,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == SANDBOX
    allowed = response.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed
    assert "content-type" in allowed


async def test_error_responses_carry_cors_headers(client: httpx.AsyncClient) -> None:
    """S-18: a 4xx must be readable by the browser too."""
    response = await client.post(
        "/cds-services/no-such-service", json={}, headers={"Origin": SANDBOX}
    )
    assert response.status_code == 404
    assert response.headers["access-control-allow-origin"] == SANDBOX


async def test_an_origin_that_is_not_allowed_gets_no_cors_grant(client: httpx.AsyncClient) -> None:
    """S-17: allowed origins are configured, not '*'."""
    response = await client.get("/cds-services", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in response.headers


async def test_health_and_readiness_answer(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["store"] is True
