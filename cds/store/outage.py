"""Telling a database outage from a bug, and noticing when one starts and ends.

An unreachable database is not our code failing: callers get a 503 that says so (not a 500),
the metric says why, and the log says it once when the outage starts and once when it ends,
however many calls fail in between.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from enum import StrEnum

import asyncpg
from sqlalchemy.exc import DBAPIError, InterfaceError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from cds.logs import log_fields

log = logging.getLogger("cds.store")


class Cause(StrEnum):
    """Why the database could not be used: the ``cause`` label of the metric."""

    refused = "refused"  # nothing listens (the server is down)
    timeout = "timeout"  # no answer in time (network, or every pooled connection busy)
    network = "network"  # any other socket-level failure (DNS, unreachable host)
    disconnected = "disconnected"  # the connection died under a query (server stopped)
    unavailable = "unavailable"  # the server answered "not now" (starting, stopping, full)


class Operation(StrEnum):
    """What needed the database: the ``operation`` label of the metric."""

    replay_cache = "replay_cache"
    feedback = "feedback"
    report = "report"
    audit = "audit"
    snooze = "snooze"
    readiness = "readiness"
    other = "other"


# SQLite's "cannot do it now" results (primary codes): the file cannot be opened, read or
# written, or another connection holds the lock past the busy timeout.
_SQLITE_UNAVAILABLE = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_READONLY,
    }
)
# PostgreSQL SQLSTATEs: class 08 is "connection exception"; 53300 too many connections;
# 57P01..57P03 admin shutdown, crash shutdown, cannot connect now (starting up).
_PG_DISCONNECTED_CLASS = "08"
_PG_UNAVAILABLE = frozenset({"53300", "57P01", "57P02", "57P03"})


def unreachable_cause(exc: BaseException) -> Cause | None:
    """Why ``exc`` says the database cannot be reached, or None when it is any other error.

    A constraint violation, a bad value or a wrong query stays a bug (None): only failures
    that another try a little later could cure are an outage.
    """
    if isinstance(exc, ConnectionRefusedError):
        return Cause.refused
    if isinstance(exc, TimeoutError | PoolTimeout):
        return Cause.timeout
    if isinstance(exc, OSError):
        return Cause.network
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return Cause.disconnected
        sqlite_code = getattr(exc.orig, "sqlite_errorcode", None)
        if isinstance(sqlite_code, int):
            return Cause.unavailable if (sqlite_code & 0xFF) in _SQLITE_UNAVAILABLE else None
        cause = _sqlstate_cause(exc.orig) or _sqlstate_cause(getattr(exc.orig, "__cause__", None))
        if cause is not None:
            return cause
        # asyncpg's "connection is closed" and the like carry no SQLSTATE.
        return Cause.disconnected if isinstance(exc, InterfaceError) else None
    # asyncpg's own errors come unwrapped: while connecting, and from the replay claims'
    # connections (cds/store/replay_claims.py), which use asyncpg without SQLAlchemy.
    if isinstance(exc, asyncpg.InterfaceError) and "connection is closed" in str(exc):
        return Cause.disconnected
    # A connection the server dropped between two statements fails the next one as a protocol
    # state asyncpg did not expect (it is then closed: cds/store/driver_pool.py).
    if isinstance(exc, asyncpg.InternalClientError):
        return Cause.disconnected
    return _sqlstate_cause(exc)


def _sqlstate_cause(error: object) -> Cause | None:
    state = getattr(error, "sqlstate", None)
    if not isinstance(state, str):
        return None
    if state.startswith(_PG_DISCONNECTED_CLASS):
        return Cause.disconnected
    return Cause.unavailable if state in _PG_UNAVAILABLE else None


class OutageWatch:
    """Whether this process last found the database reachable; logs each change once.

    ``failed`` is called for every operation the database refused, ``reached`` for every one
    it answered. The first failure after a success logs "database unreachable"; the first
    success after a failure logs "database reachable again" with the outage's length and how
    many operations failed in it. Every failure is counted through ``count`` (the metric).
    """

    def __init__(
        self,
        count: Callable[[Operation, Cause], None] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._count = count
        self._clock = clock
        self._down_since: float | None = None
        self._failures = 0

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def failed(self, operation: Operation, cause: Cause) -> None:
        if self._count is not None:
            self._count(operation, cause)
        self._failures += 1
        if self._down_since is not None:
            return
        self._down_since = self._clock()
        self._failures = 1
        log.error(
            "database unreachable; answering 503 to calls that need it until it is back",
            extra=log_fields(cause=str(cause), operation=str(operation)),
        )

    def began(self) -> float:
        """When an operation begins, for :meth:`reached`."""
        return self._clock()

    def reached(self, began: float | None = None) -> None:
        """An operation the database answered, begun at ``began`` (from :meth:`began`). One
        begun before the outage was seen proves nothing about now: while a database shuts
        down, a query sent earlier can still be answered after another has failed, and
        counting it would log the outage's end and a second start within milliseconds."""
        if self._down_since is None:
            return
        if began is not None and began < self._down_since:
            return
        seconds = self._clock() - self._down_since
        self._down_since = None
        log.warning(
            "database reachable again",
            extra=log_fields(duration_ms=round(seconds * 1000), count=self._failures),
        )
