"""bench/store_cost.py keeps working (untimed): it drives the service's own Store and
AuditWriter on PostgreSQL, so each call it counts is a real replay check and audit write."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from bench import store_cost
from cds.store import create_engine
from cds.store.schema import invocations, issued_cards, jwt_replay
from tests.pgserver import PgServer

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


async def test_each_call_the_store_benchmark_counts_is_a_replay_check_and_an_audit_row(
    postgres_server: PgServer,
) -> None:
    url = postgres_server.create_database()
    [run] = await store_cost.measure(url, calls=100, rounds=1, database=None)
    assert run["calls"] == 100
    assert run["worker_cpu_ms_per_call"] > 0
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            counts = [
                (await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one()
                for table in (jwt_replay, invocations, issued_cards)
            ]
    finally:
        await engine.dispose()
    # 200 warm-up calls, then the round's 100; four cards each.
    assert counts == [300, 300, 1200]
