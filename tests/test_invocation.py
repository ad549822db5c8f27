"""One hook call's lifecycle: the collector is paused while it computes and always resumes."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from cds.app import create_app
from cds.catalogue import Catalogue
from cds.gc_pause import collector_paused
from cds.settings import Settings
from tests.conftest import serving

pytestmark = pytest.mark.anyio
SERVICE = "/cds-services/back-to-foot"


@pytest.fixture(autouse=True)
def collector_running() -> None:
    gc.enable()


async def test_the_collector_runs_again_after_an_answer_from_prefetch(
    client: httpx.AsyncClient, rb01_request: dict[str, Any]
) -> None:
    response = await client.post(SERVICE, json=rb01_request)
    assert response.status_code == 200
    assert gc.isenabled()


@pytest.mark.parametrize(
    ("content", "status"),
    [
        (b"{not json", 400),
        (b'{"hook": "patient-view"}', 400),
    ],
)
async def test_the_collector_runs_again_after_a_refused_request(
    client: httpx.AsyncClient, content: bytes, status: int
) -> None:
    response = await client.post(
        SERVICE, content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == status
    assert gc.isenabled()


async def test_the_collector_runs_again_after_missing_required_data(
    client: httpx.AsyncClient, rb01_request: dict[str, Any]
) -> None:
    """E-05: a required key neither prefetched nor fetchable answers 412, audited."""
    del rb01_request["prefetch"]["conditions"]
    response = await client.post(SERVICE, json=rb01_request)
    assert response.status_code == 412
    assert gc.isenabled()


async def test_the_collector_runs_again_after_an_unexpected_failure(
    client: httpx.AsyncClient, rb01_request: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("cds.invocation.evaluate", broken)
    response = await client.post(SERVICE, json=rb01_request)
    assert response.status_code == 500
    assert "boom" not in response.text
    assert gc.isenabled()


def test_a_pause_inside_a_pause_leaves_the_collector_paused_until_the_outer_one_ends() -> None:
    with collector_paused():
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_collector_switched_off_by_the_operator_stays_off() -> None:
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


# ---------------------------------------------------------------------------


def _fallback(request: dict[str, Any], *, expires_in: int, scope: str) -> dict[str, Any]:
    """``request`` with its conditions left to the FHIR server, under the given token."""
    del request["prefetch"]["conditions"]
    request["fhirServer"] = "https://ehr.example.org/fhir"
    request["fhirAuthorization"] = {
        "access_token": "opaque-token",
        "token_type": "Bearer",
        "expires_in": expires_in,
        "scope": scope,
        "subject": "footpath-cds",
    }
    return request


@pytest.fixture
def fhir_calls() -> list[httpx.Request]:
    return []


@pytest.fixture
async def fetching_client(
    settings: Settings, catalogue: Catalogue, fhir_calls: list[httpx.Request]
) -> AsyncIterator[httpx.AsyncClient]:
    def fhir_server(request: httpx.Request) -> httpx.Response:
        fhir_calls.append(request)
        return httpx.Response(200, json={"resourceType": "Bundle", "type": "searchset"})

    app = create_app(settings, httpx.MockTransport(fhir_server), catalogue=catalogue)
    async with serving(app) as client:
        yield client


async def test_a_token_that_allows_the_read_fetches_the_missing_key(
    fetching_client: httpx.AsyncClient,
    fhir_calls: list[httpx.Request],
    rb01_request: dict[str, Any],
) -> None:
    body = _fallback(rb01_request, expires_in=300, scope="patient/Condition.rs")
    response = await fetching_client.post(SERVICE, json=body)
    assert response.status_code == 200
    assert [call.url.path for call in fhir_calls] == ["/fhir/Condition"]
    assert gc.isenabled()


@pytest.mark.parametrize(
    ("expires_in", "scope", "why"),
    [
        (0, "patient/*.read", "access token expired"),
        (300, "patient/Observation.rs", "scope does not allow reading Condition"),
    ],
)
async def test_a_token_that_cannot_be_used_leaves_required_data_missing(  # noqa: PLR0917
    fetching_client: httpx.AsyncClient,
    fhir_calls: list[httpx.Request],
    rb01_request: dict[str, Any],
    expires_in: int,
    scope: str,
    why: str,
) -> None:
    """E-05: the required key stays unavailable, so 412; Conditions are never asked for."""
    body = _fallback(rb01_request, expires_in=expires_in, scope=scope)
    response = await fetching_client.post(SERVICE, json=body)
    assert response.status_code == 412
    assert why in response.text
    assert "opaque-token" not in response.text
    assert [call for call in fhir_calls if call.url.path.endswith("/Condition")] == []
