"""A card overridden with a reason its template marks as snoozing is not shown again for the
same patient and evidence until its rule's snooze period has passed; it is counted in the audit,
the metrics and the report. Everything else shows the card as before."""

from __future__ import annotations

import copy
import json
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from cds.app import create_app
from cds.catalogue import Catalogue
from cds.settings import PROJECT_ROOT, Settings
from cds.snooze.snoozing import Snoozing
from cds.store.schema import invocations, snoozes
from cds.store.snoozes import SnoozeStore
from tests.conftest import changed, serving

pytestmark = pytest.mark.anyio

CASES = PROJECT_ROOT / "tests" / "cases"
RB01 = CASES / "back-to-foot" / "rb-01-foot-paraesthesia-with-low-back-pain.json"
RF02 = CASES / "back-to-foot" / "rf-02-positive-new-foot-drop.json"
OS01 = CASES / "back-to-foot-order-sign" / "s14a-early-sciatica-mri.json"
REASONS = "https://footpath-cds.example.org/CodeSystem/override-reason"
# The real time the tests pretend it is: the evaluation's own "now" is each case's.
START = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def case(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


@dataclass
class MovableClock:
    """The app's real-time clock (``parts.stamp``), moved by the test."""

    now: datetime = START

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Service:
    """One app on a SQLite file, with its clock, answering one service."""

    app: FastAPI
    client: httpx.AsyncClient
    clock: MovableClock
    service: str
    case: Path  # the chart the tests call with
    rule: str  # the rule whose card they override

    @property
    def request(self) -> dict[str, Any]:
        return request_of(self.case)

    async def first_card(self) -> dict[str, Any]:
        """The rule's card for the case's chart."""
        return await self.card(self.request, self.rule)

    async def shows(self, request: dict[str, Any] | None = None) -> bool:
        """Whether the rule's card is in the answer to ``request`` (the case's chart)."""
        return self.rule in await self.rules(request or self.request)

    async def cards(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        response = await self.client.post(f"/cds-services/{self.service}", json=request)
        assert response.status_code == 200, response.text
        cards: list[dict[str, Any]] = response.json()["cards"]
        return cards

    async def card(self, request: dict[str, Any], rule: str) -> dict[str, Any]:
        (card,) = [c for c in await self.cards(request) if c["source"]["topic"]["code"] == rule]
        return card

    async def rules(self, request: dict[str, Any]) -> list[str]:
        return [c["source"]["topic"]["code"] for c in await self.cards(request)]

    async def override(
        self, card: dict[str, Any], code: str | None, at: datetime | None = None, **reason: Any
    ) -> dict[str, Any]:
        item: dict[str, Any] = {
            "card": card["uuid"],
            "outcome": "overridden",
            "outcomeTimestamp": (at or self.clock.now).isoformat(),
        }
        if code is not None:
            item["overrideReason"] = {
                "reason": {"system": REASONS, "code": code, "display": code, **reason}
            }
        else:
            item["overrideReason"] = {"userComment": "not now"}
        response = await self.client.post(
            f"/cds-services/{self.service}/feedback", json={"feedback": [item]}
        )
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    async def snoozed_rows(self) -> list[sa.Row[Any]]:
        async with self.app.state.parts.store.engine.connect() as conn:
            return list(await conn.execute(sa.select(snoozes)))

    async def last_audit_row(self) -> sa.Row[Any]:
        await self.app.state.parts.audit.flush()
        async with self.app.state.parts.store.engine.connect() as conn:
            query = sa.select(invocations).order_by(invocations.c.id.desc()).limit(1)
            row: sa.Row[Any] = (await conn.execute(query)).one()
            return row

    def later(self, **span: float) -> None:
        self.clock.now += timedelta(**span)


async def _service(
    settings: Settings,
    catalogue: Catalogue | None,
    path: Path,
    rule: str,
    service: str = "back-to-foot",
) -> AsyncIterator[Service]:
    """An app on ``catalogue`` (None: loaded from ``settings``, with its site file)."""
    app = create_app(changed(settings, fixed_now=case(path)["now"]), catalogue=catalogue)
    clock = MovableClock()
    app.state.parts.stamp = clock
    async with serving(app) as client:
        yield Service(app, client, clock, service, path, rule)


@pytest.fixture
async def rb01(settings: Settings, catalogue: Catalogue) -> AsyncIterator[Service]:
    async for made in _service(settings, catalogue, RB01, "RB-01"):
        yield made


@pytest.fixture
async def rf02(settings: Settings, catalogue: Catalogue) -> AsyncIterator[Service]:
    async for made in _service(settings, catalogue, RF02, "RF-02"):
        yield made


@pytest.fixture
async def os01(settings: Settings, catalogue: Catalogue) -> AsyncIterator[Service]:
    async for made in _service(settings, catalogue, OS01, "OS-01", "back-to-foot-order-sign"):
        yield made


def request_of(path: Path) -> dict[str, Any]:
    request: dict[str, Any] = case(path)["request"]
    return request


def for_patient(request: dict[str, Any], patient_id: str) -> dict[str, Any]:
    """The same chart, as another patient's: their id in the context and every reference."""
    text = json.dumps(request).replace('"p1"', f'"{patient_id}"')
    moved: dict[str, Any] = json.loads(text.replace("Patient/p1", f"Patient/{patient_id}"))
    return moved


# --------------------------------------------------------------------------- hidden, counted


async def test_a_card_overridden_as_patient_declined_is_not_returned_on_the_next_call(
    rb01: Service,
) -> None:
    card = await rb01.first_card()
    assert (await rb01.override(card, "patient-declined"))["stored"] == 1
    assert not await rb01.shows()


async def test_a_snoozed_card_is_counted_in_the_audit_row_the_metrics_and_the_report(
    rb01: Service,
) -> None:
    await rb01.override(await rb01.first_card(), "patient-declined")
    assert not await rb01.shows()
    row = await rb01.last_audit_row()
    # The rule fired and is audited as such, with its version; its card was not shown.
    assert row.snoozed == ["RB-01"]
    assert "RB-01" in row.rule_ids
    assert row.rule_versions["RB-01"] == "1.0.0"
    assert row.card_uuids == []
    metrics = (await rb01.client.get("/metrics")).text
    assert 'cds_cards_snoozed_total{rule="RB-01",service="back-to-foot"} 1.0' in metrics
    # Shown once (the first call), snoozed once (the second).
    report = await rb01.app.state.parts.store.rule_report(
        "back-to-foot", START - timedelta(days=1), START + timedelta(days=1)
    )
    (stats,) = [s for s in report.rules if s.rule_id == "RB-01"]
    assert (stats.times_shown, stats.snoozed, stats.overridden) == (1, 1, 1)


async def test_the_snooze_is_stored_under_the_keyed_patient_hash_and_no_patient_id(
    rb01: Service,
) -> None:
    card = await rb01.first_card()
    await rb01.override(card, "patient-declined")
    (row,) = await rb01.snoozed_rows()
    assert row.patient_hash == rb01.app.state.parts.store.patient_hash("p1")
    assert (row.card_uuid, row.rule_id, row.override_code) == (
        card["uuid"],
        "RB-01",
        "patient-declined",
    )
    assert "p1" not in json.dumps([str(value) for value in row])


# --------------------------------------------------------------------------- shown again


async def test_a_reason_the_card_does_not_mark_as_snoozing_leaves_the_card_shown(
    os01: Service,
) -> None:
    card = await os01.first_card()
    # A red flag the clinician knows of but nobody coded: the card stays until it is coded.
    await os01.override(card, "red-flag-not-coded")
    assert await os01.shows()
    assert await os01.snoozed_rows() == []


async def test_an_override_with_only_a_comment_or_another_systems_code_snoozes_nothing(
    rb01: Service,
) -> None:
    card = await rb01.first_card()
    await rb01.override(card, None)
    await rb01.override(card, "patient-declined", system="http://example.org/local-reasons")
    assert await rb01.shows()


async def test_an_accepted_card_is_shown_again(rb01: Service) -> None:
    card = await rb01.first_card()
    body = {
        "feedback": [
            {"card": card["uuid"], "outcome": "accepted", "outcomeTimestamp": START.isoformat()}
        ]
    }
    await rb01.client.post("/cds-services/back-to-foot/feedback", json=body)
    assert await rb01.shows()


async def test_the_card_comes_back_once_the_rules_snooze_period_has_passed(
    rb01: Service,
) -> None:
    await rb01.override(await rb01.first_card(), "patient-declined")
    rb01.later(days=29, hours=23)
    assert not await rb01.shows()
    rb01.later(hours=1)  # 30 days after the override: RB-01's period
    assert await rb01.shows()


async def test_new_evidence_shows_the_card_at_once_under_a_new_uuid(rb01: Service) -> None:
    card = await rb01.first_card()
    await rb01.override(card, "patient-declined")
    newer = rb01.request
    tingling = copy.deepcopy(newer["prefetch"]["conditions"]["entry"][1])
    tingling["resource"]["id"] = "c9"
    tingling["resource"]["onsetDateTime"] = "2026-02-25"
    newer["prefetch"]["conditions"]["entry"].append(tingling)
    again = await rb01.card(newer, "RB-01")
    assert again["uuid"] != card["uuid"]
    assert not await rb01.shows()  # the old evidence stays snoozed


async def test_another_patient_with_the_same_chart_sees_the_card(rb01: Service) -> None:
    await rb01.override(await rb01.first_card(), "patient-declined")
    assert await rb01.shows(for_patient(rb01.request, "p2"))


async def test_feedback_on_a_card_the_service_never_issued_snoozes_nothing(
    rb01: Service,
) -> None:
    unknown = {"uuid": "0b6b4bd4-5f39-4e3c-9c6e-4d0e2b0c1f00"}
    assert (await rb01.override(unknown, "patient-declined"))["unmatched"] == 1
    assert await rb01.snoozed_rows() == []


async def test_feedback_sent_to_another_service_snoozes_nothing(rb01: Service) -> None:
    card = await rb01.first_card()
    rb01.service = "back-to-foot-order-sign"
    await rb01.override(card, "patient-declined")
    rb01.service = "back-to-foot"
    assert await rb01.shows()


# --------------------------------------------------------------------------- when it starts


async def test_an_override_timestamped_in_the_future_snoozes_from_when_it_was_received(
    rb01: Service,
) -> None:
    card = await rb01.first_card()
    await rb01.override(card, "patient-declined", at=START + timedelta(days=365))
    rb01.later(days=30)
    assert await rb01.shows()


async def test_an_override_older_than_the_period_snoozes_nothing(rb01: Service) -> None:
    card = await rb01.first_card()
    await rb01.override(card, "patient-declined", at=START - timedelta(days=31))
    assert await rb01.shows()
    assert await rb01.snoozed_rows() == []


async def test_a_later_override_restarts_the_snooze_and_an_earlier_one_never_shortens_it(
    rb01: Service,
) -> None:
    card = await rb01.first_card()
    await rb01.override(card, "patient-declined", at=START - timedelta(days=20))
    await rb01.override(card, "patient-declined", at=START)
    await rb01.override(card, "already-under-specialist-care", at=START - timedelta(days=10))
    rb01.later(days=25)
    assert not await rb01.shows()
    (row,) = await rb01.snoozed_rows()
    assert row.override_code == "patient-declined"


# --------------------------------------------------------------------------- red flags


async def test_a_red_flag_is_snoozed_for_the_visit_only(rf02: Service) -> None:
    await rf02.override(await rf02.first_card(), "known-peroneal-palsy")
    rf02.later(hours=7, minutes=59)
    assert not await rf02.shows()
    rf02.later(minutes=1)  # RF-02's period: PT8H
    assert await rf02.shows()


def _set_period(service: Service, rule_id: str, period: timedelta) -> None:
    """The app's snooze period for ``rule_id`` changed, as a site setting would (a restart)."""
    parts = service.app.state.parts
    governance = parts.catalogue.governance
    parts.snoozes = Snoozing(
        SnoozeStore(parts.store),
        parts.snoozes.reasons,
        replace(governance, site_snoozes={**governance.site_snoozes, rule_id: period}),
        REASONS,
    )


async def test_a_period_shortened_later_ends_a_running_snooze_sooner(rf02: Service) -> None:
    await rf02.override(await rf02.first_card(), "known-stroke")
    _set_period(rf02, "RF-02", timedelta(hours=2))
    rf02.later(hours=2)
    assert await rf02.shows()


async def test_a_period_lengthened_later_never_extends_a_running_snooze(rf02: Service) -> None:
    await rf02.override(await rf02.first_card(), "known-stroke")
    _set_period(rf02, "RF-02", timedelta(hours=24))
    rf02.later(hours=8)
    assert await rf02.shows()


# --------------------------------------------------------------------------- cost


@dataclass
class Statements:
    """Every SQL statement any engine of this process runs while counted."""

    seen: list[str]

    def on_snoozes(self) -> list[str]:
        return [s for s in self.seen if "FROM snoozes" in s]


@contextmanager
def counting_statements() -> Iterator[Statements]:
    """Statements sent through SQLAlchemy, and those sent on a sqlite3 connection of a pool
    itself (the snooze lookup on a SQLite file), as SQLite's trace sees them."""
    statements = Statements([])
    traced: list[sqlite3.Connection] = []

    def record(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if conn.dialect.driver != "pysqlite":  # the trace sees these
            statements.seen.append(statement)

    def trace(dbapi_connection: Any, *_: Any) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.set_trace_callback(statements.seen.append)
            traced.append(dbapi_connection)

    sa.event.listen(sa.Engine, "before_cursor_execute", record)
    sa.event.listen(sa.pool.Pool, "checkout", trace)
    try:
        yield statements
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", record)
        sa.event.remove(sa.pool.Pool, "checkout", trace)
        for connection in traced:
            connection.set_trace_callback(None)


async def test_a_call_that_would_show_cards_looks_snoozes_up_once_for_all_of_them(
    rf02: Service,
) -> None:
    with counting_statements() as statements:
        cards = await rf02.cards(rf02.request)
    assert len(cards) >= 1
    (lookup,) = statements.on_snoozes()
    assert "snoozes.patient_hash =" in lookup


async def test_a_call_that_shows_no_card_never_looks_snoozes_up(rb01: Service) -> None:
    request = for_patient(rb01.request, "p3")
    request["prefetch"]["conditions"]["entry"] = []
    with counting_statements() as statements:
        assert await rb01.cards(request) == []
    assert statements.on_snoozes() == []


async def test_a_sites_snooze_period_is_the_one_used(settings: Settings, tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("rules:\n  RB-01:\n    snooze: P7D\n", encoding="utf-8")
    tuned = changed(settings, site_config=site)
    async for rb01 in _service(tuned, None, RB01, "RB-01"):
        await rb01.override(await rb01.first_card(), "patient-declined")
        rb01.later(days=6, hours=23)
        assert not await rb01.shows()
        rb01.later(hours=1)
        assert await rb01.shows()
