"""No prefetch, real FHIR server: every demo patient gets the same cards as with full prefetch."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from cds.catalogue import Catalogue
from cds.demo import DEMO_DIR, DemoData, load_demo
from tests.fhirserver import fetching_app

pytestmark = [pytest.mark.fhir_server, pytest.mark.anyio]

DEMO = load_demo()
PATIENTS = [(p.id, hook) for p in DEMO.patients.values() for hook in p.hooks]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def loaded_server(fhir_server_url: str) -> str:
    """The demo patients' transaction Bundles, posted to the real server once."""
    async with httpx.AsyncClient(timeout=60) as client:
        for path in sorted(DEMO_DIR.glob("*.json")):
            bundle = json.loads(path.read_text())
            if bundle.get("type") != "transaction":
                continue
            response = await client.post(
                fhir_server_url, json=bundle, headers={"Content-Type": "application/fhir+json"}
            )
            assert response.status_code == 200, (path.name, response.text[:300])
    return fhir_server_url


@pytest.fixture(scope="module")
async def app(
    tmp_path_factory: pytest.TempPathFactory, catalogue: Catalogue
) -> AsyncIterator[FastAPI]:
    db = tmp_path_factory.mktemp("fallback") / "cds.db"
    async with fetching_app(db, catalogue, "2026-06-01T12:00:00+00:00") as application:
        yield application


def _cards(response: httpx.Response) -> list[tuple[str, str, str]]:
    assert response.status_code == 200, response.text
    return sorted(
        (card["source"]["topic"]["code"], card["uuid"], card["summary"])
        for card in response.json()["cards"]
    )


def _templates(demo: DemoData, app: FastAPI, hook: str) -> tuple[str, dict[str, str]]:
    catalogue = app.state.parts.catalogue
    service = next(s for s in catalogue.services.values() if hook in s.hooks)
    return service.id, dict(service.prefetch)


@pytest.mark.parametrize(("patient_id", "hook"), PATIENTS)
async def test_fetching_from_the_fhir_server_gives_the_cards_of_full_prefetch(
    loaded_server: str, app: FastAPI, patient_id: str, hook: str
) -> None:
    """P-15, P-16: absent prefetch keys are fetched with the bearer token; same cards."""
    service_id, templates = _templates(DEMO, app, hook)
    prefetched = DEMO.hook_request(
        patient_id, hook, templates, fhir_server=loaded_server, with_prefetch=True
    )
    fetched: dict[str, Any] = DEMO.hook_request(
        patient_id, hook, templates, fhir_server=loaded_server, with_prefetch=False
    )
    fetched["fhirAuthorization"] = {
        "access_token": "test-access-token",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "footpath-cds",
        "patient": patient_id,
    }
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://cds.example.org") as c:
        with_prefetch = await c.post(f"/cds-services/{service_id}", json=prefetched)
        without = await c.post(f"/cds-services/{service_id}", json=fetched)
    assert _cards(without) == _cards(with_prefetch)
    patient = DEMO.patient(patient_id)
    if hook == patient.hook:
        assert {rule for rule, _, _ in _cards(without)} == set(patient.expected_rules)
