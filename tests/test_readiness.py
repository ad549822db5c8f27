"""/readyz answers from the store's last check, made by a background task, never by the probe:
so a probe waits for no database (nor for the GIL a database driver's thread needs), and a
check that failed or grew old still answers 503. (Latency under load: bench/probes.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from cds.app import create_app
from cds.catalogue import Catalogue
from cds.settings import Settings
from cds.store import Store
from cds.store.health import StoreHealth
from tests.conftest import changed, serving

pytestmark = pytest.mark.anyio

HASH_KEY = "k" * 32


def _in_missing_folder(settings: Settings, folder: Path, interval: float) -> Settings:
    """A SQLite file whose directory is missing: it cannot be opened until the folder exists."""
    return changed(
        settings,
        database_url=f"sqlite+aiosqlite:///{folder / 'cds.db'}",
        migrate_on_start=False,
        readiness_interval=interval,
    )


def _readiness_failures(app: FastAPI) -> float:
    value = app.state.parts.metrics.registry.get_sample_value(
        "cds_store_unavailable_total", {"operation": "readiness", "cause": "unavailable"}
    )
    return float(value or 0.0)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with Store(f"sqlite+aiosqlite:///{tmp_path / 'cds.db'}", patient_hash_key=HASH_KEY) as s:
        yield s


async def test_readiness_probes_do_not_touch_the_database(
    settings: Settings, catalogue: Catalogue, tmp_path: Path
) -> None:
    """Five probes while the database cannot be opened: each says so, none tried to open it."""
    app = create_app(
        _in_missing_folder(settings, tmp_path / "volume", interval=3600), catalogue=catalogue
    )
    async with serving(app) as client:
        answers = [await client.get("/readyz") for _ in range(5)]
        alive = await client.get("/healthz")
    assert [answer.status_code for answer in answers] == [503] * 5
    assert all(answer.json()["store"] is False for answer in answers)
    assert alive.status_code == 200
    # The one failed check is the worker's first, at startup; the probes read its result.
    assert _readiness_failures(app) == 1
    assert app.state.parts.store_health.checks == 1


async def test_readiness_follows_the_database_as_the_background_checks_see_it(
    settings: Settings, catalogue: Catalogue, tmp_path: Path
) -> None:
    folder = tmp_path / "volume"
    app = create_app(_in_missing_folder(settings, folder, interval=0.01), catalogue=catalogue)
    health: StoreHealth = app.state.parts.store_health
    async with serving(app) as client:
        down = await client.get("/readyz")
        folder.mkdir()
        seen = health.checks
        async with asyncio.timeout(30):  # a bound on a hung test, not a performance figure
            while health.checks < seen + 2:  # noqa: ASYNC110 - the checks are what is observed
                await asyncio.sleep(0.01)
        up = await client.get("/readyz")
    assert down.status_code == 503
    assert up.status_code == 200
    assert up.json() == {"status": "ok", "rules": "loaded", "store": True, "siteDigest": "none"}


async def test_the_store_is_not_ready_before_its_first_check(store: Store) -> None:
    assert StoreHealth(store.ping, interval=1.0).ready() is False


async def test_a_check_counts_for_its_interval_plus_the_ping_deadline_and_two_seconds(
    store: Store,
) -> None:
    clock = Clock()
    health = StoreHealth(store.ping, interval=1.0, now=clock)
    assert health.max_age == 5.0
    assert await health.check() is True
    clock.now += 5.0
    assert health.ready() is True
    clock.now += 0.001
    assert health.ready() is False, "a result older than max_age is trusted"
    assert await health.check() is True
    assert health.ready() is True


async def test_a_check_loop_that_stopped_turns_readiness_stale(store: Store) -> None:
    clock = Clock()
    health = StoreHealth(store.ping, interval=3600.0, now=clock)
    await health.start()
    assert health.ready() is True
    await health.close()
    clock.now += health.max_age + 1
    assert health.ready() is False


async def test_a_failed_check_makes_the_store_unready_at_once() -> None:
    """Nothing listens on port 1: the database refuses, and the check says so at once."""
    url = "postgresql+asyncpg://cds@127.0.0.1:1/cds"
    async with Store(url, patient_hash_key=HASH_KEY) as unreachable:
        health = StoreHealth(unreachable.ping, interval=1.0)
        assert await health.check() is False
    assert health.ready() is False


async def test_a_check_that_raises_counts_as_unreachable_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """ping() answers False for outages; anything it raises is a bug, never a ready store."""

    async def broken(within_seconds: float) -> bool:
        raise RuntimeError(f"bug after {within_seconds}")

    health = StoreHealth(broken, interval=1.0)
    with caplog.at_level("ERROR", logger="cds.store"):
        assert await health.check() is False
        assert await health.check() is False
    assert health.ready() is False
    assert [record.message for record in caplog.records] == ["store health check failed"]
