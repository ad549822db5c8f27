"""The Store: audit, issued cards, feedback and the JWT replay cache over one async engine."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import sqlite3
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import orjson
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from cds.settings import Settings
from cds.store.models import (
    AuditRecord,
    FeedbackItem,
    FeedbackOutcome,
    Invocation,
    IssuedCardLike,
    OverrideReasonCount,
    RuleReport,
    RuleStats,
    patient_hash,
)
from cds.store.schema import feedback, invocations, issued_cards, jwt_replay

logger = logging.getLogger(__name__)

# Expired jti rows are swept at most this often per process; the lookups never depend on it.
PURGE_INTERVAL_SECONDS = 60.0
TOP_REASONS = 5
# SQLite audit batches: how long one waits, in short async sleeps, for another connection's
# write transaction to end; and how many calls are written between two WAL checkpoints.
LOCK_WAIT_SECONDS = 5.0
LOCK_RETRY_SECONDS = 0.005
CHECKPOINT_EVERY_CALLS = 2_000


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
        engine = create_async_engine(url, json_serializer=_json_text, **pool)
        sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, json_serializer=_json_text, pool_pre_ping=True)


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
        url.set(drivername="sqlite"), json_serializer=_json_text, pool_size=1, max_overflow=0
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


def _busy(exc: OperationalError) -> bool:
    """Whether SQLite refused because another connection holds the write lock."""
    code = getattr(exc.orig, "sqlite_errorcode", None)
    return isinstance(code, int) and (code & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _json_text(value: Any) -> str:
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


def _insert(conn: AsyncConnection, table: sa.Table) -> Any:
    """The dialect's INSERT, which has ON CONFLICT DO NOTHING on both supported databases."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _insert_cards(dialect: str) -> Any:
    # A uuid seen twice (a retried write) must not lose the whole call's audit.
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(issued_cards).on_conflict_do_nothing(index_elements=["card_uuid"])


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


def _replay_key(iss: str, jti: str) -> str:
    return hashlib.sha256(json.dumps([iss, jti]).encode()).hexdigest()


class Store:
    """Persistence for one process; every replica points it at the same database."""

    def __init__(
        self, target: Settings | str, *, patient_hash_key: SecretStr | str | None = None
    ) -> None:
        """``Store(settings)``, or ``Store(url, patient_hash_key=...)`` without Settings."""
        if isinstance(target, Settings):
            url, key = target.database_url, patient_hash_key or target.patient_hash_key
        elif patient_hash_key is None:
            raise TypeError("Store(url) needs patient_hash_key")
        else:
            url, key = target, patient_hash_key
        self.engine = create_engine(url)
        self._batch_engine = create_batch_engine(url)
        self._hash_key = key
        self._next_purge = 0.0
        self._since_checkpoint = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        return cls(settings)

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
        if self._batch_engine is not None:
            self._batch_engine.dispose()
        await self.engine.dispose()

    def patient_hash(self, patient_id: str) -> str:
        return patient_hash(self._hash_key, patient_id)

    async def ping(self, within_seconds: float = 2.0) -> bool:
        """Readiness: True when the database answers within ``within_seconds``."""
        try:
            async with asyncio.timeout(within_seconds), self.engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
        except (SQLAlchemyError, OSError, TimeoutError):
            return False
        return True

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
                "rule_ids": list(audit.rule_ids),
                "card_uuids": list(audit.card_uuids),
                "patient_hash": audit.patient_hash,
            }
            for audit, _ in calls
        ]
        cards = [
            {
                "card_uuid": card.card_uuid,
                "service_id": card.service_id,
                "rule_id": card.rule_id,
                "hook_instance": card.hook_instance,
                "suggestion_uuids": list(card.suggestion_uuids),
                "issued_at": card.issued_at,
            }
            for _, issued in calls
            for card in issued
        ]
        if self._batch_engine is not None:
            await self._write_on_loop(self._batch_engine, audits, cards)
            return
        async with self.engine.begin() as conn:
            await conn.execute(invocations.insert(), audits)
            if cards:
                await conn.execute(_insert_cards(conn.dialect.name), cards)

    async def _write_on_loop(
        self, engine: sa.Engine, audits: list[dict[str, Any]], cards: list[dict[str, Any]]
    ) -> None:
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            try:
                with engine.begin() as conn:
                    conn.execute(invocations.insert(), audits)
                    if cards:
                        conn.execute(_insert_cards("sqlite"), cards)
                break
            except OperationalError as exc:
                if not _busy(exc) or time.monotonic() >= deadline:
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
        stored = duplicates = unmatched = 0
        async with self.engine.begin() as conn:
            cards = {item.card for item in items}
            known = {
                row.card_uuid: row.rule_id
                for row in await conn.execute(
                    sa.select(issued_cards.c.card_uuid, issued_cards.c.rule_id).where(
                        issued_cards.c.card_uuid.in_(cards),
                        issued_cards.c.service_id == service_id,
                    )
                )
            }
            for item in items:
                rule_id = known.get(item.card)
                stmt = (
                    _insert(conn, feedback)
                    .values(
                        dedup_key=_feedback_key(service_id, item),
                        service_id=service_id,
                        card_uuid=item.card,
                        rule_id=rule_id,
                        matched=rule_id is not None,
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
        return FeedbackOutcome(stored=stored, duplicates=duplicates, unmatched=unmatched)

    async def first_use(self, iss: str, jti: str, expires_at: datetime) -> bool:
        """JWT replay cache shared by every worker: True the first time (iss, jti) is seen."""
        now = datetime.now(UTC)
        key = _replay_key(iss, jti)
        if time.monotonic() >= self._next_purge:
            self._next_purge = time.monotonic() + PURGE_INTERVAL_SECONDS
            await self.purge_expired(now)
        async with self.engine.begin() as conn:
            insert = (
                _insert(conn, jwt_replay)
                .values(key=key, expires_at=expires_at)
                .on_conflict_do_nothing(index_elements=["key"])
                .returning(jwt_replay.c.key)
            )
            # The primary key decides, so two workers racing on one jti cannot both win.
            if (await conn.execute(insert)).first() is not None:
                return True
            stale = await conn.execute(
                jwt_replay.delete().where(jwt_replay.c.key == key, jwt_replay.c.expires_at <= now)
            )
            if stale.rowcount != 1:
                return False
            return (await conn.execute(insert)).first() is not None

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
        """Per rule, for cards issued in [start, end): shown, patients, accepted, overridden."""
        ic, fb, inv = issued_cards, feedback, invocations
        in_range = [ic.c.issued_at >= start, ic.c.issued_at < end]
        if service_id is not None:
            in_range.append(ic.c.service_id == service_id)
        group = (ic.c.service_id, ic.c.rule_id)
        # Feedback joins issued cards at report time, so feedback that arrived before its card
        # row was written (another replica, a slow audit) still counts for the right rule.
        on_card = sa.and_(fb.c.card_uuid == ic.c.card_uuid, fb.c.service_id == ic.c.service_id)
        async with self.engine.connect() as conn:
            shown = await conn.execute(
                sa.select(*group, sa.func.count()).where(*in_range).group_by(*group)
            )
            patients = await conn.execute(
                sa.select(*group, sa.func.count(sa.distinct(inv.c.patient_hash)))
                .select_from(ic)
                .join(
                    inv,
                    sa.and_(
                        inv.c.hook_instance == ic.c.hook_instance,
                        inv.c.service_id == ic.c.service_id,
                    ),
                )
                .where(*in_range)
                .group_by(*group)
            )
            outcomes = await conn.execute(
                sa.select(*group, fb.c.outcome, sa.func.count(sa.distinct(fb.c.card_uuid)))
                .select_from(ic)
                .join(fb, on_card)
                .where(*in_range)
                .group_by(*group, fb.c.outcome)
            )
            reasons = await conn.execute(
                sa.select(
                    *group,
                    fb.c.override_system,
                    fb.c.override_code,
                    sa.func.max(fb.c.override_display),
                    sa.func.count(),
                )
                .select_from(ic)
                .join(fb, on_card)
                .where(*in_range, fb.c.outcome == "overridden", fb.c.override_code.is_not(None))
                .group_by(*group, fb.c.override_system, fb.c.override_code)
            )
            orphan_filter = [
                fb.c.received_at >= start,
                fb.c.received_at < end,
                ~sa.exists().where(fb.c.card_uuid == ic.c.card_uuid),
            ]
            if service_id is not None:
                orphan_filter.append(fb.c.service_id == service_id)
            orphans = await conn.scalar(
                sa.select(sa.func.count()).select_from(fb).where(*orphan_filter)
            )
        return _assemble(
            service_id,
            start,
            end,
            shown=[tuple(row) for row in shown],
            patients=[tuple(row) for row in patients],
            outcomes=[tuple(row) for row in outcomes],
            reasons=[tuple(row) for row in reasons],
        ).model_copy(update={"unmatched_feedback": int(orphans or 0)})


def _assemble(
    service_id: str | None,
    start: datetime,
    end: datetime,
    *,
    shown: list[tuple[Any, ...]],
    patients: list[tuple[Any, ...]],
    outcomes: list[tuple[Any, ...]],
    reasons: list[tuple[Any, ...]],
) -> RuleReport:
    counts: dict[tuple[str, str], dict[str, int]] = {
        (svc, rule): {"shown": n, "patients": 0, "accepted": 0, "overridden": 0}
        for svc, rule, n in shown
    }
    for svc, rule, n in patients:
        counts[svc, rule]["patients"] = n
    for svc, rule, outcome, n in outcomes:
        counts[svc, rule][outcome] = n
    top: dict[tuple[str, str], list[OverrideReasonCount]] = {}
    for svc, rule, system, code, display, n in reasons:
        top.setdefault((svc, rule), []).append(
            OverrideReasonCount(system=system, code=code, display=display, count=n)
        )
    rules = [
        RuleStats(
            service_id=svc,
            rule_id=rule,
            top_override_reasons=sorted(
                top.get((svc, rule), []), key=lambda r: (-r.count, r.system or "", r.code)
            )[:TOP_REASONS],
            **numbers,
        )
        for (svc, rule), numbers in sorted(counts.items())
    ]
    return RuleReport(service_id=service_id, start=start, end=end, rules=rules)
