"""On a SQLite file the hook call's snooze lookup holds one connection across calls: it still
reads every snooze committed since its last read, and a connection that failed is replaced."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.exc import DBAPIError

from cds.migrations import upgrade
from cds.settings import load_settings
from cds.store import Store
from cds.store.schema import snoozes
from cds.store.snooze_lookups import OnLoopLookup
from cds.store.snoozes import NewSnooze, SnoozeStore

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def _snooze(card: str) -> NewSnooze:
    return NewSnooze(
        patient_hash="hash-a",
        service_id="back-to-foot",
        card_uuid=card,
        rule_id="RB-01",
        override_code="patient-declined",
        snoozed_at=T0,
        expires_at=T0 + timedelta(days=30),
    )


@pytest.fixture
async def table(tmp_path: Path) -> AsyncIterator[SnoozeStore]:
    """The snoozes of a migrated SQLite file, looked up on the loop's thread."""
    settings = load_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'store.db'}",
        patient_hash_key=SecretStr("test-key"),
    )
    await upgrade(settings)
    async with Store.from_settings(settings) as store:
        made = SnoozeStore(store)
        try:
            yield made
        finally:
            await made.close()


def _lookup(table: SnoozeStore) -> OnLoopLookup:
    lookup = table._lookup
    assert isinstance(lookup, OnLoopLookup)
    return lookup


async def _cards(table: SnoozeStore, *cards: str) -> list[str]:
    found = await table.active("hash-a", "back-to-foot", list(cards), T0 + timedelta(days=1))
    return sorted(s.card_uuid for s in found)


async def test_a_snooze_stored_after_a_lookup_is_found_by_the_next_one(table: SnoozeStore) -> None:
    assert await _cards(table, "c-1", "c-2") == []
    await table.snooze([_snooze("c-1")])
    assert await _cards(table, "c-1", "c-2") == ["c-1"]
    await table.snooze([_snooze("c-2")])
    assert await _cards(table, "c-1", "c-2") == ["c-1", "c-2"]


async def test_lookups_check_out_one_connection_for_many_calls(table: SnoozeStore) -> None:
    checkouts: list[object] = []
    engine = _lookup(table)._engine
    sa.event.listen(engine, "checkout", lambda *args: checkouts.append(args))
    for _ in range(5):
        await _cards(table, "c-1")
    assert len(checkouts) == 1


async def test_after_a_failed_lookup_the_next_one_reads_on_a_new_connection(
    table: SnoozeStore,
) -> None:
    engine = table._store.engine
    await table.snooze([_snooze("c-1")])
    assert await _cards(table, "c-1") == ["c-1"]
    async with engine.begin() as conn:
        await conn.execute(sa.text("ALTER TABLE snoozes RENAME TO snoozes_away"))
    with pytest.raises(DBAPIError):
        await _lookup(table).rows("hash-a", "back-to-foot", ["c-1"], T0)
    assert _lookup(table)._connection is None
    async with engine.begin() as conn:
        await conn.execute(sa.text(f"ALTER TABLE snoozes_away RENAME TO {snoozes.name}"))
    assert await _cards(table, "c-1") == ["c-1"]
