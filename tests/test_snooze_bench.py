"""The snooze benchmark keeps working (untimed): it seeds the table, times the three cases and
finds the one snoozed card; governance on gives a server an empty site file and the snoozes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import sqlalchemy as sa

from bench.snooze import CASES, governance_on, measure
from cds.store.engines import create_engine
from cds.store.schema import snoozes

pytestmark = pytest.mark.anyio


async def test_the_lookup_benchmark_times_every_case_and_finds_the_snoozed_card(
    tmp_path: Path,
) -> None:
    measured = await measure(f"sqlite+aiosqlite:///{tmp_path / 'bench.db'}", runs=5, rows=500)
    assert set(measured) == set(CASES)
    assert all(case["runs"] == 5 and case["median_ms"] > 0 for case in measured.values())


def test_governance_on_is_an_empty_site_file_and_a_full_snooze_table(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'server.db'}"
    site = governance_on(tmp_path, url, rows=1_000)
    assert site.read_text(encoding="utf-8") == ""

    async def count() -> int:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                return int(await conn.scalar(sa.select(sa.func.count()).select_from(snoozes)) or 0)
        finally:
            await engine.dispose()

    # Synchronous, like the benchmarks that call governance_on: it runs its own event loop.
    assert asyncio.run(count()) == 1_000
