"""The JWT replay cache's write: one statement per call that records a (iss, jti) key unless a
live token already holds it, on SQLAlchemy for SQLite and on asyncpg itself for PostgreSQL."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from cds.store.driver_pool import DriverPool
from cds.store.engines import insert
from cds.store.schema import UtcDateTime, jwt_replay


def replay_key(iss: str, jti: str) -> str:
    """The row key of (iss, jti): a digest, so no caller-sized string is indexed."""
    return hashlib.sha256(json.dumps([iss, jti]).encode()).hexdigest()


def claim_statement(dialect: str) -> Any:
    """Inserts a key and returns it, or returns nothing when a live token holds it.

    A key whose token has expired is taken over (an issuer may reuse a jti then). The primary
    key decides, and its row lock makes the take-over atomic: two workers racing on one jti
    cannot both win.
    """
    stmt = insert(dialect, jwt_replay).values(
        key=sa.bindparam("key"), expires_at=sa.bindparam("expires_at")
    )
    return stmt.on_conflict_do_update(
        index_elements=["key"],
        set_={"expires_at": stmt.excluded.expires_at},
        where=jwt_replay.c.expires_at <= sa.bindparam("now", type_=UtcDateTime()),
    ).returning(jwt_replay.c.key)


class Claims(Protocol):
    async def claim(self, key: str, expires_at: datetime, now: datetime) -> bool:
        """True when ``key`` was recorded for this call; False when it is a replay."""
        ...


class EngineClaims:
    """The claim as one autocommitted statement on the store's engine (SQLite)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        # Built once: SQLAlchemy then finds its compiled form by identity.
        self._statement = claim_statement(engine.dialect.name)

    async def claim(self, key: str, expires_at: datetime, now: datetime) -> bool:
        async with self._engine.connect() as conn:
            claimed = await conn.execute(
                self._statement, {"key": key, "expires_at": expires_at, "now": now}
            )
            return claimed.first() is not None


class DriverClaims:
    """The claim on the store's asyncpg connections (PostgreSQL): the statement, compiled once by
    SQLAlchemy, is sent as it is, without a transaction around it (cds/store/driver_pool.py)."""

    def __init__(self, pool: DriverPool) -> None:
        compiled = claim_statement("postgresql").compile(dialect=pool.dialect)
        self._sql = compiled.string
        self._order = tuple(compiled.positiontup or ())
        self.pool = pool

    async def claim(self, key: str, expires_at: datetime, now: datetime) -> bool:
        values = {"key": key, "expires_at": expires_at, "now": now}
        async with self.pool.connection() as conn:
            found = await conn.fetchval(self._sql, *(values[name] for name in self._order))
        return found is not None


def claims_for(engine: AsyncEngine, pool: DriverPool | None) -> Claims:
    """On the asyncpg connections when there are some (PostgreSQL), else on the engine."""
    return EngineClaims(engine) if pool is None else DriverClaims(pool)
