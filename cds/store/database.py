"""The Store: audit, issued cards, feedback and the JWT replay cache over one async engine."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from cds.errors import StoreUnavailable
from cds.metrics import Metrics
from cds.settings import Settings
from cds.store.audit_batch import DriverAudit
from cds.store.audit_on_sqlite import SqliteAudit, insert_cards
from cds.store.driver_pool import DriverPool, uses_driver_pool
from cds.store.engines import create_batch_engine, create_engine, insert, is_busy
from cds.store.models import (
    AuditRecord,
    FeedbackItem,
    FeedbackOutcome,
    Invocation,
    IssuedCardLike,
    RuleReport,
    WeeklyReport,
    patient_hash,
)
from cds.store.outage import Operation, OutageWatch, unreachable_cause
from cds.store.replay_claims import claims_for, replay_key
from cds.store.rule_report import rule_report, weekly_rule_report
from cds.store.schema import feedback, invocations, issued_cards, jwt_replay

logger = logging.getLogger(__name__)

# Expired jti rows are swept at most this often per process; the lookups never depend on it.
PURGE_INTERVAL_SECONDS = 60.0
# SQLite audit batches: how long one waits, in short async sleeps, for another connection's
# write transaction to end; and how many calls are written between two WAL checkpoints.
LOCK_WAIT_SECONDS = 5.0
# How long closing the store waits for a readiness query still running on SQLite.
PING_FINISH_SECONDS = 5.0
LOCK_RETRY_SECONDS = 0.005
CHECKPOINT_EVERY_CALLS = 2_000


def issued_card_row(card: IssuedCardLike, patient_hash: str | None = None) -> dict[str, Any]:
    """One ``issued_cards`` row for ``card``, shown to the patient of ``patient_hash``."""
    return {
        "card_uuid": card.card_uuid,
        "service_id": card.service_id,
        "rule_id": card.rule_id,
        "hook_instance": card.hook_instance,
        "suggestion_uuids": list(card.suggestion_uuids),
        "issued_at": card.issued_at,
        "patient_hash": patient_hash,
    }


def _feedback_key(service_id: str, item: FeedbackItem) -> str:
    """The same feedback posted twice gets the same key; display text is left out on purpose."""
    content = [
        service_id,
        item.card,
        item.outcome,
        item.outcome_timestamp.astimezone(UTC).isoformat(),
        sorted(item.accepted_suggestion_ids),
        item.override_system,
        item.override_code,
        item.user_comment,
    ]
    return hashlib.sha256(json.dumps(content).encode()).hexdigest()


class Store:
    """Persistence for one process; every replica points it at the same database."""

    def __init__(
        self,
        target: Settings | str,
        *,
        patient_hash_key: SecretStr | str | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        """``Store(settings)``, or ``Store(url, patient_hash_key=...)`` without Settings.

        With ``metrics``, every operation the database could not serve is counted there.
        """
        if isinstance(target, Settings):
            url, key = target.database_url, patient_hash_key or target.patient_hash_key
        elif patient_hash_key is None:
            raise TypeError("Store(url) needs patient_hash_key")
        else:
            url, key = target, patient_hash_key
        self.engine = create_engine(url)
        # PostgreSQL: the statements every call causes go on asyncpg connections of their own.
        self._driver = DriverPool(self.engine) if uses_driver_pool(self.engine) else None
        self._claims = claims_for(self.engine, self._driver)
        self._driver_audit = DriverAudit(self._driver) if self._driver is not None else None
        self._batch_engine = create_batch_engine(url)
        self._sqlite_audit = SqliteAudit(self._batch_engine) if self._batch_engine else None
        self._hash_key = key
        self._next_purge = 0.0
        self._since_checkpoint = 0
        self.outage = OutageWatch(metrics.store_unavailable if metrics is not None else None)
        # aiosqlite: a readiness query is never cancelled (see ping); the one in flight, if any.
        self._ping_aside = self.engine.dialect.driver == "aiosqlite"
        self._ping_task: asyncio.Task[None] | None = None

    @property
    def driver(self) -> DriverPool | None:
        """The asyncpg connections for the statements every call causes (PostgreSQL only)."""
        return self._driver

    @classmethod
    def from_settings(cls, settings: Settings, metrics: Metrics | None = None) -> Store:
        return cls(settings, metrics=metrics)

    @asynccontextmanager
    async def reaching(self, operation: Operation) -> AsyncIterator[None]:
        """Run database work; an unreachable database raises ``StoreUnavailable`` (503).

        Any other error (a bad row, a bug) goes through unchanged.
        """
        began = self.outage.began()
        try:
            yield
        except Exception as exc:
            cause = unreachable_cause(exc)
            if cause is None:
                raise
            self.outage.failed(operation, cause)
            raise StoreUnavailable from exc
        self.outage.reached(began)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        task = self._ping_task
        if task is not None and not task.done():
            # A readiness query still running on SQLite finishes before its pool goes away;
            # cancelled, it could leave the same never-ending close that ping() avoids.
            await asyncio.wait([task], timeout=PING_FINISH_SECONDS)
        if self._driver is not None:
            await self._driver.close()
        if self._batch_engine is not None:
            self._batch_engine.dispose()
        await self.engine.dispose()

    def patient_hash(self, patient_id: str) -> str:
        return patient_hash(self._hash_key, patient_id)

    async def ping(self, within_seconds: float = 2.0) -> bool:
        """Readiness: True when the database answers within ``within_seconds``.

        On SQLite the query is left to finish when the time is up, not cancelled: a cancelled
        aiosqlite query makes SQLAlchemy terminate its connection, and when that termination is
        itself interrupted aiosqlite stops the connection's thread twice, leaving a close that
        never ends (seen as a worker that never exits at shutdown, after a ping timed out on a
        loop busy for seconds). The next ping waits for the same query rather than adding one.
        """
        try:
            async with self.reaching(Operation.readiness), asyncio.timeout(within_seconds):
                if self._ping_aside:
                    await asyncio.shield(self._ping_in_flight())
                else:
                    await self._select_one()
        except (StoreUnavailable, SQLAlchemyError, OSError):
            return False
        return True

    def _ping_in_flight(self) -> asyncio.Task[None]:
        task = self._ping_task
        if task is None or task.done():
            task = asyncio.get_running_loop().create_task(self._select_one(), name="store-ping")
            task.add_done_callback(_outcome_seen)
            self._ping_task = task
        return task

    async def _select_one(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def record_invocation(self, audit: AuditRecord, issued: Sequence[IssuedCardLike]) -> None:
        """One audit row per hook call and one row per card returned."""
        await self.record_invocations([(audit, issued)])

    async def record_invocations(self, calls: Sequence[Invocation]) -> None:
        """Many hook calls' audit rows and issued cards, in one transaction.

        The audit writer's batches: two multi-row INSERTs instead of a transaction per call. On
        a SQLite file they run on the event loop's thread (see ``create_batch_engine``).
        """
        if not calls:
            return
        async with self.reaching(Operation.audit):
            await self._record_invocations(calls)

    async def _record_invocations(self, calls: Sequence[Invocation]) -> None:
        audits = [
            {
                "received_at": audit.received_at,
                "service_id": audit.service_id,
                "hook": audit.hook,
                "hook_instance": audit.hook_instance,
                "status_code": audit.status,
                "duration_ms": audit.duration_ms,
                "fhir_fetch_count": audit.fhir_fetch_count,
                "skipped_resource_count": audit.skipped_resource_count,
                "repaired_element_count": audit.repaired_element_count,
                "rule_ids": list(audit.rule_ids),
                "rule_versions": dict(audit.rule_versions),
                "would_fire": list(audit.would_fire),
                "snoozed": list(audit.snoozed),
                "card_uuids": list(audit.card_uuids),
                "patient_hash": audit.patient_hash,
                "site_digest": audit.site_digest,
            }
            for audit, _ in calls
        ]
        cards = [
            issued_card_row(card, audit.patient_hash) for audit, issued in calls for card in issued
        ]
        if self._driver_audit is not None:
            await self._driver_audit.write(audits, cards)
            return
        if self._sqlite_audit is not None:
            await self._write_on_loop(self._sqlite_audit, audits, cards)
            return
        async with self.engine.begin() as conn:
            await conn.execute(invocations.insert(), audits)
            if cards:
                await conn.execute(insert_cards(conn.dialect.name), cards)

    async def _write_on_loop(
        self, audit: SqliteAudit, audits: list[dict[str, Any]], cards: list[dict[str, Any]]
    ) -> None:
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            try:
                audit.write(audits, cards)
                break
            except OperationalError as exc:
                if not is_busy(exc) or time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(LOCK_RETRY_SECONDS)
        self._since_checkpoint += len(audits)
        if self._since_checkpoint >= CHECKPOINT_EVERY_CALLS:
            self._since_checkpoint = 0
            await self._checkpoint()

    async def _checkpoint(self) -> None:
        """Copy the WAL into the database file off the loop's thread (PASSIVE: never waits)."""
        try:
            async with self.engine.connect() as conn:
                await conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        except (SQLAlchemyError, OSError):
            # The rows are committed; a later checkpoint (or the next start) catches up.
            logger.warning("WAL checkpoint failed; the next one catches up")

    async def record_feedback(
        self, service_id: str, items: Sequence[FeedbackItem], received_at: datetime
    ) -> FeedbackOutcome:
        """Store each item once; unknown cards are kept with ``matched=False`` (F-04, F-07)."""
        stored = duplicates = unmatched = unknown_suggestions = 0
        async with self.reaching(Operation.feedback), self.engine.begin() as conn:
            cards = {item.card for item in items}
            known = {
                row.card_uuid: (row.rule_id, set(row.suggestion_uuids))
                for row in await conn.execute(
                    sa.select(
                        issued_cards.c.card_uuid,
                        issued_cards.c.rule_id,
                        issued_cards.c.suggestion_uuids,
                    ).where(
                        issued_cards.c.card_uuid.in_(cards),
                        issued_cards.c.service_id == service_id,
                    )
                )
            }
            for item in items:
                rule_id, offered = known.get(item.card, (None, set()))
                # F-08: kept as sent, but marked, so nobody reads a suggestion the card did not
                # offer as accepted advice.
                unknown = rule_id is not None and bool(set(item.accepted_suggestion_ids) - offered)
                stmt = (
                    insert(conn.dialect.name, feedback)
                    .values(
                        dedup_key=_feedback_key(service_id, item),
                        service_id=service_id,
                        card_uuid=item.card,
                        rule_id=rule_id,
                        matched=rule_id is not None,
                        unknown_suggestions=unknown,
                        outcome=item.outcome,
                        accepted_suggestion_ids=list(item.accepted_suggestion_ids),
                        override_code=item.override_code,
                        override_system=item.override_system,
                        override_display=item.override_display,
                        user_comment=item.user_comment,
                        outcome_timestamp=item.outcome_timestamp,
                        received_at=received_at,
                    )
                    .on_conflict_do_nothing(index_elements=["dedup_key"])
                    .returning(feedback.c.id)
                )
                if (await conn.execute(stmt)).first() is None:
                    duplicates += 1
                    continue
                stored += 1
                unmatched += rule_id is None
                unknown_suggestions += unknown
        return FeedbackOutcome(
            stored=stored,
            duplicates=duplicates,
            unmatched=unmatched,
            unknown_suggestions=unknown_suggestions,
        )

    async def first_use(self, iss: str, jti: str, expires_at: datetime) -> bool:
        """JWT replay cache shared by every worker: True the first time (iss, jti) is seen.

        Fails closed: with the database unreachable, ``StoreUnavailable`` (503), never True.
        """
        async with self.reaching(Operation.replay_cache):
            return await self._first_use(iss, jti, expires_at)

    async def _first_use(self, iss: str, jti: str, expires_at: datetime) -> bool:
        now = datetime.now(UTC)
        if time.monotonic() >= self._next_purge:
            self._next_purge = time.monotonic() + PURGE_INTERVAL_SECONDS
            await self.purge_expired(now)
        # One statement, one round trip, no transaction around it (cds/store/replay_claims.py).
        return await self._claims.claim(replay_key(iss, jti), expires_at, now)

    async def purge_expired(self, now: datetime | None = None) -> int:
        """Drop replay-cache rows whose token has expired; returns how many went."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                jwt_replay.delete().where(jwt_replay.c.expires_at <= (now or datetime.now(UTC)))
            )
        return result.rowcount

    async def rule_report(
        self, service_id: str | None, start: datetime, end: datetime
    ) -> RuleReport:
        """Per rule, for the calls received in [start, end): times shown, cards, feedback."""
        async with self.reaching(Operation.report):
            return await rule_report(self.engine, service_id, start, end)

    async def weekly_rule_report(
        self, service_id: str | None, start: datetime, end: datetime
    ) -> WeeklyReport:
        """The report for [start, end) and per ISO week of it; ``ValueError`` beyond
        ``rule_report.MAX_WEEKS`` weeks."""
        async with self.reaching(Operation.report):
            return await weekly_rule_report(self.engine, service_id, start, end)


def _outcome_seen(task: asyncio.Task[None]) -> None:
    """A readiness query that failed after its ping stopped waiting: the failure was already
    answered (False, counted by ``reaching``) or the next ping sees the database's state."""
    if not task.cancelled():
        task.exception()
