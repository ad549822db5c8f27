"""Only trusted EHRs get in: every CDS endpoint checks the JWT when auth is required."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import ValidationError

from cds.api import cds_routes
from cds.app import create_app
from cds.catalogue import Catalogue
from cds.cli import main
from cds.errors import ConfigError
from cds.security import MemoryReplayCache, replay_cache_for
from cds.settings import Settings
from tests.conftest import changed, serving
from tests.jwt_minting import ISSUER, Issuer, make_issuer

pytestmark = pytest.mark.anyio

BASE = "https://cds.example.org"


@pytest.fixture
def issuer(tmp_path: Path) -> Issuer:
    return make_issuer(tmp_path)


def secured_app(
    settings: Settings, issuer: Issuer, catalogue: Catalogue | None = None, **changes: Any
) -> FastAPI:
    """An app that requires a JWT from ``issuer``, with ``changes`` to ``settings`` on top."""
    trusted = {ISSUER: str(issuer.jwks_file)}
    secured = changed(settings, auth_mode="required", trusted_issuers=trusted, **changes)
    return create_app(secured, catalogue=catalogue)


@pytest.fixture
async def secured(
    settings: Settings, issuer: Issuer, catalogue: Catalogue
) -> AsyncIterator[httpx.AsyncClient]:
    app = secured_app(settings, issuer, catalogue)
    async with serving(app) as client:
        yield client


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/cds-services"),
        ("POST", "/cds-services/back-to-foot"),
        ("POST", "/cds-services/back-to-foot/feedback"),
    ],
)
async def test_every_cds_endpoint_answers_401_without_a_token(
    secured: httpx.AsyncClient, method: str, path: str
) -> None:
    """S-03, S-13, E-03: a uniform 401 with WWW-Authenticate and an OperationOutcome."""
    response = await secured.request(method, path, json={})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["diagnostics"] == "The request is not authorized."


async def test_every_route_of_the_cds_services_router_answers_401_without_a_token(
    secured: httpx.AsyncClient,
) -> None:
    """Read from the router that owns /cds-services, not a list: a route added to it later
    (the hook call checks the token itself, the others through a dependency) cannot skip it."""
    calls = [
        (method, route.path.replace("{service_id}", "back-to-foot"))
        for route in cds_routes.routes
        if isinstance(route, APIRoute)
        for method in sorted(route.methods or ())
    ]
    assert len(calls) >= 4  # discovery (with and without its slash), the hook call, feedback
    for method, path in calls:
        assert path.startswith("/cds-services")
        response = await secured.request(method, path, json={})
        assert (method, path, response.status_code) == (method, path, 401)


async def test_discovery_accepts_a_token_minted_for_the_discovery_url(
    secured: httpx.AsyncClient, issuer: Issuer
) -> None:
    """S-09: aud is the endpoint URL built from CDS_PUBLIC_BASE_URL."""
    response = await secured.get("/cds-services", headers=issuer.header(f"{BASE}/cds-services"))
    assert response.status_code == 200


async def test_a_token_for_another_endpoint_is_refused(
    secured: httpx.AsyncClient, issuer: Issuer
) -> None:
    """S-09: a token minted for service A does not open service B."""
    header = issuer.header(f"{BASE}/cds-services/back-to-foot-order-sign")
    response = await secured.post("/cds-services/back-to-foot", json={}, headers=header)
    assert response.status_code == 401


@pytest.mark.parametrize("replay_cache", ["auto", "memory", "database"])
async def test_a_replayed_token_is_refused_the_second_time(
    settings: Settings,
    issuer: Issuer,
    rb01_request: dict[str, Any],
    replay_cache: str,
) -> None:
    """S-12, whichever replay cache CDS_REPLAY_CACHE picks."""
    app = secured_app(settings, issuer, replay_cache=replay_cache)
    header = issuer.header(f"{BASE}/cds-services/back-to-foot")
    async with serving(app) as client:
        first = await client.post("/cds-services/back-to-foot", json=rb01_request, headers=header)
        second = await client.post("/cds-services/back-to-foot", json=rb01_request, headers=header)
    assert first.status_code == 200
    assert second.status_code == 401


SQLITE = "sqlite+aiosqlite:///cds.db"
POSTGRES = "postgresql+asyncpg://cds@db/cds"


@pytest.mark.parametrize(
    ("replay_cache", "database_url", "workers", "in_memory"),
    [
        # auto: one process sees every token only with SQLite and one worker.
        ("auto", SQLITE, 1, True),
        ("auto", SQLITE, 2, False),
        ("auto", POSTGRES, 1, False),
        ("database", SQLITE, 1, False),
        ("memory", POSTGRES, 1, True),
    ],
)
def test_the_replay_cache_is_in_memory_only_where_one_process_sees_every_token(
    replay_cache: str, database_url: str, workers: int, in_memory: bool
) -> None:
    settings = Settings(replay_cache=replay_cache, database_url=database_url, workers=workers)
    database = MemoryReplayCache()  # stands in for the Store: only its identity matters here
    chosen = replay_cache_for(settings, database)
    assert isinstance(chosen, MemoryReplayCache)
    assert (chosen is not database) is in_memory


def test_an_in_memory_replay_cache_with_several_workers_is_refused_at_startup(
    settings: Settings,
) -> None:
    unsafe = changed(settings, replay_cache="memory", workers=2)
    with pytest.raises(ConfigError, match="CDS_REPLAY_CACHE=memory is unsafe"):
        create_app(unsafe)


def test_cds_serve_refuses_an_in_memory_replay_cache_with_several_workers_before_serving(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CDS_REPLAY_CACHE", "memory")
    monkeypatch.setenv("CDS_WORKERS", "2")

    def serve(*_: Any, **__: Any) -> None:
        raise AssertionError("uvicorn must not start")

    monkeypatch.setattr("uvicorn.run", serve)
    assert main(["serve"]) == 2
    assert "CDS_REPLAY_CACHE=memory is unsafe with CDS_WORKERS=2" in capsys.readouterr().err


async def test_feedback_accepts_a_token_for_the_feedback_url(
    secured: httpx.AsyncClient, issuer: Issuer
) -> None:
    """F-06, SB-13: the sandbox signs feedback with aud = {service URL}/feedback."""
    body = {
        "feedback": [
            {"card": "c1", "outcome": "overridden", "outcomeTimestamp": "2026-06-01T12:00:00Z"}
        ]
    }
    header = issuer.header(f"{BASE}/cds-services/back-to-foot/feedback")
    response = await secured.post("/cds-services/back-to-foot/feedback", json=body, headers=header)
    assert response.status_code == 200


FEEDBACK = {
    "feedback": [
        {"card": "c1", "outcome": "overridden", "outcomeTimestamp": "2026-06-01T12:00:00Z"}
    ]
}


@pytest.mark.parametrize(
    ("lenient", "aud", "status"),
    [
        (False, f"{BASE}/cds-services/back-to-foot", 401),
        (False, f"{BASE}/cds-services", 401),
        (True, f"{BASE}/cds-services/back-to-foot", 200),
        (True, f"{BASE}/cds-services", 200),
        (True, f"{BASE}/cds-services/another-service", 401),
    ],
)
async def test_feedback_accepts_the_service_or_discovery_url_only_when_configured(
    settings: Settings, issuer: Issuer, lenient: bool, aud: str, status: int
) -> None:
    """S-09: feedback's aud is not spelled out; CDS_FEEDBACK_AUD_LENIENT accepts the others."""
    app = secured_app(settings, issuer, feedback_aud_lenient=lenient)
    async with serving(app) as client:
        url = "/cds-services/back-to-foot/feedback"
        response = await client.post(url, json=FEEDBACK, headers=issuer.header(aud))
        assert response.status_code == status
        # The service itself never takes a token minted for another endpoint.
        service = await client.post(
            "/cds-services/back-to-foot", json={}, headers=issuer.header(f"{BASE}/cds-services")
        )
        assert service.status_code == 401


@pytest.mark.parametrize(
    ("tenant", "status"),
    [("clinic-a", 200), ("clinic-z", 401), (None, 401)],
)
async def test_a_tenant_allowlist_admits_only_the_listed_tenants(
    settings: Settings, issuer: Issuer, tenant: str | None, status: int
) -> None:
    """S-08 step 4: with CDS_TRUSTED_TENANTS set, the tenant claim must be on it."""
    app = secured_app(settings, issuer, trusted_tenants=["clinic-a", "clinic-b"])
    claims = {"tenant": tenant} if tenant is not None else {}
    async with serving(app) as client:
        response = await client.get(
            "/cds-services", headers=issuer.header(f"{BASE}/cds-services", **claims)
        )
    assert response.status_code == status


async def test_preflights_need_no_token_even_when_auth_is_required(
    secured: httpx.AsyncClient,
) -> None:
    """S-18."""
    response = await secured.options(
        "/cds-services/back-to-foot",
        headers={
            "Origin": "https://sandbox.cds-hooks.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert response.status_code == 200


async def test_health_probes_need_no_token(secured: httpx.AsyncClient) -> None:
    assert (await secured.get("/healthz")).status_code == 200
    assert (await secured.get("/readyz")).status_code == 200


def test_production_refuses_to_start_with_auth_off() -> None:
    with pytest.raises(ValidationError, match="CDS_AUTH_MODE=off"):
        Settings(env="production", auth_mode="off", patient_hash_key="k" * 32)


def test_production_requires_auth_by_default() -> None:
    settings = Settings(
        env="production",
        patient_hash_key="k" * 32,
        trusted_issuers={"https://ehr.example.org": "https://ehr.example.org/jwks.json"},
    )
    assert settings.effective_auth_mode.value == "required"


def test_production_refuses_the_unsafe_sandbox_profile() -> None:
    with pytest.raises(ValidationError, match="unsafe"):
        Settings(env="production", trust_sandbox=True, patient_hash_key="k" * 32)
