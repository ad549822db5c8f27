"""A required prefetch key holding a resource that cannot be read is read again from the real
FHIR server, so the cauda equina card is not lost; without a server it is a 412 (see
tests/test_lenient_reading_api.py)."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from cds.catalogue import Catalogue
from cds.demo import DEMO_DIR, load_demo
from cds.store.schema import invocations
from tests.fhirserver import fetching_app

pytestmark = [pytest.mark.fhir_server, pytest.mark.anyio]

DEMO = load_demo()
PATIENT = "demo-s06"  # cauda equina: RF-01, critical


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def loaded_server(fhir_server_url: str) -> str:
    bundle = json.loads((DEMO_DIR / "s06-cauda-equina.json").read_text())
    async with httpx.AsyncClient(timeout=60) as client:
        response = await client.post(
            fhir_server_url, json=bundle, headers={"Content-Type": "application/fhir+json"}
        )
    assert response.status_code == 200, response.text[:300]
    return fhir_server_url


@pytest.fixture
async def app(tmp_path: Any, catalogue: Catalogue) -> AsyncIterator[FastAPI]:
    database = tmp_path / "cds.db"
    async with fetching_app(database, catalogue, "2026-06-01T12:00:00+00:00") as application:
        yield application


def _request(server: str, app: FastAPI) -> dict[str, Any]:
    service = app.state.parts.catalogue.services["back-to-foot"]
    # A copy: the demo hands out its own resources, which the tests then spoil.
    body = copy.deepcopy(
        DEMO.hook_request(
            PATIENT, "patient-view", dict(service.prefetch), fhir_server=server, with_prefetch=True
        )
    )
    body["fhirAuthorization"] = {
        "access_token": "test-access-token",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "footpath-cds",
        "patient": PATIENT,
    }
    return body


def _unreadable_patient(body: dict[str, Any]) -> None:
    body["prefetch"]["patient"]["gender"] = {"coding": [{"code": "female"}]}


def _unreadable_condition(body: dict[str, Any]) -> None:
    # STU3's bare-code clinicalStatus, on the first Condition (each of S06's matches a set).
    body["prefetch"]["conditions"]["entry"][0]["resource"]["clinicalStatus"] = "active"


@pytest.mark.parametrize(
    ("key", "spoil"), [("patient", _unreadable_patient), ("conditions", _unreadable_condition)]
)
async def test_an_unreadable_required_key_is_fetched_again_and_rf_01_still_fires(
    loaded_server: str, app: FastAPI, key: str, spoil: Any
) -> None:
    body = _request(loaded_server, app)
    spoil(body)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://cds.example.org") as c:
        response = await c.post("/cds-services/back-to-foot", json=body)
    assert response.status_code == 200, response.text
    fired = {
        card["source"]["topic"]["code"]: card["indicator"] for card in response.json()["cards"]
    }
    assert fired.get("RF-01") == "critical"
    await app.state.parts.audit.flush()
    async with app.state.parts.store.engine.connect() as conn:
        (row,) = (await conn.execute(sa.select(invocations))).mappings().all()
    # Only the spoilt key is read again: one search (or read) on the server.
    assert (row["status_code"], row["fhir_fetch_count"]) == (200, 1)
