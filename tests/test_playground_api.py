"""Playground routes: the page and its assets, demo patients, built requests; off when disabled."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from cds.api.playground import STATIC_DIR, playground_router
from cds.app import create_app
from cds.demo import load_demo
from cds.demo_server import create_demo_app
from cds.settings import Settings
from tests.conftest import changed, serving
from tests.demo_app import app_with_playground

pytestmark = pytest.mark.anyio

ORIGIN = "https://cds.example.org"


@asynccontextmanager
async def _client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as client:
            yield client


@pytest.fixture
async def playground(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(app_with_playground(settings)) as client:
        yield client


@pytest.fixture
async def demo(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(app_with_playground(settings, with_demo_fhir=True)) as client:
        yield client


async def test_the_page_and_its_assets_are_served_with_a_strict_content_security_policy(
    playground: httpx.AsyncClient,
) -> None:
    page = await playground.get("/playground")
    script = await playground.get("/playground/static/playground.js")
    style = await playground.get("/playground/static/playground.css")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert '<script src="/playground/static/playground.js" defer></script>' in page.text
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert style.headers["content-type"].startswith("text/css")


async def test_the_markdown_renderer_is_served_as_vendored_from_npm_with_its_licences(
    playground: httpx.AsyncClient,
) -> None:
    script = await playground.get("/playground/static/markdown-it.umd.min.js")
    licence = await playground.get("/playground/static/markdown-it.LICENSE.txt")
    recorded = re.search(r"unchanged: sha256 ([0-9a-f]{64})", licence.text)
    page = await playground.get("/playground")
    assert script.headers["content-type"].startswith("text/javascript")
    assert recorded is not None
    # The file is npm's, byte for byte: an edit by hand would change its digest.
    assert hashlib.sha256(script.content).hexdigest() == recorded[1]
    assert script.content == (STATIC_DIR / "markdown-it.umd.min.js").read_bytes()
    assert "Permission is hereby granted" in licence.text
    # The renderer loads before the page's script, which uses it.
    assert page.text.index("markdown-it.umd.min.js") < page.text.index("playground.js")


@pytest.mark.parametrize("name", ["playground.html.bak", "..%2Fsettings.py", "%2E%2E%2Fapp.py"])
async def test_only_the_listed_assets_are_served(playground: httpx.AsyncClient, name: str) -> None:
    response = await playground.get(f"/playground/static/{name}")
    assert response.status_code == 404


async def test_the_patient_list_names_every_demo_patient_with_its_hooks_and_expected_rules(
    playground: httpx.AsyncClient,
) -> None:
    body = (await playground.get("/playground/patients")).json()
    listed = {p["id"]: p for p in body["patients"]}
    assert set(listed) == set(load_demo().patients)
    assert listed["demo-s01"]["expectedRules"] == ["RB-02"]
    assert listed["demo-s01"]["hooks"] == ["patient-view"]
    assert "order-sign" in listed["demo-s14a"]["hooks"]
    assert body["fhirServer"] is None
    assert body["demoNow"] == "2026-06-01T12:00:00Z"


async def test_a_patient_view_request_carries_every_prefetch_key_and_a_fresh_hook_instance(
    playground: httpx.AsyncClient,
) -> None:
    url = "/playground/patients/demo-s01/request"
    first = (await playground.get(url, params={"hook": "patient-view"})).json()
    second = (await playground.get(url)).json()
    discovery = (await playground.get("/cds-services")).json()
    entry = next(s for s in discovery["services"] if s["id"] == first["serviceId"])
    request: dict[str, Any] = first["request"]
    assert entry["hook"] == "patient-view"
    assert request["hook"] == "patient-view"
    assert request["context"] == {"userId": "Practitioner/demo-clinician", "patientId": "demo-s01"}
    assert set(request["prefetch"]) == set(entry["prefetch"])
    assert request["prefetch"]["patient"]["id"] == "demo-s01"
    assert "fhirServer" not in request
    assert request["hookInstance"] != second["request"]["hookInstance"]


async def test_an_order_sign_request_puts_the_draft_mri_in_draft_orders(
    playground: httpx.AsyncClient,
) -> None:
    params = {"hook": "order-sign"}
    body = (await playground.get("/playground/patients/demo-s14a/request", params=params)).json()
    draft = body["request"]["context"]["draftOrders"]
    assert body["serviceId"] == "back-to-foot-order-sign"
    assert draft["entry"][0]["resource"]["id"] == "demo-s14a-draft-mri"
    assert draft["entry"][0]["resource"]["status"] == "draft"


async def test_an_order_select_request_selects_the_draft_mri_for_the_order_select_service(
    playground: httpx.AsyncClient,
) -> None:
    params = {"hook": "order-select"}
    body = (await playground.get("/playground/patients/demo-s14a/request", params=params)).json()
    context = body["request"]["context"]
    assert body["serviceId"] == "back-to-foot-order-select"
    assert context["selections"] == ["ServiceRequest/demo-s14a-draft-mri"]
    assert context["draftOrders"]["entry"][0]["resource"]["id"] == "demo-s14a-draft-mri"


async def test_every_hook_discovery_lists_can_be_fired_for_the_patient_with_a_draft_order(
    playground: httpx.AsyncClient,
) -> None:
    discovery = (await playground.get("/cds-services")).json()
    listing = (await playground.get("/playground/patients")).json()
    s14a = next(p for p in listing["patients"] if p["id"] == "demo-s14a")
    assert sorted(s14a["hooks"]) == sorted(s["hook"] for s in discovery["services"])
    for service in discovery["services"]:
        params = {"hook": service["hook"]}
        answer = await playground.get("/playground/patients/demo-s14a/request", params=params)
        body = answer.json()
        assert (body["serviceId"], body["request"]["hook"]) == (service["id"], service["hook"])


async def test_server_mode_sends_the_demo_fhir_server_and_no_prefetch(
    demo: httpx.AsyncClient,
) -> None:
    listing = (await demo.get("/playground/patients")).json()
    params = {"hook": "patient-view", "data": "server"}
    body = (await demo.get("/playground/patients/demo-s06/request", params=params)).json()
    assert listing["fhirServer"] == f"{ORIGIN}/demo/fhir"
    assert body["request"]["fhirServer"] == f"{ORIGIN}/demo/fhir"
    assert "prefetch" not in body["request"]


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/playground/patients/nobody/request", {}, 404),
        ("/playground/patients/demo-s01/request", {"hook": "order-sign"}, 400),
        ("/playground/patients/demo-s01/request", {"hook": "encounter-start"}, 400),
        ("/playground/patients/demo-s01/request", {"data": "server"}, 400),
    ],
)
async def test_impossible_requests_are_refused_with_an_operation_outcome(
    playground: httpx.AsyncClient, path: str, params: dict[str, str], status: int
) -> None:
    response = await playground.get(path, params=params)
    assert response.status_code == status
    assert response.json()["resourceType"] == "OperationOutcome"


async def test_the_playground_is_absent_when_settings_disable_it(settings: Settings) -> None:
    disabled = settings.model_copy(update={"playground_enabled": False})
    async with _client(app_with_playground(disabled)) as client:
        for path in ("/playground", "/playground/patients", "/playground/static/playground.js"):
            assert (await client.get(path)).status_code == 404


def test_production_has_no_playground_routes_unless_explicitly_enabled() -> None:
    production: dict[str, Any] = {
        "env": "production",
        "auth_mode": "required",
        "patient_hash_key": SecretStr("a-production-secret-of-at-least-32-bytes"),
        "trusted_issuers": {"https://ehr.example.org": "https://ehr.example.org/jwks.json"},
    }
    assert playground_router(Settings(**production)).routes == []
    enabled = Settings(**production, playground_enabled=True)
    assert playground_router(enabled).routes != []


async def test_without_demo_patients_the_playground_is_off_and_the_api_still_serves(
    settings: Settings, tmp_path: Path
) -> None:
    """A wheel or image without demo/ must not fail at startup."""
    app = create_app(changed(settings, demo_dir=tmp_path / "missing"))
    async with serving(app) as client:
        assert (await client.get("/playground")).status_code == 404
        assert (await client.get("/cds-services")).status_code == 200


async def test_the_demo_sends_its_bare_address_to_the_playground(settings: Settings) -> None:
    app = create_demo_app(settings)
    assert isinstance(app, FastAPI)
    async with _client(app) as demo:
        landing = await demo.get("/")
        followed = await demo.get("/", follow_redirects=True)
    assert landing.status_code == 307
    assert landing.headers["location"] == "/playground"
    assert followed.url.path == "/playground"
    assert followed.headers["content-type"].startswith("text/html")


async def test_cds_serve_keeps_its_bare_address_a_404_operation_outcome_beside_the_playground(
    playground: httpx.AsyncClient,
) -> None:
    assert (await playground.get("/playground")).status_code == 200
    landing = await playground.get("/")
    assert landing.status_code == 404
    assert landing.json()["resourceType"] == "OperationOutcome"
