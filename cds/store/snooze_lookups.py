"""The hook call's snooze lookup, one statement per call that would show a card, run the cheapest
way each database allows: on the store's asyncpg connections for PostgreSQL, on the event
loop's thread for a SQLite file, on the store's engine otherwise."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection

from cds.store.driver_pool import DriverPool
from cds.store.engines import create_batch_engine
from cds.store.schema import snoozes
from cds.store.utc_binds import bind_processor

# (card_uuid, rule_id, snoozed_at, expires_at), the datetimes aware and in UTC.
Row = tuple[str, str, datetime, datetime]

_COLUMNS = (snoozes.c.card_uuid, snoozes.c.rule_id, snoozes.c.snoozed_at, snoozes.c.expires_at)
_PATIENT_AND_SERVICE = (
    snoozes.c.patient_hash == sa.bindparam("patient_hash"),
    snoozes.c.service_id == sa.bindparam("service_id"),
)
_UNEXPIRED = snoozes.c.expires_at > sa.bindparam("now", type_=snoozes.c.expires_at.type)

# Built once: a call's lookup only binds its values (building the statement cost more than
# running it). The primary key's columns (patient_hash, service_id, card_uuid): one index range.
ACTIVE = sa.select(*_COLUMNS).where(
    *_PATIENT_AND_SERVICE,
    snoozes.c.card_uuid.in_(sa.bindparam("card_uuids", expanding=True)),
    _UNEXPIRED,
)
# The same for PostgreSQL with the cards as one array parameter: one statement text whatever
# their number, so each connection prepares it once.
ACTIVE_ANY = sa.select(*_COLUMNS).where(
    *_PATIENT_AND_SERVICE,
    snoozes.c.card_uuid == sa.any_(sa.bindparam("card_uuids", type_=postgresql.ARRAY(sa.String()))),
    _UNEXPIRED,
)


class Lookup(Protocol):
    # Whether ``rows`` runs on the event loop's thread without awaiting anything.
    on_the_loop: bool

    async def rows(
        self, patient_hash: str, service_id: str, card_uuids: Collection[str], now: datetime
    ) -> Sequence[Row]:
        """The unexpired snoozes of ``card_uuids`` for the patient."""
        ...

    async def close(self) -> None: ...


def _values(
    patient_hash: str, service_id: str, card_uuids: Collection[str], now: datetime
) -> dict[str, Any]:
    return {
        "patient_hash": patient_hash,
        "service_id": service_id,
        "card_uuids": list(card_uuids),
        "now": now,
    }


class DriverLookup:
    """On the store's asyncpg connections (cds/store/driver_pool.py): the statement, compiled once
    by SQLAlchemy, sent as it is, without a transaction around it; asyncpg prepares it once per
    connection.

    A pool of the lookup's own (2 kept, 6 more opened past them) opened and closed a connection
    on about one call in seven at 8 calls in flight on one worker (PostgreSQL's sessions counter
    under ``bench.wrk --postgres``): a connect and a forked backend each time. The store's
    asyncpg pool keeps what it opens."""

    on_the_loop = False

    def __init__(self, pool: DriverPool) -> None:
        compiled = ACTIVE_ANY.compile(dialect=pool.dialect)
        self.statement = compiled.string
        self._order = tuple(compiled.positiontup or ())
        # The column type's own conversion of what it reads (aware, UTC), as SQLAlchemy applies.
        column_type = snoozes.c.expires_at.type.dialect_impl(pool.dialect)
        result = column_type.result_processor(pool.dialect, None)
        self._datetime: Any = result if result is not None else _same
        self._pool = pool

    async def rows(
        self, patient_hash: str, service_id: str, card_uuids: Collection[str], now: datetime
    ) -> list[Row]:
        values = _values(patient_hash, service_id, card_uuids, now)
        async with self._pool.connection() as conn:
            found = await conn.fetch(self.statement, *(values[name] for name in self._order))
        convert = self._datetime
        return [(row[0], row[1], convert(row[2]), convert(row[3])) for row in found]

    async def close(self) -> None:
        return None  # the pool is the store's, closed with it


class OnLoopLookup:
    """On a SQLite file, on the event loop's thread through a plain sqlite3 connection (the
    lookup's own engine's one): aiosqlite's hop to its thread and back (a GIL wait under load)
    costs more than the indexed read itself (docs/benchmarks.md, "Snooze lookup"), and so did
    SQLAlchemy's execution around it (the expanding IN rendered, result objects: 0.1 ms of a
    call's CPU for a 20 us read). The statement's text depends only on the number of cards, so
    sqlite3's statement cache prepares each once; values are converted by the column type's
    own processors, as SQLAlchemy converts them.

    The connection is checked out of the engine's pool once and held: a checkout and a
    check-in per call (the pool's bookkeeping and its reset, a rollback) cost about 12 us, as
    much as the read. A SELECT leaves no transaction open (sqlite3 begins one only before a
    write), so a held connection reads what was committed since, as a fresh one would. A
    connection that failed is invalidated and the next call checks out a new one, as the pool
    replaced it before."""

    on_the_loop = True

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._connection: PoolProxiedConnection | None = None
        self._statements: dict[int, str] = {}
        column_type = snoozes.c.expires_at.type
        self._bind: Any = bind_processor(column_type, engine.dialect) or _same
        self._datetime: Any = (
            column_type.dialect_impl(engine.dialect).result_processor(engine.dialect, None) or _same
        )

    async def rows(
        self, patient_hash: str, service_id: str, card_uuids: Collection[str], now: datetime
    ) -> list[Row]:
        statement = self._statements.get(len(card_uuids)) or self._statement(len(card_uuids))
        values = (patient_hash, service_id, *card_uuids, self._bind(now))
        connection = self._connection
        try:
            if connection is None:
                connection = self._connection = self._engine.raw_connection()
            found = connection.execute(statement, values).fetchall()
        except sqlite3.Error as exc:
            self._drop(connection)
            # Wrapped as SQLAlchemy wraps it: the outage watch and the fail-open log see what
            # they saw when the engine ran the lookup.
            raise DBAPIError.instance(statement, None, exc, sqlite3.Error) from exc
        convert = self._datetime
        return [(row[0], row[1], convert(row[2]), convert(row[3])) for row in found]

    def _drop(self, connection: PoolProxiedConnection | None) -> None:
        """Forget a connection that failed: the pool opens a new one at the next checkout."""
        self._connection = None
        if connection is not None:
            connection.invalidate()
            connection.close()

    def _statement(self, cards: int) -> str:
        """ACTIVE with one placeholder per card, its values in the order ``rows`` sends them."""
        uuids: list[sa.BindParameter[Any]] = [sa.bindparam(f"card_uuid_{i}") for i in range(cards)]
        query = sa.select(*_COLUMNS).where(
            *_PATIENT_AND_SERVICE, snoozes.c.card_uuid.in_(uuids), _UNEXPIRED
        )
        compiled = query.compile(dialect=self._engine.dialect)
        order = ("patient_hash", "service_id", *(u.key for u in uuids), "now")
        assert tuple(compiled.positiontup or ()) == order  # noqa: S101 - fixed by the query
        self._statements[cards] = compiled.string
        return compiled.string

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()
        self._engine.dispose()


class EngineLookup:
    """On the store's engine (an in-memory SQLite database lives in its one connection)."""

    on_the_loop = False

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def rows(
        self, patient_hash: str, service_id: str, card_uuids: Collection[str], now: datetime
    ) -> list[Row]:
        values = _values(patient_hash, service_id, card_uuids, now)
        async with self._engine.connect() as conn:
            found = await conn.execute(ACTIVE, values)
            return [(row[0], row[1], row[2], row[3]) for row in found]

    async def close(self) -> None:
        return None  # the store's engine, disposed with the store


def lookup_for(engine: AsyncEngine, pool: DriverPool | None) -> Lookup:
    """The cheapest lookup ``engine``'s database allows (see the module)."""
    if pool is not None:
        return DriverLookup(pool)
    on_loop = create_batch_engine(engine.url.render_as_string(hide_password=False))
    return EngineLookup(engine) if on_loop is None else OnLoopLookup(on_loop)


def _same(value: Any) -> Any:
    return value
