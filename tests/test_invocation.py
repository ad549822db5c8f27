"""One hook call's lifecycle: the collector is paused while it computes and always resumes."""

from __future__ import annotations

import gc
from typing import Any

import httpx
import pytest

from cds.wire import collector_paused

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
