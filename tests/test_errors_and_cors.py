"""Errors are OperationOutcomes without internals; browsers get CORS headers on every answer."""

from __future__ import annotations

import logging

import httpx
import pytest

import cds.invocation
from cds.app import create_app
from cds.catalogue import Catalogue
from cds.settings import Settings
from tests.conftest import changed, serving
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


def _preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }


LOOPBACK = [
    "http://localhost:5173",
    "http://127.0.0.1:3000",
    "http://[::1]:8081",
    "http://localhost",
]


@pytest.mark.parametrize("origin", LOOPBACK)
async def test_a_browser_tool_on_any_loopback_port_is_allowed_outside_production(
    client: httpx.AsyncClient, origin: str
) -> None:
    """S-17: a local sandbox, playground or API tool works in development and test by default."""
    preflight = await client.options("/cds-services/back-to-foot", headers=_preflight(origin))
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == origin
    answer = await client.get("/cds-services", headers={"Origin": origin})
    assert answer.headers["access-control-allow-origin"] == origin


@pytest.mark.parametrize(
    "origin",
    [
        "http://localhost.evil.example:8080",
        "http://127.0.0.1.evil.example",
        "https://evil.example/?http://localhost:3000",
        "http://192.168.1.20:8080",
    ],
)
async def test_an_origin_that_only_looks_local_is_refused(
    client: httpx.AsyncClient, origin: str
) -> None:
    preflight = await client.options("/cds-services/back-to-foot", headers=_preflight(origin))
    assert preflight.status_code == 400
    assert "access-control-allow-origin" not in preflight.headers


def _production(settings: Settings) -> Settings:
    return changed(
        settings,
        env="production",
        patient_hash_key="k" * 32,
        trusted_issuers={"https://ehr.example.org": "https://ehr.example.org/jwks.json"},
    )


@pytest.mark.parametrize("origin", LOOPBACK)
async def test_production_allows_only_its_explicit_list(
    settings: Settings, catalogue: Catalogue, origin: str
) -> None:
    async with serving(create_app(_production(settings), catalogue=catalogue)) as client:
        local = await client.options("/cds-services/back-to-foot", headers=_preflight(origin))
        listed = await client.options("/cds-services/back-to-foot", headers=_preflight(SANDBOX))
    assert local.status_code == 400
    assert "access-control-allow-origin" not in local.headers
    assert listed.headers["access-control-allow-origin"] == SANDBOX


@pytest.mark.parametrize(
    ("env", "loopback"), [("development", True), ("test", True), ("production", False)]
)
async def test_one_startup_line_says_which_cors_policy_is_in_force(
    settings: Settings,
    catalogue: Catalogue,
    caplog: pytest.LogCaptureFixture,
    env: str,
    loopback: bool,
) -> None:
    caplog.set_level(logging.INFO, logger="cds")
    chosen = _production(settings) if env == "production" else changed(settings, env=env)
    async with serving(create_app(chosen, catalogue=catalogue)):
        pass
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("CORS:")]
    assert len(lines) == 1
    assert SANDBOX in lines[0]
    assert ("any loopback origin" in lines[0]) is loopback
