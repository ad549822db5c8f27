"""The snoozes table on SQLite and on PostgreSQL: one indexed lookup returns a patient's unexpired
snoozes, a later override wins over an earlier one, and expired rows are purged in bounded
batches."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from cds.catalogue import Catalogue
from cds.migrations import upgrade
from cds.settings import load_settings
from cds.snooze.snoozing import LOOKUP_SECONDS, Snoozing
from cds.store import Store
from cds.store.driver_pool import DRIVER_CONNECTIONS
from cds.store.schema import snoozes
from cds.store.snooze_lookups import DriverLookup
from cds.store.snoozes import NewSnooze, SnoozeStore
from tests.pgserver import PgServer

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def snooze(card: str, *, patient: str = "hash-a", at: datetime = T0, days: int = 30) -> NewSnooze:
    return NewSnooze(
        patient_hash=patient,
        service_id="back-to-foot",
        card_uuid=card,
        rule_id="RB-01",
        override_code="patient-declined",
        snoozed_at=at,
        expires_at=at + days * DAY,
    )


@pytest.fixture
async def table(store: Store) -> AsyncIterator[SnoozeStore]:
    made = SnoozeStore(store)
    try:
        yield made
    finally:
        await made.close()


async def count(store: Store) -> int:
    async with store.engine.connect() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(snoozes)) or 0)


async def test_the_lookup_returns_only_the_patients_unexpired_snoozes_of_the_cards_asked(
    table: SnoozeStore,
) -> None:
    await table.snooze(
        [
            snooze("c-1"),
            snooze("c-2", days=1),
            snooze("c-3"),
            snooze("c-1", patient="hash-b"),
        ]
    )
    found = await table.active("hash-a", "back-to-foot", ["c-1", "c-2", "c-9"], T0 + 2 * DAY)
    assert [(s.card_uuid, s.rule_id, s.snoozed_at) for s in found] == [("c-1", "RB-01", T0)]
    assert await table.active("hash-a", "back-to-foot-order-sign", ["c-1"], T0) == []


async def test_a_later_override_replaces_the_snooze_and_an_earlier_one_does_not(
    table: SnoozeStore,
) -> None:
    await table.snooze([snooze("c-1")])
    await table.snooze([snooze("c-1", at=T0 + DAY)])
    await table.snooze([snooze("c-1", at=T0 - DAY)])
    (found,) = await table.active("hash-a", "back-to-foot", ["c-1"], T0)
    assert (found.snoozed_at, found.expires_at) == (T0 + DAY, T0 + 31 * DAY)


async def test_the_purge_removes_expired_snoozes_and_keeps_running_ones(
    store: Store, table: SnoozeStore
) -> None:
    await table.snooze([snooze(f"old-{i}", days=1) for i in range(3)] + [snooze("running")])
    assert await table.purge_expired(T0 + 2 * DAY) == 3
    assert await count(store) == 1
    assert [s.card_uuid for s in await table.active("hash-a", "back-to-foot", ["running"], T0)]


async def test_one_purge_deletes_at_most_its_batch_oldest_first(
    store: Store, table: SnoozeStore
) -> None:
    await table.snooze([snooze(f"c-{i}", at=T0 + i * DAY, days=1) for i in range(5)])
    assert await table.purge_expired(T0 + 10 * DAY, limit=2) == 2
    left = await table.active("hash-a", "back-to-foot", [f"c-{i}" for i in range(5)], T0)
    assert sorted(s.card_uuid for s in left) == ["c-2", "c-3", "c-4"]
    assert await table.purge_expired(T0 + 10 * DAY) == 3
    assert await count(store) == 0


EXPLAIN = {"sqlite": "EXPLAIN QUERY PLAN ", "postgresql": "EXPLAIN "}
LOOKUP = (
    "SELECT card_uuid FROM snoozes WHERE patient_hash = 'h' AND service_id = 's' "
    "AND card_uuid IN ('a', 'b') AND expires_at > CURRENT_TIMESTAMP"
)


async def test_the_lookup_reads_the_primary_key_index(store: Store) -> None:
    dialect = store.engine.dialect.name
    query = EXPLAIN[dialect] + LOOKUP
    async with store.engine.connect() as conn:
        if dialect == "postgresql":
            # An empty table is read by a scan whatever the indexes: ask for the plan with one.
            await conn.execute(sa.text("SET enable_seqscan = off"))
        plan = " ".join(str(row) for row in await conn.execute(sa.text(query)))
    assert "pk_snoozes" in plan or "sqlite_autoindex_snoozes" in plan, plan


@dataclass(frozen=True)
class Card:
    card_uuid: str
    rule_id: str


async def test_a_lookup_the_database_cannot_answer_shows_every_card(catalogue: Catalogue) -> None:
    async with Store("postgresql+asyncpg://cds@127.0.0.1:1/cds", patient_hash_key="k") as down:
        snoozing = Snoozing.for_catalogue(down, catalogue)
        try:
            cards = [Card("c-1", "RB-01")]
            assert await snoozing.hidden("back-to-foot", "hash-a", cards, T0) == set()
            assert down.outage.down  # counted as an outage, so the next calls skip the lookup
            assert await snoozing.hidden("back-to-foot", "hash-a", cards, T0) == set()
        finally:
            await snoozing.close()


async def test_a_failed_lookup_on_a_sqlite_file_shows_every_card_and_logs_the_error_type(
    catalogue: Catalogue, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'store.db'}",
        patient_hash_key=SecretStr("test-key"),
    )
    await upgrade(settings)
    async with Store.from_settings(settings) as store:
        snoozing = Snoozing.for_catalogue(store, catalogue)
        try:
            async with store.engine.begin() as conn:
                await conn.execute(sa.text("DROP TABLE snoozes"))
            cards = [Card("c-1", "RB-01")]
            assert await snoozing.hidden("back-to-foot", "hash-a", cards, T0) == set()
        finally:
            await snoozing.close()
        # A wrong query is a bug, not an outage: logged by its SQLAlchemy type, as before.
        assert not store.outage.down
    (failed,) = [r for r in caplog.records if r.name == "cds.snooze"]
    assert failed.fields["error_type"] == "OperationalError"  # type: ignore[attr-defined]


@pytest.fixture
async def pg_store(postgres_server: PgServer) -> AsyncIterator[Store]:
    """A migrated store on a new database of the session's PostgreSQL."""
    settings = load_settings(
        database_url=postgres_server.create_database(), patient_hash_key=SecretStr("test-key")
    )
    await upgrade(settings)
    async with Store.from_settings(settings) as opened:
        yield opened


@pytest.mark.postgres
async def test_on_postgresql_the_lookup_sent_reads_the_primary_key_index(pg_store: Store) -> None:
    assert pg_store.driver is not None
    lookup = DriverLookup(pg_store.driver)
    async with pg_store.driver.connection() as conn:
        # An empty table is read by a scan whatever the indexes: ask for the plan with one.
        await conn.execute("SET enable_seqscan = off")
        try:
            plan = await conn.fetch("EXPLAIN " + lookup.statement, "h", "s", ["a", "b"], T0)
        finally:
            await conn.execute("RESET enable_seqscan")
    assert "pk_snoozes" in " ".join(row[0] for row in plan)


@pytest.mark.postgres
async def test_on_postgresql_busy_lookups_reuse_the_stores_connections(pg_store: Store) -> None:
    driver = pg_store.driver
    assert driver is not None
    table = SnoozeStore(pg_store)
    await table.snooze([snooze("c-1")])

    async def sessions() -> int:
        async with driver.connection() as conn:
            return int(
                await conn.fetchval(
                    "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
                )
            )

    before = await sessions()
    for _ in range(20):  # eight calls in flight on one worker, twenty times
        found = await asyncio.gather(
            *(table.active("hash-a", "back-to-foot", ["c-1", "c-2"], T0) for _ in range(8))
        )
        assert all([s.card_uuid for s in one] == ["c-1"] for one in found)
    # The 160 lookups opened at most the pool's connections; none was closed and opened again.
    assert await sessions() - before <= DRIVER_CONNECTIONS
    await table.close()
    assert driver.size() <= DRIVER_CONNECTIONS


async def test_the_lookup_reads_aware_utc_datetimes_on_every_database(
    table: SnoozeStore,
) -> None:
    east = timezone(timedelta(hours=5))
    await table.snooze([snooze("c-1", at=T0.astimezone(east))])
    (found,) = await table.active("hash-a", "back-to-foot", ["c-1"], T0.astimezone(east))
    assert (found.snoozed_at, found.expires_at) == (T0, T0 + 30 * DAY)
    assert found.snoozed_at.tzinfo == UTC
    assert found.expires_at.tzinfo == UTC


@pytest.mark.postgres
async def test_a_lookup_postgresql_is_slow_to_answer_shows_every_card_in_time(
    pg_store: Store, catalogue: Catalogue
) -> None:
    snoozing = Snoozing.for_catalogue(pg_store, catalogue)
    cards = [Card("c-1", "RB-01")]
    locker = await asyncpg.connect(
        pg_store.engine.url.render_as_string(hide_password=False).replace(
            "postgresql+asyncpg", "postgresql"
        )
    )
    try:
        # Another session holds the table: the lookup waits behind its lock.
        transaction = locker.transaction()
        await transaction.start()
        await locker.execute("LOCK TABLE snoozes IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        assert await snoozing.hidden("back-to-foot", "hash-a", cards, T0) == set()
        waited = time.monotonic() - started
        await transaction.rollback()
    finally:
        await locker.close()
        await snoozing.close()
    assert LOOKUP_SECONDS <= waited < LOOKUP_SECONDS + 2
    assert not pg_store.outage.down  # slow is not down: the next call looks up again
