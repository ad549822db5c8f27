"""Heavy hook calls are evaluated off the event loop, one at a time per worker: the probes
keep answering meanwhile. (Probe latency under load is measured in bench/probes.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from bench.generate import make_request
from cds.app import create_app
from cds.catalogue import Catalogue
from cds.evaluation_slots import EvaluationSlots
from cds.settings import Settings
from tests.conftest import changed, serving

pytestmark = pytest.mark.anyio

SERVICE = "/cds-services/back-to-foot"


@pytest.fixture(scope="module")
def heavy_body() -> bytes:
    """The heavy chart of bench/generate.py (3.3 MiB, 5,001 resources)."""
    return orjson.dumps(make_request("heavy"))


@pytest.fixture
async def app_and_client(
    settings: Settings, catalogue: Catalogue
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(changed(settings, max_concurrent_evaluations=1), catalogue=catalogue)
    async with serving(app) as client:
        yield app, client


def _slots(app: FastAPI) -> EvaluationSlots:
    slots: EvaluationSlots = app.state.parts.evaluations
    return slots


async def _post(client: httpx.AsyncClient, body: bytes) -> httpx.Response:
    return await client.post(SERVICE, content=body, headers={"Content-Type": "application/json"})


async def test_healthz_answers_while_a_heavy_evaluation_is_running(
    app_and_client: tuple[FastAPI, httpx.AsyncClient], heavy_body: bytes
) -> None:
    app, client = app_and_client
    slots = _slots(app)
    heavy = asyncio.create_task(_post(client, heavy_body))
    while slots.running == 0:  # noqa: ASYNC110 - the slot is the thing observed, not awaited
        await asyncio.sleep(0.001)
    health = await client.get("/healthz")
    still_running = slots.running
    answered = await heavy
    assert health.status_code == 200
    assert still_running == 1, "the probe waited for the evaluation to end"
    assert answered.status_code == 200
    assert answered.json()["cards"]


async def test_evaluations_beyond_the_bound_wait_their_turn(
    app_and_client: tuple[FastAPI, httpx.AsyncClient], heavy_body: bytes
) -> None:
    app, client = app_and_client
    slots = _slots(app)
    calls = [asyncio.create_task(_post(client, heavy_body)) for _ in range(3)]
    seen: list[tuple[int, int]] = []
    while not all(call.done() for call in calls):
        seen.append((slots.running, slots.waiting))
        await asyncio.sleep(0.001)
    answers: list[Any] = [(await call).json() for call in calls]
    assert max(running for running, _ in seen) == 1
    assert max(waiting for _, waiting in seen) == 2
    assert answers[0] == answers[1] == answers[2]
    assert (slots.running, slots.waiting) == (0, 0)


async def test_a_failing_heavy_call_gives_its_slot_back(
    app_and_client: tuple[FastAPI, httpx.AsyncClient], heavy_body: bytes
) -> None:
    app, client = app_and_client
    broken = heavy_body.replace(b'"hook":"patient-view"', b'"hook":"no-such-hook"', 1)
    assert (await _post(client, broken)).status_code == 400
    assert (await _post(client, heavy_body)).status_code == 200
    assert (_slots(app).running, _slots(app).waiting) == (0, 0)


async def test_a_call_finding_a_free_slot_runs_at_once_and_one_finding_none_waits_its_turn() -> (
    None
):
    slots = EvaluationSlots(1)
    order: list[str] = []

    async def first() -> None:
        await slots.run(lambda: order.append("first runs"), in_thread=False)
        order.append("first done")

    # A free slot: the step runs before the call yields to the loop even once.
    task = asyncio.create_task(first())
    await asyncio.sleep(0)
    assert order == ["first runs", "first done"]
    await task

    loop = asyncio.get_running_loop()
    gate = asyncio.Event()

    def wait_for_the_gate() -> None:  # in the worker thread, holding the slot
        asyncio.run_coroutine_threadsafe(gate.wait(), loop).result(timeout=5)

    holding = asyncio.create_task(slots.run(wait_for_the_gate, in_thread=True))
    while slots.running == 0:  # noqa: ASYNC110 - the slot is the thing observed
        await asyncio.sleep(0.001)
    waiting = asyncio.create_task(slots.run(lambda: order.append("second runs"), in_thread=False))
    await asyncio.sleep(0.01)
    assert (slots.running, slots.waiting, order[-1]) == (1, 1, "first done")
    gate.set()
    await holding
    await waiting
    assert order[-1] == "second runs"
    assert (slots.running, slots.waiting) == (0, 0)
