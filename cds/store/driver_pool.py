"""asyncpg connections of the store's own, for the statements every call causes on PostgreSQL
(the replay claim, the audit batches), sent without SQLAlchemy's layers and transactions."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from cds.store.engines import CONNECT_TIMEOUT_SECONDS

# Connections per worker: each statement holds one for a fraction of a millisecond.
DRIVER_CONNECTIONS: Final = 8
# How long a statement waits for one of them before the call answers 503 (as SQLAlchemy's pool).
DRIVER_WAIT_SECONDS: Final = 30.0
# Options of SQLAlchemy's asyncpg dialect that asyncpg.connect does not take.
_DIALECT_ONLY: Final = (
    "async_creator_fn",
    "prepared_statement_cache_size",
    "prepared_statement_name_func",
)


def uses_driver_pool(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "postgresql" and engine.dialect.driver == "asyncpg"


class DriverPool:
    """An asyncpg pool on the engine's database, opened by the first statement that needs it.

    Through SQLAlchemy a one-statement call cost about 0.27 ms of a worker's CPU (pool checkout,
    isolation level set and reset, result objects), through asyncpg's own pool 0.1 ms. Every
    statement sent here is a whole transaction by itself (autocommit), so a connection carries
    no session state, and the pool skips asyncpg's reset on release (a round trip). A
    connection the server closed is replaced at acquire, as the store's engine does at checkout.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.dialect = engine.dialect
        _, options = engine.dialect.create_connect_args(engine.url)
        self._connect = {k: v for k, v in options.items() if k not in _DIALECT_ONLY}
        self._pool: Any = None  # asyncpg.Pool, once opened
        self._opening: asyncio.Lock | None = None

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        """One asyncpg connection for one statement."""
        pool = self._pool or await self._open()
        # Not acquire(timeout=...): that wraps each acquire in a task of its own.
        async with asyncio.timeout(DRIVER_WAIT_SECONDS):
            conn = await pool.acquire()
        try:
            yield conn
        except BaseException as exc:
            if not _about_the_statement(exc):
                # The server dropped it, or it broke mid-exchange: its state is unknown, so it
                # is closed, and the pool opens a new one for the next statement. (One asyncpg
                # saw closed is already back in the pool, and refuses calls.)
                with contextlib.suppress(asyncpg.InterfaceError):
                    conn.terminate()
            raise
        finally:
            await pool.release(conn)

    async def _open(self) -> Any:
        # Opened on the event loop that serves the calls, by the first of them.
        self._opening = self._opening or asyncio.Lock()
        async with self._opening:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    min_size=0,
                    max_size=DRIVER_CONNECTIONS,
                    reset=_nothing_to_reset,
                    timeout=CONNECT_TIMEOUT_SECONDS,
                    **self._connect,
                )
        return self._pool

    def size(self) -> int:
        """Connections open now (0 before the first statement)."""
        return 0 if self._pool is None else int(self._pool.get_size())

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()


async def _nothing_to_reset(_conn: Any) -> None:
    return None


def _about_the_statement(exc: BaseException) -> bool:
    """An error the server raised about the statement's values (SQLSTATE class 22 or 23), which
    leaves the connection as it was."""
    return isinstance(exc, asyncpg.PostgresError) and str(exc.sqlstate)[:2] in {"22", "23"}
