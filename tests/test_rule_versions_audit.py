"""The version of each rule a call ran is in its audit row, and the report reads feedback per
version, on SQLite and on PostgreSQL; rows audited before versions existed read as unknown."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from cds.app import create_app
from cds.migrations import HEAD, current_revision, upgrade
from cds.settings import Settings
from cds.store import Store
from cds.store.schema import invocations
from tests.conftest import changed, serving
from tests.test_store import DAY, T0, accepted, audit, issued, overridden, rows

pytestmark = pytest.mark.anyio

ADMIN = "admin-secret-for-tests"


async def _show(store: Store, card: str, version: str, *, hook: str, hours: int) -> None:
    cards = [issued(card, "RB-01", hook=hook, at=T0 + timedelta(hours=hours))]
    row = audit(cards, hook=hook).model_copy(update={"rule_versions": {"RB-01": version}})
    await store.record_invocation(row, cards)


async def test_an_audit_row_keeps_the_version_of_each_rule_it_names(store: Store) -> None:
    cards = [issued("c-1", "RF-01"), issued("c-2", "RB-02")]
    row = audit(cards).model_copy(update={"rule_versions": {"RF-01": "1.0.0", "RB-02": "2.1.0"}})
    await store.record_invocation(row, cards)
    (written,) = await rows(store, invocations)
    assert written.rule_versions == {"RF-01": "1.0.0", "RB-02": "2.1.0"}


async def test_the_report_has_one_row_per_version_with_its_own_feedback(store: Store) -> None:
    # Version 1.0.0 shows its card twice and is overridden; 1.1.0 shows another and is accepted.
    await _show(store, "card-old", "1.0.0", hook="h-1", hours=0)
    await _show(store, "card-old", "1.0.0", hook="h-2", hours=1)
    await _show(store, "card-new", "1.1.0", hook="h-3", hours=2)
    await store.record_feedback("back-to-foot", [overridden("card-old")], T0 + timedelta(hours=3))
    await store.record_feedback("back-to-foot", [accepted("card-new")], T0 + timedelta(hours=3))
    report = await store.rule_report("back-to-foot", T0 - DAY, T0 + DAY)
    by_version = {(s.rule_id, s.rule_version): s for s in report.rules}
    assert set(by_version) == {("RB-01", "1.0.0"), ("RB-01", "1.1.0")}
    old, new = by_version["RB-01", "1.0.0"], by_version["RB-01", "1.1.0"]
    assert (old.times_shown, old.cards, old.overridden, old.accepted) == (2, 1, 1, 0)
    assert (new.times_shown, new.cards, new.overridden, new.accepted) == (1, 1, 0, 1)
    assert [s.rule_version for s in report.rules] == ["1.0.0", "1.1.0"]


async def test_calls_audited_before_migration_0004_read_as_an_unknown_version(
    store_settings: Settings,
) -> None:
    await upgrade(store_settings, "0003")
    async with Store.from_settings(store_settings) as opened:
        cards = [issued("card-before", "RB-01")]
        # The columns of revision 0003 only: rule_versions does not exist yet.
        before = {
            "received_at": T0,
            "service_id": "back-to-foot",
            "hook": "patient-view",
            "hook_instance": "h-0",
            "status_code": 200,
            "duration_ms": 1.0,
            "fhir_fetch_count": 0,
            "skipped_resource_count": 0,
            "rule_ids": ["RB-01"],
            "card_uuids": ["card-before"],
        }
        async with opened.engine.begin() as conn:
            await conn.execute(sa.insert(invocations).values(before))
        await upgrade(store_settings)
        assert await current_revision(store_settings) == HEAD
        await opened.record_invocation(audit([]), cards)  # the card row for the old call
        (old,) = [r for r in await rows(opened, invocations) if r.hook_instance == "h-0"]
        assert old.rule_versions == {}
        report = await opened.rule_report("back-to-foot", T0 - DAY, T0 + DAY)
        assert [(s.rule_id, s.rule_version, s.times_shown) for s in report.rules] == [
            ("RB-01", None, 1)
        ]


@pytest.fixture
async def admin_client(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    app = create_app(changed(settings, admin_token=ADMIN))
    async with serving(app) as client:
        yield client, app


async def test_a_hook_call_audits_the_version_of_the_rules_that_fired_and_the_report_shows_it(
    admin_client: tuple[httpx.AsyncClient, FastAPI], rb01_request: dict[str, Any]
) -> None:
    client, app = admin_client
    response = await client.post("/cds-services/back-to-foot", json=rb01_request)
    codes = [card["source"]["topic"]["code"] for card in response.json()["cards"]]
    assert "RB-01" in codes
    await app.state.parts.audit.flush()
    store: Store = app.state.parts.store
    (row,) = await rows(store, invocations)
    assert row.rule_versions == dict.fromkeys(codes, "1.0.0")
    report = await client.get(
        "/admin/report",
        params={"service": "back-to-foot", "since": "2026-01-01T00:00:00Z"},
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    versions = {r["rule_id"]: r["rule_version"] for r in report.json()["rules"]}
    assert versions == dict.fromkeys(codes, "1.0.0")
