"""Snoozes in the database, shared by every worker and replica: set by feedback that overrides a
card with a snoozing reason, read at most once per hook call that would show a card, purged
once expired. Keyed by the keyed patient hash; no patient id is stored (docs/governance.md)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from cds.store.database import Store
from cds.store.engines import CONNECT_TIMEOUT_SECONDS, create_batch_engine, insert
from cds.store.outage import Operation
from cds.store.schema import issued_cards, snoozes

# One purge deletes at most this many expired rows, so it never holds a long lock; rows are
# only added by feedback, which purges again (docs/operations.md).
PURGE_BATCH: Final = 5_000
# Connections per worker for the hook calls' lookups on PostgreSQL (beside the store's pool).
LOOKUP_POOL: Final = 2
LOOKUP_OVERFLOW: Final = 6


@dataclass(frozen=True, slots=True)
class StoredSnooze:
    """A snooze as stored: its card and rule, when the override was, and the end it was given."""

    card_uuid: str
    rule_id: str
    snoozed_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class IssuedTo:
    """What a snooze needs of an issued card: its rule, and its patient's keyed hash (None for
    cards issued before snoozes existed)."""

    rule_id: str
    patient_hash: str | None


@dataclass(frozen=True, slots=True)
class NewSnooze:
    """One card to snooze for one patient, from one override."""

    patient_hash: str
    service_id: str
    card_uuid: str
    rule_id: str
    override_code: str
    snoozed_at: datetime
    expires_at: datetime


# Built once: a call's lookup only binds its values (building the statement cost more than
# running it). The primary key's columns (patient_hash, service_id, card_uuid): one index range.
_ACTIVE = sa.select(
    snoozes.c.card_uuid, snoozes.c.rule_id, snoozes.c.snoozed_at, snoozes.c.expires_at
).where(
    snoozes.c.patient_hash == sa.bindparam("patient_hash"),
    snoozes.c.service_id == sa.bindparam("service_id"),
    snoozes.c.card_uuid.in_(sa.bindparam("card_uuids", expanding=True)),
    snoozes.c.expires_at > sa.bindparam("now", type_=snoozes.c.expires_at.type),
)


class SnoozeStore:
    """The snoozes table over the store's engine.

    On a SQLite file the hook call's lookup runs on the event loop's thread, through a plain
    connection of its own: aiosqlite's hop to its thread and back (a GIL wait under load) costs
    more than the indexed read itself (docs/benchmarks.md, "Snooze lookup")."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._engine = store.engine
        url = store.engine.url.render_as_string(hide_password=False)
        self._on_loop = create_batch_engine(url)
        self._lookups = _lookup_engine(store.engine)

    @property
    def down(self) -> bool:
        """Whether this process last found the database unreachable."""
        return self._store.outage.down

    async def close(self) -> None:
        if self._on_loop is not None:
            self._on_loop.dispose()
        if self._lookups is not self._engine:
            await self._lookups.dispose()

    async def active(
        self, patient_hash: str, service_id: str, card_uuids: Collection[str], now: datetime
    ) -> list[StoredSnooze]:
        """The unexpired snoozes of ``card_uuids`` for the patient: one indexed query."""
        values = {
            "patient_hash": patient_hash,
            "service_id": service_id,
            "card_uuids": list(card_uuids),
            "now": now,
        }
        async with self._store.reaching(Operation.snooze):
            if self._on_loop is not None:
                with self._on_loop.connect() as conn:
                    rows = conn.execute(_ACTIVE, values).all()
            else:
                async with self._lookups.connect() as aconn:
                    rows = (await aconn.execute(_ACTIVE, values)).all()
        return [StoredSnooze(*row) for row in rows]

    async def issued_to(self, service_id: str, card_uuids: Collection[str]) -> dict[str, IssuedTo]:
        """The rule and patient hash of each card of ``card_uuids`` the service issued."""
        ic = issued_cards.c
        query = sa.select(ic.card_uuid, ic.rule_id, ic.patient_hash).where(
            ic.service_id == service_id, ic.card_uuid.in_(card_uuids)
        )
        async with self._store.reaching(Operation.snooze), self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {uuid: IssuedTo(rule_id, patient) for uuid, rule_id, patient in rows}

    async def snooze(self, new: Sequence[NewSnooze]) -> None:
        """Store each snooze; one already stored for the card keeps the later override."""
        if not new:
            return
        async with self._store.reaching(Operation.snooze), self._engine.begin() as conn:
            stmt = insert(conn.dialect.name, snoozes)
            upsert = stmt.on_conflict_do_update(
                index_elements=["patient_hash", "service_id", "card_uuid"],
                set_={
                    "rule_id": stmt.excluded.rule_id,
                    "override_code": stmt.excluded.override_code,
                    "snoozed_at": stmt.excluded.snoozed_at,
                    "expires_at": stmt.excluded.expires_at,
                },
                # Feedback can arrive out of order: an older override never shortens a newer one.
                where=stmt.excluded.snoozed_at > snoozes.c.snoozed_at,
            )
            await conn.execute(upsert, [_row(snooze) for snooze in new])

    async def purge_expired(self, now: datetime, limit: int = PURGE_BATCH) -> int:
        """Delete up to ``limit`` snoozes that ended by ``now`` (oldest first); how many went."""
        s = snoozes.c
        key = sa.tuple_(s.patient_hash, s.service_id, s.card_uuid)
        expired = (
            sa.select(s.patient_hash, s.service_id, s.card_uuid)
            .where(s.expires_at <= now)
            .order_by(s.expires_at)
            .limit(limit)
        )
        async with self._store.reaching(Operation.snooze), self._engine.begin() as conn:
            result = await conn.execute(snoozes.delete().where(key.in_(expired)))
        return result.rowcount


def _lookup_engine(engine: AsyncEngine) -> AsyncEngine:
    """On PostgreSQL, a small pool of its own for the hook calls' lookups: one round trip each.
    The store's engine wraps each statement in a transaction, two more round trips; a lookup
    needs none, since one that fails on a dead connection shows the cards (fail open) and the
    pool then drops its connections.
    Elsewhere the store's engine."""
    if engine.dialect.name != "postgresql":
        return engine
    return create_async_engine(
        engine.url,
        # One statement, read only: no BEGIN before it and no ROLLBACK after, each a round trip.
        isolation_level="AUTOCOMMIT",
        pool_size=LOOKUP_POOL,
        max_overflow=LOOKUP_OVERFLOW,
        connect_args={"timeout": CONNECT_TIMEOUT_SECONDS},
    )


def _row(snooze: NewSnooze) -> dict[str, Any]:
    return {
        "patient_hash": snooze.patient_hash,
        "service_id": snooze.service_id,
        "card_uuid": snooze.card_uuid,
        "rule_id": snooze.rule_id,
        "override_code": snooze.override_code,
        "snoozed_at": snooze.snoozed_at,
        "expires_at": snooze.expires_at,
    }
