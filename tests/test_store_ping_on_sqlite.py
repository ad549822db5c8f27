"""A readiness ping on SQLite that runs out of time answers False and leaves its query to
finish: the connection is never terminated, and closing the store leaves no task behind.

Cancelling an aiosqlite query makes SQLAlchemy terminate the connection; when that termination
was itself interrupted, aiosqlite stopped the connection's thread twice and the second stop
never finished, so a worker whose ping had once timed out on a busy loop never exited."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from cds.store import Store

pytestmark = pytest.mark.anyio

HASH_KEY = "k" * 32


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    async with Store(f"sqlite+aiosqlite:///{tmp_path}/ping.db", patient_hash_key=HASH_KEY) as made:
        yield made


def _events(store: Store, name: str) -> list[str]:
    seen: list[str] = []
    sa.event.listen(store.engine.sync_engine, name, lambda *_: seen.append(name))
    return seen


async def _ping_on_a_blocked_loop(store: Store, loop_turns: int) -> bool:
    """A ping whose deadline passes while the loop is held, after ``loop_turns`` turns of it:
    the timeout then lands at a different point of the query each time."""
    ping = asyncio.create_task(store.ping(0.05))
    for _ in range(loop_turns):
        await asyncio.sleep(0)
    time.sleep(0.08)  # noqa: ASYNC251 - holding the loop past the deadline is the point
    return await ping


async def test_a_ping_past_its_deadline_answers_false_and_never_terminates_the_connection(
    sqlite_store: Store,
) -> None:
    invalidated = _events(sqlite_store, "invalidate")
    closed = _events(sqlite_store, "close")
    assert await sqlite_store.ping() is True

    answers = [await _ping_on_a_blocked_loop(sqlite_store, turns) for turns in range(1, 12)]

    assert answers[0] is False  # the rest also when the query had not finished in those turns
    assert invalidated == []
    assert closed == []
    assert await sqlite_store.ping() is True


async def test_a_ping_past_its_deadline_counts_the_database_as_unreachable_until_one_answers(
    sqlite_store: Store,
) -> None:
    assert await _ping_on_a_blocked_loop(sqlite_store, 2) is False
    assert sqlite_store.outage.down is True

    assert await sqlite_store.ping() is True
    assert sqlite_store.outage.down is False


async def test_pings_overlapping_one_query_in_flight_share_it(sqlite_store: Store) -> None:
    assert await sqlite_store.ping() is True
    checkouts = _events(sqlite_store, "checkout")

    first = asyncio.create_task(sqlite_store.ping(2.0))
    second = asyncio.create_task(sqlite_store.ping(2.0))

    assert await first is True
    assert await second is True
    assert checkouts == ["checkout"]


async def test_closing_the_store_after_a_timed_out_ping_leaves_no_task_running(
    tmp_path: Path,
) -> None:
    before = asyncio.all_tasks()
    store = Store(f"sqlite+aiosqlite:///{tmp_path}/ping.db", patient_hash_key=HASH_KEY)
    for turns in range(1, 8):
        assert await _ping_on_a_blocked_loop(store, turns) is False

    await store.close()

    assert asyncio.all_tasks() - before == set()
