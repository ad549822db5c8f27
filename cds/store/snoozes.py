"""Snoozes in the database, shared by every worker and replica: set by feedback that overrides a
card with a snoozing reason, read at most once per hook call that would show a card, purged
once expired. Keyed by the keyed patient hash; no patient id is stored (docs/governance.md)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa

from cds.store.database import Store
from cds.store.engines import insert
from cds.store.outage import Operation
from cds.store.schema import issued_cards, snoozes
from cds.store.snooze_lookups import lookup_for

# One purge deletes at most this many expired rows, so it never holds a long lock; rows are
# only added by feedback, which purges again (docs/operations.md).
PURGE_BATCH: Final = 5_000


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


class SnoozeStore:
    """The snoozes table over the store's engine; the hook call's lookup the cheapest way the
    database allows (cds/store/snooze_lookups.py)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._engine = store.engine
        self._lookup = lookup_for(store.engine, store.driver)

    @property
    def on_the_loop(self) -> bool:
        """Whether the lookup runs on the event loop's thread, never awaiting the database."""
        return self._lookup.on_the_loop

    @property
    def down(self) -> bool:
        """Whether this process last found the database unreachable."""
        return self._store.outage.down

    async def close(self) -> None:
        await self._lookup.close()

    async def active(
        self, patient_hash: str, service_id: str, card_uuids: Collection[str], now: datetime
    ) -> list[StoredSnooze]:
        """The unexpired snoozes of ``card_uuids`` for the patient: one indexed query."""
        async with self._store.reaching(Operation.snooze):
            rows = await self._lookup.rows(patient_hash, service_id, card_uuids, now)
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
