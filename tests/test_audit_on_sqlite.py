"""Audit batches on a SQLite file go through sqlite3's executemany, and store exactly the rows
SQLAlchemy's own INSERTs stored, in one transaction, failing as SQLAlchemy failed."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, StatementError

from cds.migrations import upgrade
from cds.settings import load_settings
from cds.store.audit_on_sqlite import SqliteAudit, insert_cards
from cds.store.engines import create_batch_engine, is_busy
from cds.store.schema import invocations

T0 = datetime(2026, 12, 7, 5, 30, 12, 345678, tzinfo=UTC)


def _audit(hook_instance: str, **changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "received_at": T0,
        "service_id": "back-to-foot",
        "hook": "patient-view",
        "hook_instance": hook_instance,
        "status_code": 200,
        "duration_ms": 2.808,
        "fhir_fetch_count": 0,
        "skipped_resource_count": 1,
        "repaired_element_count": 2,
        "rule_ids": ["RF-03", "RB-02"],
        "rule_versions": {"RF-03": "1.0.0", "RB-02": "2.1.0"},
        "would_fire": [],
        "snoozed": ["RB-02"],
        "card_uuids": ["c-1", "c-2"],
        "patient_hash": "a" * 64,
        "site_digest": "none",
    }
    row.update(changes)
    return row


def _card(uuid: str, **changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "card_uuid": uuid,
        "service_id": "back-to-foot",
        "rule_id": "RF-03",
        "hook_instance": "h-1",
        "suggestion_uuids": [f"{uuid}-s"],
        "issued_at": T0,
        "patient_hash": "a" * 64,
    }
    row.update(changes)
    return row


AUDITS = [
    _audit("h-1"),
    _audit(
        "h-2 ünïcødé",
        received_at=T0.astimezone(timezone(timedelta(hours=-5))),
        status_code=412,
        rule_ids=[],
        rule_versions={},
        snoozed=[],
        card_uuids=[],
        patient_hash=None,
        site_digest=None,
        duration_ms=0.0,
    ),
]
CARDS = [_card("c-1"), _card("c-2", suggestion_uuids=[], patient_hash=None)]


@pytest.fixture
def engines(tmp_path: Path) -> Iterator[tuple[sa.Engine, sa.Engine]]:
    """Two migrated SQLite files' batch engines."""
    made = []
    for name in ("ours", "sqlalchemy"):
        url = f"sqlite+aiosqlite:///{tmp_path / name}.db"
        settings = load_settings(database_url=url, patient_hash_key=SecretStr("test-key"))
        asyncio.run(upgrade(settings))
        engine = create_batch_engine(url)
        assert engine is not None
        made.append(engine)
    yield made[0], made[1]
    for engine in made:
        engine.dispose()


def _stored(engine: sa.Engine) -> list[list[tuple[Any, ...]]]:
    """Every row of both tables as SQLite holds it (text, numbers, NULLs), in a fixed order."""
    database = engine.url.database
    assert database is not None
    with sqlite3.connect(database) as connection:
        return [
            connection.execute("SELECT * FROM invocations ORDER BY id").fetchall(),
            connection.execute(
                "SELECT * FROM issued_cards ORDER BY service_id, card_uuid"
            ).fetchall(),
        ]


def test_a_batch_stores_the_rows_sqlalchemy_s_inserts_stored(
    engines: tuple[sa.Engine, sa.Engine],
) -> None:
    ours, theirs = engines
    SqliteAudit(ours).write(AUDITS, CARDS)
    with theirs.begin() as conn:
        conn.execute(invocations.insert(), AUDITS)
        conn.execute(insert_cards("sqlite"), CARDS)
    assert _stored(ours) == _stored(theirs)
    assert len(_stored(ours)[0]) == 2


def test_a_card_stored_before_keeps_the_call_s_row_and_is_not_doubled(
    engines: tuple[sa.Engine, sa.Engine],
) -> None:
    audit = SqliteAudit(engines[0])
    audit.write([_audit("h-1")], [_card("c-1")])
    audit.write([_audit("h-1 again")], [_card("c-1")])
    calls, cards = _stored(engines[0])
    assert [row[4] for row in calls] == ["h-1", "h-1 again"]
    assert len(cards) == 1


def test_a_card_the_table_refuses_leaves_no_row_of_its_batch(
    engines: tuple[sa.Engine, sa.Engine],
) -> None:
    with pytest.raises(IntegrityError):
        SqliteAudit(engines[0]).write(AUDITS, [_card("c-1", rule_id=None)])
    assert _stored(engines[0]) == [[], []]


def test_a_value_no_column_takes_is_a_bad_row_before_the_database(
    engines: tuple[sa.Engine, sa.Engine],
) -> None:
    with pytest.raises(StatementError, match="timezone-aware") as refused:
        SqliteAudit(engines[0]).write([_audit("h-1", received_at=datetime(2026, 1, 1))], [])
    assert not isinstance(refused.value, DBAPIError)
    assert _stored(engines[0]) == [[], []]


def test_a_write_lock_held_elsewhere_is_a_busy_operational_error(
    engines: tuple[sa.Engine, sa.Engine],
) -> None:
    database = engines[0].url.database
    assert database is not None
    holder = sqlite3.connect(database)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(OperationalError) as busy:
            SqliteAudit(engines[0]).write(AUDITS, CARDS)
        assert is_busy(busy.value)
    finally:
        holder.rollback()
        holder.close()
    SqliteAudit(engines[0]).write(AUDITS, CARDS)
    assert len(_stored(engines[0])[0]) == 2
