"""The database engines: async (aiosqlite or asyncpg) for every query, and for a SQLite file a
synchronous one for audit batches; with each database's connection settings."""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

CONNECT_TIMEOUT_SECONDS = 5.0
# PostgreSQL connections per worker: kept open, and opened past that while calls queue for them.
POOL_SIZE = 10
POOL_OVERFLOW = 5


def create_engine(database_url: str) -> AsyncEngine:
    """An async engine for SQLite (aiosqlite) or PostgreSQL (asyncpg), tuned for each."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        in_memory = url.database in (None, "", ":memory:")
        # An in-memory database lives in one connection: every checkout must get that one.
        # A file has one writer at a time: one pooled connection per process queues writers in
        # the pool instead of racing them for SQLite's lock (which failed writes under load).
        pool: dict[str, Any] = (
            {"poolclass": StaticPool}
            if in_memory
            else {"pool_size": 1, "max_overflow": 0, "pool_timeout": 30}
        )
        engine = create_async_engine(url, json_serializer=json_text, **pool)
        sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_async_engine(
        url,
        json_serializer=json_text,
        # Enough kept open for every call a busy worker has in flight: a connection opened past
        # the pool is closed again on return, and PostgreSQL forks a backend for each one.
        pool_size=POOL_SIZE,
        max_overflow=POOL_OVERFLOW,
        # asyncpg waits 60 s for a host that does not answer; a call that needs the database
        # answers 503 after this instead (a refused connection fails at once anyway).
        connect_args={"timeout": CONNECT_TIMEOUT_SECONDS},
    )
    sa.event.listen(engine.sync_engine, "checkout", _drop_closed_connection)
    return engine


def _drop_closed_connection(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A pooled connection the server has closed is replaced before use, at no round trip.

    SQLAlchemy's ``pool_pre_ping`` asked the server instead, on every checkout: on asyncpg a
    BEGIN, a query and a ROLLBACK, three round trips per call, which doubled the replay cache's
    CPU and halved what it could serve. A restarted or stopped server closes its connections,
    which asyncpg sees at once; a connection that dies unseen fails its query, is counted as
    an outage (503) and invalidates the pool, so the next checkout connects afresh.
    """
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError


def create_batch_engine(database_url: str) -> sa.Engine | None:
    """For a SQLite file, a plain (synchronous) engine for audit batches; else None.

    aiosqlite runs every statement, and every row of an executemany, on its own thread. With the
    event loop busy, each of those hand-offs waits for the GIL (up to 5 ms) and then for a loop
    turn: under load a 200-call batch took 1.5 s and the audit writer fell behind the requests.
    On a connection of the loop's own thread the same batch is a few ms of CPU and no waiting.
    """
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    engine = sa.create_engine(
        url.set(drivername="sqlite"), json_serializer=json_text, pool_size=1, max_overflow=0
    )
    sa.event.listen(engine, "connect", _batch_pragmas)
    return engine


def _batch_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    # This connection runs on the event loop's thread: it must never sleep in SQLite's busy
    # handler (a lock held elsewhere is waited for with asyncio.sleep) nor fsync in a checkpoint
    # (the store checkpoints through the async engine, whose thread may block).
    cursor.execute("PRAGMA busy_timeout = 0")
    cursor.execute("PRAGMA wal_autocheckpoint = 0")
    cursor.close()


def is_busy(exc: OperationalError) -> bool:
    """Whether SQLite refused because another connection holds the write lock."""
    code = getattr(exc.orig, "sqlite_errorcode", None)
    return isinstance(code, int) and (code & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def json_text(value: Any) -> str:
    # The JSON columns (rule ids, card and suggestion uuids) are written for every hook call:
    # orjson does it at a fraction of json.dumps' cost, and any JSON reader reads both.
    return orjson.dumps(value).decode()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Several workers may share the file: wait for a lock instead of failing at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout = 5000")
    cursor.execute("PRAGMA journal_mode = WAL")
    # WAL + NORMAL stays consistent on power loss; it only risks the last commits, which for
    # audit and feedback rows is the right trade against an fsync per request.
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()


def insert(dialect: str, table: sa.Table) -> Any:
    """The dialect's INSERT, which has ON CONFLICT DO NOTHING on both supported databases."""
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
