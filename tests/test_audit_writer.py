"""The audit writer batches hook calls off the request path and loses none on the way out."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.exc import OperationalError

from cds.logs import JsonFormatter
from cds.metrics import Metrics
from cds.migrations import upgrade
from cds.settings import load_settings
from cds.store import AuditRecord, AuditWriter, Invocation, IssuedCard, Store
from cds.store.schema import invocations, issued_cards
from tests.pgserver import PgServer

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SERVICES = ["back-to-foot"]


def call(hook: str, *, issued_at: datetime = T0) -> Invocation:
    # Not validated, so that a test can hand the store a value it must refuse.
    card = IssuedCard.model_construct(
        card_uuid=f"card-{hook}",
        rule_id="RF-01",
        service_id="back-to-foot",
        hook_instance=hook,
        suggestion_uuids=[],
        issued_at=issued_at,
    )
    audit = AuditRecord(
        hook_instance=hook,
        service_id="back-to-foot",
        hook="patient-view",
        rule_ids=["RF-01"],
        card_uuids=[card.card_uuid],
        duration_ms=1.0,
        status=200,
        received_at=T0,
        patient_hash="hash",
    )
    return audit, [card]


async def hooks_written(store: Store) -> list[str]:
    async with store.engine.connect() as conn:
        return list((await conn.scalars(sa.select(invocations.c.hook_instance))).all())


def sample(metrics: Metrics, name: str) -> float:
    value = metrics.registry.get_sample_value(name)
    return value or 0.0


@dataclass
class Spy:
    """Passes batches on to a store, noting their sizes; can hold them at a gate or fail them."""

    store: Store | None = None
    gate: asyncio.Event | None = None
    failures: int = 0
    started: list[int] = field(default_factory=list)
    written: list[int] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def record_invocations(self, calls: Sequence[Invocation]) -> None:
        await self._note(self.started, len(calls))
        if self.gate is not None:
            await self.gate.wait()
        if self.failures:
            self.failures -= 1
            raise OperationalError("INSERT ...", {}, Exception("connection refused"))
        if self.store is not None:
            await self.store.record_invocations(calls)
        await self._note(self.written, len(calls))

    async def until(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(5), self.changed:
            await self.changed.wait_for(condition)

    async def _note(self, sizes: list[int], size: int) -> None:
        async with self.changed:
            sizes.append(size)
            self.changed.notify_all()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(service_ids=SERVICES)


async def test_queued_calls_are_written_together_in_one_transaction_when_flushed(
    store: Store, metrics: Metrics
) -> None:
    spy = Spy(store)
    writer = AuditWriter(spy, metrics, batch_seconds=3600)
    writer.start()
    for n in range(5):
        await writer.submit(*call(f"h-{n}"))
    await asyncio.sleep(0.05)
    assert await hooks_written(store) == []
    await writer.flush()
    assert sorted(await hooks_written(store)) == [f"h-{n}" for n in range(5)]
    assert spy.written == [5]
    await writer.close()


async def test_a_batch_is_written_by_itself_once_its_interval_has_passed(
    store: Store, metrics: Metrics
) -> None:
    spy = Spy(store)
    writer = AuditWriter(spy, metrics, batch_seconds=0.02)
    writer.start()
    for n in range(3):
        await writer.submit(*call(f"h-{n}"))
    await spy.until(lambda: spy.written == [3])
    assert len(await hooks_written(store)) == 3
    await writer.close()


async def test_a_full_batch_is_written_without_waiting_for_the_interval(
    store: Store, metrics: Metrics
) -> None:
    spy = Spy(store)
    writer = AuditWriter(spy, metrics, batch_calls=4, batch_seconds=3600)
    writer.start()
    for n in range(10):
        await writer.submit(*call(f"h-{n}"))
    await spy.until(lambda: spy.written == [4, 4])
    await writer.flush()
    assert spy.written == [4, 4, 2]
    assert len(await hooks_written(store)) == 10
    await writer.close()


async def test_closing_writes_every_queued_call_and_later_calls_are_written_at_once(
    store: Store, metrics: Metrics
) -> None:
    writer = AuditWriter(store, metrics, batch_seconds=3600)
    writer.start()
    for n in range(3):
        await writer.submit(*call(f"h-{n}"))
    await writer.close()
    assert len(await hooks_written(store)) == 3
    await writer.submit(*call("after-close"))
    assert "after-close" in await hooks_written(store)


async def test_a_call_before_the_writer_starts_is_written_at_once(
    store: Store, metrics: Metrics
) -> None:
    writer = AuditWriter(store, metrics)
    await writer.submit(*call("early"))
    assert await hooks_written(store) == ["early"]
    await writer.flush()


async def test_a_full_queue_makes_requests_wait_instead_of_dropping_calls(
    metrics: Metrics,
) -> None:
    spy = Spy(gate=asyncio.Event())
    writer = AuditWriter(spy, metrics, batch_calls=1, batch_seconds=0, max_queued=2)
    writer.start()
    await writer.submit(*call("h-0"))
    await spy.until(lambda: spy.started == [1])  # taken out of the queue, held at the gate
    await writer.submit(*call("h-1"))
    await writer.submit(*call("h-2"))
    blocked = asyncio.create_task(writer.submit(*call("h-3")))
    await asyncio.sleep(0.05)
    assert not blocked.done()
    assert spy.gate is not None
    spy.gate.set()
    await blocked
    await writer.close()
    assert spy.written == [1, 1, 1, 1]
    assert sample(metrics, "cds_audit_rows_lost_total") == 0


async def test_calls_waiting_for_room_while_the_writer_closes_are_written_too(
    metrics: Metrics,
) -> None:
    spy = Spy(gate=asyncio.Event())
    writer = AuditWriter(spy, metrics, batch_calls=1, batch_seconds=0, max_queued=1)
    writer.start()
    await writer.submit(*call("h-0"))
    await spy.until(lambda: spy.started == [1])  # taken out of the queue, held at the gate
    await writer.submit(*call("h-1"))  # fills the queue
    waiting = asyncio.create_task(writer.submit(*call("h-2")))
    closing = asyncio.create_task(writer.close())
    await asyncio.sleep(0.05)
    assert not waiting.done()
    assert not closing.done()
    assert spy.gate is not None
    spy.gate.set()
    await asyncio.gather(waiting, closing)
    assert sum(spy.written) == 3
    assert not writer.running


class Crash(BaseException):
    """Something no database error handler catches."""


@dataclass
class CrashOnce:
    store: Store
    crashed: bool = False

    async def record_invocations(self, calls: Sequence[Invocation]) -> None:
        if not self.crashed:
            self.crashed = True
            raise Crash
        await self.store.record_invocations(calls)


async def test_if_the_writing_task_dies_later_calls_and_its_queue_are_still_written(
    store: Store, metrics: Metrics
) -> None:
    writer = AuditWriter(CrashOnce(store), metrics, batch_calls=1, batch_seconds=0)
    writer.start()
    for n in range(3):
        await writer.submit(*call(f"h-{n}"))
    async with asyncio.timeout(5):
        await writer.flush()  # returns although the task died writing h-0
    assert not writer.running
    await writer.submit(*call("after"))  # written at once
    await writer.close()  # writes what the dead task left queued
    assert sorted(await hooks_written(store)) == ["after", "h-1", "h-2"]


async def test_one_bad_call_in_a_batch_loses_only_itself_and_is_counted(
    store: Store, metrics: Metrics
) -> None:
    writer = AuditWriter(store, metrics, batch_seconds=3600)
    writer.start()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("cds.audit")
    logger.addHandler(handler)
    try:
        await writer.submit(*call("good-1"))
        # The store refuses naive datetimes while binding: this call's row cannot be written.
        await writer.submit(*call("bad-hook-7f3a", issued_at=datetime(2026, 6, 1)))
        await writer.submit(*call("good-2"))
        await writer.flush()
    finally:
        logger.removeHandler(handler)
        await writer.close()
    assert sorted(await hooks_written(store)) == ["good-1", "good-2"]
    async with store.engine.connect() as conn:
        cards = set((await conn.scalars(sa.select(issued_cards.c.card_uuid))).all())
    assert cards == {"card-good-1", "card-good-2"}
    assert sample(metrics, "cds_audit_batch_failures_total") == 1
    assert sample(metrics, "cds_audit_rows_lost_total") == 1
    logs = stream.getvalue()
    assert "audit rows lost" in logs
    # The database's message quotes the row; only the error's type may reach the log.
    assert "bad-hook-7f3a" not in logs


async def test_an_unreachable_database_loses_the_batch_but_the_writer_carries_on(
    store: Store, metrics: Metrics
) -> None:
    spy = Spy(store, failures=2)
    writer = AuditWriter(spy, metrics, batch_seconds=3600)
    writer.start()
    for n in range(3):
        await writer.submit(*call(f"lost-{n}"))
    await writer.flush()
    # One try of the batch and one of its first call: the rest is not tried against a dead
    # database, each after its own timeout.
    assert spy.started == [3, 1]
    assert sample(metrics, "cds_audit_rows_lost_total") == 3
    await writer.submit(*call("later"))
    await writer.flush()
    assert await hooks_written(store) == ["later"]
    await writer.close()


async def test_flush_returns_at_once_when_nothing_is_queued(metrics: Metrics) -> None:
    spy = Spy()
    writer = AuditWriter(spy, metrics, batch_seconds=3600)
    writer.start()
    async with asyncio.timeout(1):
        await writer.flush()
    await writer.close()
    assert spy.started == []


@pytest.mark.postgres
async def test_a_value_postgresql_refuses_in_a_batch_loses_only_its_call(
    postgres_server: PgServer, metrics: Metrics
) -> None:
    """A batch is one statement there: the database refuses it whole, then the calls one by one."""
    settings = load_settings(
        database_url=postgres_server.create_database(), patient_hash_key=SecretStr("test-key")
    )
    await upgrade(settings)
    too_long = call("bad-rule")
    too_long[1][0].__dict__["rule_id"] = "R" * 200  # the column holds 128 characters
    async with Store.from_settings(settings) as store:
        writer = AuditWriter(store, metrics, batch_seconds=3600)
        writer.start()
        for invocation in (call("good-1"), too_long, call("good-2")):
            await writer.submit(*invocation)
        await writer.close()
        assert sorted(await hooks_written(store)) == ["good-1", "good-2"]
    assert sample(metrics, "cds_audit_batch_failures_total") == 1
    assert sample(metrics, "cds_audit_rows_lost_total") == 1
