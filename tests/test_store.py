"""The store behaves the same on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import anyio
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from pydantic import SecretStr, ValidationError
from sqlalchemy.engine import Connection

from cds.migrations import HEAD, alembic_config, current_revision, upgrade
from cds.settings import Settings, load_settings
from cds.store import (
    AuditRecord,
    FeedbackItem,
    Invocation,
    IssuedCard,
    Store,
    database,
    patient_hash,
)
from cds.store.database import issued_card_row
from cds.store.engines import create_engine
from cds.store.replay_claims import DriverClaims
from cds.store.schema import feedback, invocations, issued_cards, jwt_replay, metadata
from tests.pgserver import PgServer

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def issued(
    card: str,
    rule: str = "RF-01",
    *,
    service: str = "back-to-foot",
    hook: str = "h-1",
    at: datetime = T0,
    suggestions: tuple[str, ...] = ("s-1",),
) -> IssuedCard:
    return IssuedCard(
        card_uuid=card,
        rule_id=rule,
        service_id=service,
        hook_instance=hook,
        suggestion_uuids=list(suggestions),
        issued_at=at,
    )


def audit(
    cards: list[IssuedCard], *, hook: str = "h-1", patient: str | None = "hash-a"
) -> AuditRecord:
    # The call that issued the cards: same service, received when they were issued.
    return AuditRecord(
        hook_instance=hook,
        service_id=cards[0].service_id if cards else "back-to-foot",
        hook="patient-view",
        rule_ids=sorted({c.rule_id for c in cards}),
        card_uuids=[c.card_uuid for c in cards],
        duration_ms=12.5,
        status=200,
        fhir_fetch_count=2,
        skipped_resource_count=1,
        received_at=cards[0].issued_at if cards else T0,
        patient_hash=patient,
    )


def accepted(card: str, *, at: datetime = T0 + timedelta(minutes=1)) -> FeedbackItem:
    return FeedbackItem(
        card=card, outcome="accepted", accepted_suggestion_ids=["s-1"], outcome_timestamp=at
    )


def overridden(
    card: str,
    code: str | None = "not-relevant",
    display: str | None = None,
    *,
    at: datetime = T0 + timedelta(minutes=2),
) -> FeedbackItem:
    return FeedbackItem(
        card=card,
        outcome="overridden",
        override_code=code,
        override_system="https://footpath-cds.example.org/CodeSystem/override" if code else None,
        override_display=display,
        user_comment="seen by physio already",
        outcome_timestamp=at,
    )


async def rows(store: Store, table: sa.Table) -> list[sa.Row[Any]]:
    async with store.engine.connect() as conn:
        return list(await conn.execute(sa.select(table)))


@pytest.mark.anyio
async def test_migrations_bring_a_new_database_to_head_and_can_run_again(
    store_settings: Settings,
) -> None:
    assert await current_revision(store_settings) is None
    await upgrade(store_settings)
    await upgrade(store_settings)
    assert await current_revision(store_settings) == HEAD


def _schema_differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


@pytest.mark.anyio
async def test_the_hand_written_migration_creates_exactly_the_declared_tables(
    store: Store,
) -> None:
    async with store.engine.connect() as conn:
        differences = await conn.run_sync(_schema_differences)
    assert differences == []


def _issued_cards_key(connection: Connection) -> list[str]:
    columns: list[str] = sa.inspect(connection).get_pk_constraint("issued_cards")[
        "constrained_columns"
    ]
    return columns


@pytest.mark.anyio
async def test_issued_cards_are_keyed_by_service_and_uuid(store: Store) -> None:
    """Autogenerate comparison ignores primary keys, so the key migration 0002 sets is read back."""
    async with store.engine.connect() as conn:
        key = await conn.run_sync(_issued_cards_key)
    assert sorted(key) == ["card_uuid", "service_id"]


@pytest.mark.anyio
async def test_migration_0002_keeps_the_cards_issued_before_it(store_settings: Settings) -> None:
    await upgrade(store_settings, "0001")
    async with Store.from_settings(store_settings) as early, early.engine.begin() as conn:
        # Today's writer names the new key in ON CONFLICT, so 0001's rows go in plainly,
        # without the patient hash 0007 adds.
        await conn.execute(
            issued_cards.insert(),
            [
                {k: v for k, v in issued_card_row(card).items() if k != "patient_hash"}
                for card in (issued("c-1"), issued("c-2", "RF-02"))
            ],
        )
    await upgrade(store_settings)
    async with Store.from_settings(store_settings) as later:
        kept = {(r.service_id, r.card_uuid) for r in await rows(later, issued_cards)}
        assert kept == {("back-to-foot", "c-1"), ("back-to-foot", "c-2")}
        outcome = await later.record_feedback("back-to-foot", [accepted("c-1")], T0)
    assert outcome.unmatched == 0


@pytest.mark.anyio
async def test_one_uuid_issued_by_two_services_is_two_cards_each_matched(store: Store) -> None:
    here, there = issued("c-1"), issued("c-1", "RF-02", service="back-to-foot-order-sign")
    await store.record_invocations([(audit([here]), [here]), (audit([there], hook="h-2"), [there])])
    assert len(await rows(store, issued_cards)) == 2
    first = await store.record_feedback("back-to-foot", [accepted("c-1")], T0)
    second = await store.record_feedback("back-to-foot-order-sign", [accepted("c-1")], T0)
    assert (first.unmatched, second.unmatched) == (0, 0)
    rules = {(r.service_id, r.rule_id) for r in await rows(store, feedback)}
    assert rules == {("back-to-foot", "RF-01"), ("back-to-foot-order-sign", "RF-02")}


async def downgrade(settings: Settings, revision: str) -> None:
    """Alembic's downgrade, which the service itself never runs."""

    def run(connection: Connection) -> None:
        config = alembic_config(settings.database_url)
        config.attributes["connection"] = connection
        command.downgrade(config, revision)

    engine = create_engine(settings.database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(run)
    finally:
        await engine.dispose()


@pytest.mark.anyio
async def test_migration_0002_can_be_undone_keeping_one_card_per_uuid(
    store_settings: Settings,
) -> None:
    await upgrade(store_settings)
    async with Store.from_settings(store_settings) as later:
        here, there = issued("c-1"), issued("c-1", "RF-02", service="back-to-foot-order-sign")
        await later.record_invocations(
            [(audit([here]), [here]), (audit([there], hook="h-2"), [there])]
        )
    await downgrade(store_settings, "0001")
    assert await current_revision(store_settings) == "0001"
    async with Store.from_settings(store_settings) as early, early.engine.connect() as conn:
        key = await conn.run_sync(_issued_cards_key)
        # The columns 0001 had: later ones (0007's patient hash) are gone.
        ic = issued_cards.c
        kept = [tuple(r) for r in await conn.execute(sa.select(ic.service_id, ic.card_uuid))]
    assert key == ["card_uuid"]
    assert kept == [("back-to-foot", "c-1")]


@pytest.mark.anyio
async def test_ping_is_true_for_a_reachable_database(store: Store) -> None:
    assert await store.ping() is True


@pytest.mark.anyio
async def test_ping_is_false_when_nothing_listens_on_the_database_port() -> None:
    async with Store(
        "postgresql+asyncpg://cds@127.0.0.1:1/cds", patient_hash_key="k"
    ) as unreachable:
        assert await unreachable.ping(within_seconds=5) is False


@pytest.mark.anyio
async def test_a_store_opened_from_settings_hashes_with_the_configured_key(
    store_settings: Settings,
) -> None:
    async with Store(store_settings) as opened:
        assert opened.patient_hash("p-1") == patient_hash("test-key", "p-1")
    with pytest.raises(TypeError):
        Store(store_settings.database_url)


def test_the_patient_hash_is_an_hmac_of_the_id_under_the_configured_key() -> None:
    settings = load_settings(patient_hash_key=SecretStr("k1"))
    expected = hmac.new(b"k1", b"patient-123", hashlib.sha256).hexdigest()
    assert patient_hash(settings, "patient-123") == expected
    assert patient_hash(SecretStr("k1"), "patient-123") == expected
    assert patient_hash("k2", "patient-123") != expected
    assert patient_hash("k1", None) is None


@pytest.mark.anyio
async def test_an_invocation_is_audited_with_a_patient_hash_and_never_the_patient_id(
    store: Store,
) -> None:
    cards = [issued("c-1"), issued("c-2", "RF-02")]
    await store.record_invocation(audit(cards, patient=store.patient_hash("patient-123")), cards)
    (row,) = await rows(store, invocations)
    assert row.hook_instance == "h-1"
    assert row.service_id == "back-to-foot"
    assert row.hook == "patient-view"
    assert row.rule_ids == ["RF-01", "RF-02"]
    assert row.card_uuids == ["c-1", "c-2"]
    assert (row.status_code, row.duration_ms) == (200, 12.5)
    assert (row.fhir_fetch_count, row.skipped_resource_count) == (2, 1)
    assert row.received_at == T0
    assert row.patient_hash == patient_hash("test-key", "patient-123")
    assert "patient-123" not in repr(tuple(row))


@pytest.mark.anyio
async def test_a_card_recorded_twice_does_not_lose_the_second_audit_row(store: Store) -> None:
    cards = [issued("c-1")]
    await store.record_invocation(audit(cards), cards)
    await store.record_invocation(audit(cards, hook="h-2"), cards)
    assert len(await rows(store, invocations)) == 2


@pytest.mark.anyio
async def test_a_batch_of_calls_is_written_with_every_audit_row_and_card(store: Store) -> None:
    first, second = [issued("c-1"), issued("c-2", "RF-02")], [issued("c-3", hook="h-2")]
    await store.record_invocations(
        [
            (audit(first), first),
            (audit([], hook="h-empty"), []),
            (audit(second, hook="h-2"), second),
        ]
    )
    written = await rows(store, invocations)
    assert [(r.hook_instance, r.card_uuids) for r in written] == [
        ("h-1", ["c-1", "c-2"]),
        ("h-empty", []),
        ("h-2", ["c-3"]),
    ]
    cards = {(r.card_uuid, r.rule_id, r.hook_instance) for r in await rows(store, issued_cards)}
    assert cards == {("c-1", "RF-01", "h-1"), ("c-2", "RF-02", "h-1"), ("c-3", "RF-01", "h-2")}


@pytest.mark.anyio
async def test_a_card_repeated_within_one_batch_keeps_every_audit_row(store: Store) -> None:
    cards = [issued("c-1")]
    await store.record_invocations([(audit(cards), cards), (audit(cards, hook="h-2"), cards)])
    assert len(await rows(store, invocations)) == 2
    assert len(await rows(store, issued_cards)) == 1


# The conftest store, on its SQLite file only: these tests are about SQLite's own write path.
sqlite_only = pytest.mark.parametrize("store_settings", ["sqlite"], indirect=True)


def rows_in_the_database_file(store: Store) -> int:
    """Rows SQLite has copied from its write-ahead log into the file itself (a checkpoint)."""
    path = store.engine.url.database
    with closing(sqlite3.connect(f"file:{path}?immutable=1", uri=True)) as direct:
        count: int = direct.execute("SELECT count(*) FROM invocations").fetchone()[0]
    return count


@pytest.mark.anyio
@sqlite_only
async def test_a_sqlite_batch_waits_for_another_writer_instead_of_failing(
    store: Store,
) -> None:
    """Batches never sleep in SQLite's busy handler (it would stall the event loop)."""
    first, second = [issued("c-1")], [issued("c-2", hook="h-2")]
    async with store.engine.begin() as conn:
        await conn.execute(jwt_replay.insert().values(key="k", expires_at=T0))
        writing = asyncio.create_task(store.record_invocations([(audit(first), first)]))
        await asyncio.sleep(0.05)
        assert not writing.done()  # the other transaction holds the write lock
    await writing
    await store.record_invocations([(audit(second, hook="h-2"), second)])
    assert len(await rows(store, invocations)) == 2


@pytest.mark.anyio
@sqlite_only
async def test_sqlite_batches_reach_the_database_file_at_each_checkpoint(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database, "CHECKPOINT_EVERY_CALLS", 3)
    calls: list[Invocation] = [(audit([], hook=f"h-{n}"), []) for n in range(3)]
    await store.record_invocations(calls[:2])
    assert rows_in_the_database_file(store) == 0  # still in the write-ahead log only
    await store.record_invocations(calls[2:])
    assert rows_in_the_database_file(store) == 3


@pytest.mark.anyio
async def test_an_empty_batch_writes_nothing(store: Store) -> None:
    await store.record_invocations([])
    assert await rows(store, invocations) == []


@pytest.mark.anyio
async def test_feedback_on_an_issued_card_is_stored_against_its_rule(store: Store) -> None:
    cards = [issued("c-1", "RF-03")]
    await store.record_invocation(audit(cards), cards)
    outcome = await store.record_feedback(
        "back-to-foot", [accepted("c-1"), overridden("c-1", "dup", "Duplicate")], T0 + DAY
    )
    assert (outcome.stored, outcome.duplicates, outcome.unmatched) == (2, 0, 0)
    first, second = sorted(await rows(store, feedback), key=lambda r: r.outcome)
    assert (first.card_uuid, first.rule_id, first.matched, first.outcome) == (
        "c-1",
        "RF-03",
        True,
        "accepted",
    )
    assert first.accepted_suggestion_ids == ["s-1"]
    assert (second.override_code, second.override_display) == ("dup", "Duplicate")
    assert second.override_system == "https://footpath-cds.example.org/CodeSystem/override"
    assert second.user_comment == "seen by physio already"
    assert second.received_at == T0 + DAY


@pytest.mark.anyio
async def test_the_same_feedback_posted_twice_is_stored_once(store: Store) -> None:
    cards = [issued("c-1")]
    await store.record_invocation(audit(cards), cards)
    first = await store.record_feedback("back-to-foot", [accepted("c-1")], T0)
    again = await store.record_feedback("back-to-foot", [accepted("c-1"), accepted("c-1")], T0)
    assert (first.stored, first.duplicates) == (1, 0)
    assert (again.stored, again.duplicates) == (0, 2)
    assert len(await rows(store, feedback)) == 1


@pytest.mark.anyio
async def test_feedback_on_an_unknown_card_is_kept_and_flagged_unmatched(store: Store) -> None:
    outcome = await store.record_feedback("back-to-foot", [overridden("from-a-restart")], T0)
    assert (outcome.stored, outcome.duplicates, outcome.unmatched) == (1, 0, 1)
    (row,) = await rows(store, feedback)
    assert (row.matched, row.rule_id) == (False, None)


@pytest.mark.anyio
async def test_feedback_sent_to_another_service_does_not_match_its_card(store: Store) -> None:
    cards = [issued("c-1")]
    await store.record_invocation(audit(cards), cards)
    outcome = await store.record_feedback("other-service", [accepted("c-1")], T0)
    assert outcome.unmatched == 1


@pytest.mark.anyio
async def test_an_outcome_timestamp_with_an_offset_is_stored_as_utc(store: Store) -> None:
    local = datetime(2025, 3, 1, 11, 30, tzinfo=timezone(timedelta(hours=2)))
    await store.record_feedback("back-to-foot", [accepted("c-9", at=local)], T0)
    (row,) = await rows(store, feedback)
    assert row.outcome_timestamp == datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
    assert row.outcome_timestamp.utcoffset() == timedelta(0)


def test_feedback_items_refuse_naive_timestamps_and_unknown_outcomes() -> None:
    with pytest.raises(ValidationError):
        FeedbackItem(card="c", outcome="accepted", outcome_timestamp=datetime(2025, 3, 1))
    with pytest.raises(ValidationError):
        FeedbackItem(card="c", outcome="ignored", outcome_timestamp=T0)


@pytest.mark.anyio
async def test_a_jwt_id_is_fresh_once_and_a_replay_before_expiry_is_refused(
    store: Store,
) -> None:
    expires = datetime.now(UTC) + timedelta(minutes=5)
    assert await store.first_use("https://ehr.example", "jti-1", expires) is True
    assert await store.first_use("https://ehr.example", "jti-1", expires) is False
    assert await store.first_use("https://other-ehr.example", "jti-1", expires) is True


@pytest.mark.anyio
async def test_a_jwt_id_whose_earlier_token_expired_may_be_used_again(store: Store) -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)
    assert await store.first_use("https://ehr.example", "jti-2", past) is True
    future = datetime.now(UTC) + timedelta(minutes=5)
    assert await store.first_use("https://ehr.example", "jti-2", future) is True
    assert await store.first_use("https://ehr.example", "jti-2", future) is False


@pytest.mark.anyio
async def test_expired_replay_entries_are_purged(store: Store) -> None:
    now = datetime.now(UTC)
    await store.first_use("i", "old", now - timedelta(minutes=1))
    await store.first_use("i", "new", now + timedelta(minutes=1))
    assert await store.purge_expired(now) == 1


@pytest.mark.anyio
async def test_only_one_of_many_concurrent_uses_of_a_jwt_id_wins(store: Store) -> None:
    expires = datetime.now(UTC) + timedelta(minutes=5)
    results: list[bool] = []

    async def use() -> None:
        results.append(await store.first_use("https://ehr.example", "raced", expires))

    async with anyio.create_task_group() as group:
        for _ in range(8):
            group.start_soon(use)
    assert sorted(results) == [False] * 7 + [True]


@pytest.mark.anyio
async def test_a_jwt_id_used_through_one_worker_is_refused_through_another(
    store: Store, store_settings: Settings
) -> None:
    """Each worker has its own Store (and, on PostgreSQL, its own claim connections)."""
    expires = datetime.now(UTC) + timedelta(minutes=5)
    async with Store.from_settings(store_settings) as other_worker:
        assert await store.first_use("https://ehr.example", "jti-w", expires) is True
        assert await other_worker.first_use("https://ehr.example", "jti-w", expires) is False
        assert await other_worker.first_use("https://ehr.example", "jti-x", expires) is True
        assert await store.first_use("https://ehr.example", "jti-x", expires) is False


@pytest.mark.anyio
async def test_only_one_of_two_workers_racing_on_a_jwt_id_wins(
    store: Store, store_settings: Settings
) -> None:
    expires = datetime.now(UTC) + timedelta(minutes=5)
    results: list[bool] = []
    async with Store.from_settings(store_settings) as other_worker:

        async def use(worker: Store) -> None:
            results.append(await worker.first_use("https://ehr.example", "raced", expires))

        async with anyio.create_task_group() as group:
            for index in range(8):
                group.start_soon(use, store if index % 2 else other_worker)
    assert sorted(results) == [False] * 7 + [True]


@pytest.mark.postgres
@pytest.mark.anyio
async def test_connections_the_database_closed_are_replaced_before_use(
    postgres_server: PgServer,
) -> None:
    """What a database restart leaves in the pools: closed connections, never handed to a call."""
    settings = load_settings(
        database_url=postgres_server.create_database(), patient_hash_key=SecretStr("test-key")
    )
    await upgrade(settings)
    async with Store.from_settings(settings) as store:
        await _closed_by_the_server_and_used_again(store, settings.database_url)


async def _closed_by_the_server_and_used_again(store: Store, database_url: str) -> None:
    expires = datetime.now(UTC) + timedelta(minutes=5)
    assert await store.first_use("https://ehr.example", "before", expires) is True
    await store.record_invocation(audit([issued("r-1")]), [issued("r-1")])
    killer = create_engine(database_url)
    try:
        async with killer.connect() as conn:
            terminated = await conn.execute(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
            assert terminated.scalar_one() >= 2  # the claims' connection and the engine's
    finally:
        await killer.dispose()
    await asyncio.sleep(0.5)  # the closed sockets reach the event loop
    assert await store.first_use("https://ehr.example", "after", expires) is True
    await store.record_invocation(audit([issued("r-2")], hook="h-2"), [issued("r-2")])
    assert len(await rows(store, issued_cards)) == 2


@pytest.mark.anyio
async def test_a_replay_check_sends_one_statement(store: Store, store_settings: Settings) -> None:
    """The claim is all a replay check sends (the purge aside, once a minute): on PostgreSQL
    no BEGIN or COMMIT around it and no ping before it."""
    sent: list[str] = []
    expires = datetime.now(UTC) + timedelta(minutes=5)
    await store.first_use("https://ehr.example", "warm-up", expires)  # the first purge
    if store_settings.database_is_sqlite:
        sync_engine = store.engine.sync_engine
        sa.event.listen(sync_engine, "before_cursor_execute", lambda *a: sent.append(a[2]))
    else:
        claims = store._claims  # the asyncpg connections are the claims' own
        assert isinstance(claims, DriverClaims)
        async with claims.pool.connection() as conn:
            conn.add_query_logger(lambda record: sent.append(record.query))
        # A pool of one connection hands the logged one back; it opens more only when needed.
        assert claims.pool.size() == 1
    assert await store.first_use("https://ehr.example", "one-statement", expires) is True
    assert len(sent) == 1
    assert sent[0].startswith("INSERT INTO jwt_replay")


async def _seed_report(store: Store) -> None:
    day_one = [issued("a-1", "RF-01"), issued("a-2", "RF-01"), issued("b-1", "RF-02")]
    await store.record_invocation(audit(day_one, patient="hash-a"), day_one)
    again = [issued("a-3", "RF-01", hook="h-2", at=T0 + timedelta(hours=1))]
    await store.record_invocation(audit(again, hook="h-2", patient="hash-a"), again)
    elsewhere = [issued("x-1", "RF-01", service="other", at=T0)]
    await store.record_invocation(audit(elsewhere, hook="h-3"), elsewhere)
    late = [issued("z-1", "RF-01", hook="h-4", at=T0 + 3 * DAY)]
    await store.record_invocation(audit(late, hook="h-4"), late)
    await store.record_feedback(
        "back-to-foot",
        [
            accepted("a-1"),
            overridden("a-2", "not-relevant", "Not relevant"),
            overridden("a-3", "not-relevant", at=T0 + timedelta(hours=2)),
            overridden("b-1", "already-done", "Already done"),
            overridden("b-1", None, at=T0 + timedelta(hours=3)),
            accepted("unknown-card"),
        ],
        T0 + timedelta(hours=4),
    )


@pytest.mark.anyio
async def test_the_rule_report_counts_cards_shown_accepted_and_overridden_per_rule(
    store: Store,
) -> None:
    await _seed_report(store)
    report = await store.rule_report("back-to-foot", T0 - DAY, T0 + DAY)
    by_rule = {stats.rule_id: stats for stats in report.rules}
    assert set(by_rule) == {"RF-01", "RF-02"}
    rf01 = by_rule["RF-01"]
    assert (rf01.times_shown, rf01.patients, rf01.accepted, rf01.overridden) == (3, 1, 1, 2)
    assert rf01.acceptance_rate == pytest.approx(1 / 3)
    (reason,) = rf01.top_override_reasons
    assert (reason.code, reason.display, reason.count) == ("not-relevant", "Not relevant", 2)
    rf02 = by_rule["RF-02"]
    # Two overrides of one card are two answers: the rate is over answers, 0 of 2 accepted.
    assert (rf02.times_shown, rf02.accepted, rf02.overridden, rf02.acceptance_rate) == (
        1,
        0,
        2,
        0.0,
    )
    assert [r.code for r in rf02.top_override_reasons] == ["already-done"]
    assert report.unmatched_feedback == 1


@pytest.mark.anyio
async def test_the_rule_report_covers_only_its_date_range_and_service(store: Store) -> None:
    await _seed_report(store)
    later = await store.rule_report("back-to-foot", T0 + DAY, T0 + 5 * DAY)
    assert [(s.rule_id, s.times_shown, s.accepted) for s in later.rules] == [("RF-01", 1, 0)]
    everywhere = await store.rule_report(None, T0 - DAY, T0 + DAY)
    assert {(s.service_id, s.rule_id) for s in everywhere.rules} == {
        ("back-to-foot", "RF-01"),
        ("back-to-foot", "RF-02"),
        ("other", "RF-01"),
    }
    empty = await store.rule_report("back-to-foot", T0 - 5 * DAY, T0 - DAY)
    assert (empty.rules, empty.unmatched_feedback) == ([], 0)


@pytest.mark.anyio
async def test_feedback_that_arrived_before_its_card_was_recorded_still_counts(
    store: Store,
) -> None:
    outcome = await store.record_feedback("back-to-foot", [accepted("early")], T0)
    assert outcome.unmatched == 1
    cards = [issued("early", "RF-04")]
    await store.record_invocation(audit(cards), cards)
    report = await store.rule_report("back-to-foot", T0 - DAY, T0 + DAY)
    assert [(s.rule_id, s.accepted) for s in report.rules] == [("RF-04", 1)]
    assert report.unmatched_feedback == 0


@pytest.mark.anyio
async def test_the_store_refuses_naive_datetimes(store: Store) -> None:
    with pytest.raises(sa.exc.StatementError, match="timezone-aware"):
        await store.rule_report(None, datetime(2025, 1, 1), T0)


@pytest.mark.anyio
async def test_migration_0003_keeps_earlier_audit_rows_with_no_repaired_elements(
    store_settings: Settings,
) -> None:
    await upgrade(store_settings, "0001")
    async with Store.from_settings(store_settings) as opened:
        async with opened.engine.begin() as conn:
            await conn.execute(
                sa.text(
                    "INSERT INTO invocations (received_at, service_id, hook, hook_instance,"
                    " status_code, duration_ms, fhir_fetch_count, skipped_resource_count,"
                    " rule_ids, card_uuids) VALUES (:at, 'back-to-foot', 'patient-view', 'h-0',"
                    " 200, 1.0, 0, 0, '[]', '[]')"
                ),
                {"at": T0.replace(tzinfo=None)},
            )
        await upgrade(store_settings)
        assert await current_revision(store_settings) == HEAD
        (row,) = await rows(opened, invocations)
        assert (row.hook_instance, row.repaired_element_count) == ("h-0", 0)
        cards = [issued("c-9")]
        repaired = audit(cards).model_copy(update={"repaired_element_count": 3})
        await opened.record_invocation(repaired, cards)
        counts = [r.repaired_element_count for r in await rows(opened, invocations)]
        assert counts == [0, 3]


@pytest.mark.anyio
async def test_the_rule_report_counts_each_showing_of_a_card_whose_uuid_repeats(
    store: Store,
) -> None:
    # One patient's chart opened five times: RB-01's card keeps its uuid on every call.
    for n in range(5):
        cards = [issued("rb-card", "RB-01", hook=f"view-{n}", at=T0 + n * timedelta(hours=1))]
        await store.record_invocation(audit(cards, hook=f"view-{n}", patient="hash-a"), cards)
    other = [issued("rb-other", "RB-01", hook="view-b", at=T0)]
    await store.record_invocation(audit(other, hook="view-b", patient="hash-b"), other)
    quiet = [issued("dm-card", "DM-01", hook="view-c", at=T0)]
    await store.record_invocation(audit(quiet, hook="view-c", patient="hash-c"), quiet)
    await store.record_feedback(
        "back-to-foot", [accepted("rb-card"), overridden("rb-card")], T0 + timedelta(hours=6)
    )
    report = await store.rule_report("back-to-foot", T0 - DAY, T0 + DAY)
    rb01, dm01 = (next(s for s in report.rules if s.rule_id == r) for r in ("RB-01", "DM-01"))
    assert (rb01.times_shown, rb01.cards, rb01.patients) == (6, 2, 2)
    # One accept and one override: half of two answers each, never "100 % accepted".
    assert (rb01.accepted, rb01.overridden, rb01.feedback) == (1, 1, 2)
    assert (rb01.acceptance_rate, rb01.override_rate) == (0.5, 0.5)
    assert rb01.no_response == 1
    assert (dm01.times_shown, dm01.cards, dm01.feedback, dm01.no_response) == (1, 1, 0, 1)
    assert (dm01.acceptance_rate, dm01.override_rate) == (None, None)


@pytest.mark.anyio
async def test_the_rule_report_counts_the_showings_inside_its_window_only(store: Store) -> None:
    for n, at in enumerate([T0, T0 + DAY, T0 + 2 * DAY]):
        cards = [issued("rb-card", "RB-01", hook=f"view-{n}", at=at)]
        await store.record_invocation(audit(cards, hook=f"view-{n}"), cards)
    report = await store.rule_report("back-to-foot", T0 + DAY, T0 + 3 * DAY)
    assert [(s.rule_id, s.times_shown, s.cards) for s in report.rules] == [("RB-01", 2, 1)]
