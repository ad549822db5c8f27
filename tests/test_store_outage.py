"""A database outage is a 503 that says so, counted and logged once; cards need no database."""

from __future__ import annotations

import io
import json
import socket
import sqlite3
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.exc import IntegrityError

from cds.app import create_app
from cds.catalogue import Catalogue
from cds.logs import configure_logging
from cds.migrations import upgrade
from cds.settings import Settings
from cds.store.outage import Cause, Operation, OutageWatch, unreachable_cause
from tests.conftest import changed, serving
from tests.jwt_minting import ISSUER, make_issuer

pytestmark = pytest.mark.anyio

BASE = "https://cds.example.org"
ADMIN = "admin-secret-token"
FEEDBACK = "/cds-services/back-to-foot/feedback"
ONE_ITEM = {
    "feedback": [
        {
            "card": "0c0bd2c7-5bd1-4d79-9e4e-8a4f6f1c2b11",
            "outcome": "accepted",
            "acceptedSuggestions": [{"id": "3d4b1e4a-5b1f-4c5e-8f6a-2b7c9d0e1f22"}],
            "outcomeTimestamp": "2026-06-01T12:01:00Z",
        }
    ]
}


def _closed_port() -> int:
    """A port nothing listens on: connecting to it is refused, as with a stopped server."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def down(settings: Settings) -> Settings:
    """Settings whose PostgreSQL is down: nobody listens at its address."""
    return changed(
        settings,
        database_url=f"postgresql+asyncpg://cds@127.0.0.1:{_closed_port()}/cds",
        migrate_on_start=False,
        admin_token=ADMIN,
        # One readiness check, at startup: the counts below are the tests' calls alone.
        readiness_interval=3600,
    )


def assert_outage_answer(response: httpx.Response) -> None:
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) > 0
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    [issue] = outcome["issue"]
    assert issue["severity"] == "error"
    assert issue["code"] == "transient"
    assert "temporarily unavailable" in issue["diagnostics"]


def counted(app: FastAPI, operation: str, cause: str) -> float:
    value = app.state.parts.metrics.registry.get_sample_value(
        "cds_store_unavailable_total", {"operation": operation, "cause": cause}
    )
    return value or 0.0


async def test_feedback_while_the_database_is_down_is_a_503_that_says_so(
    down: Settings, catalogue: Catalogue
) -> None:
    app = create_app(down, catalogue=catalogue)
    async with serving(app) as client:
        response = await client.post(FEEDBACK, json=ONE_ITEM)
        metrics = (await client.get("/metrics")).text
    assert_outage_answer(response)
    assert counted(app, "feedback", "refused") == 1
    assert 'cds_store_unavailable_total{cause="refused",operation="feedback"} 1.0' in metrics


async def test_the_admin_report_while_the_database_is_down_is_a_503(
    down: Settings, catalogue: Catalogue
) -> None:
    app = create_app(down, catalogue=catalogue)
    async with serving(app) as client:
        response = await client.get("/admin/report", headers={"Authorization": f"Bearer {ADMIN}"})
    assert_outage_answer(response)
    assert counted(app, "report", "refused") == 1


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/cds-services"),
        ("POST", "/cds-services/back-to-foot"),
        ("POST", FEEDBACK),
    ],
)
async def test_a_token_the_replay_cache_cannot_check_is_refused_with_a_503(
    down: Settings, tmp_path: Path, rb01_request: dict[str, Any], method: str, path: str
) -> None:
    """Fail closed: a jti nobody could record might be a replay, so nothing is answered."""
    issuer = make_issuer(tmp_path)
    app = create_app(
        changed(
            down,
            auth_mode="required",
            trusted_issuers={ISSUER: str(issuer.jwks_file)},
            replay_cache="database",
        )
    )
    body = ONE_ITEM if path == FEEDBACK else rb01_request
    async with serving(app) as client:
        response = await client.request(
            method,
            path,
            headers=issuer.header(BASE + path),
            json=body if method == "POST" else None,
        )
    assert_outage_answer(response)
    assert counted(app, "replay_cache", "refused") == 1


async def test_a_hook_call_answers_its_cards_while_the_database_is_down(
    down: Settings, catalogue: Catalogue, rb01_request: dict[str, Any]
) -> None:
    """The audit is the call's only use of the store: its row is lost and counted, not the call."""
    app = create_app(down, catalogue=catalogue)
    async with serving(app) as client:
        response = await client.post("/cds-services/back-to-foot", json=rb01_request)
        await app.state.parts.audit.flush()
    assert response.status_code == 200
    assert "RB-01" in {card["source"]["topic"]["code"] for card in response.json()["cards"]}
    registry = app.state.parts.metrics.registry
    assert registry.get_sample_value("cds_audit_rows_lost_total") == 1
    assert counted(app, "audit", "refused") >= 1


async def test_readiness_fails_while_the_database_is_down_and_the_failure_is_counted(
    down: Settings, catalogue: Catalogue
) -> None:
    app = create_app(down, catalogue=catalogue)
    async with serving(app) as client:
        response = await client.get("/readyz")
        alive = await client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["store"] is False
    assert alive.status_code == 200
    assert counted(app, "readiness", "refused") == 1


async def test_an_outage_is_logged_once_when_it_starts_and_once_when_it_ends(
    settings: Settings, catalogue: Catalogue, tmp_path: Path
) -> None:
    """A SQLite file in a directory that is missing cannot be opened until the directory is back."""
    folder = tmp_path / "volume"
    restored = changed(
        settings,
        database_url=f"sqlite+aiosqlite:///{folder / 'cds.db'}",
        migrate_on_start=False,
        readiness_interval=3600,
    )
    app = create_app(restored, catalogue=catalogue)
    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    try:
        async with serving(app) as client:
            during = [(await client.post(FEEDBACK, json=ONE_ITEM)).status_code for _ in range(5)]
            folder.mkdir()
            await upgrade(restored)
            after = await client.post(FEEDBACK, json=ONE_ITEM)
            again = await client.post(FEEDBACK, json=ONE_ITEM)
    finally:
        configure_logging("INFO")
    assert during == [503] * 5
    assert after.status_code == 200
    assert after.json()["stored"] == 1
    assert again.json()["duplicates"] == 1
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    started = [line for line in lines if line["message"].startswith("database unreachable")]
    ended = [line for line in lines if line["message"] == "database reachable again"]
    assert len(started) == 1
    assert started[0]["cause"] == "unavailable"
    # The worker's readiness check at startup meets the outage first, before any call.
    assert started[0]["operation"] == "readiness"
    assert len(ended) == 1
    assert ended[0]["count"] == 6
    assert counted(app, "feedback", "unavailable") == 5


def test_an_answer_to_a_query_sent_before_the_outage_does_not_end_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    watch = OutageWatch(clock=lambda: now[0])
    sent_early = watch.began()
    now[0] = 1.0
    watch.failed(Operation.feedback, Cause.disconnected)
    now[0] = 1.1
    watch.reached(sent_early)
    assert watch.down
    sent_after = watch.began()
    now[0] = 2.0
    watch.reached(sent_after)
    assert not watch.down
    messages = [record.getMessage() for record in caplog.records]
    assert sum(m.startswith("database unreachable") for m in messages) == 1
    assert messages.count("database reachable again") == 1


def test_a_bad_row_is_a_bug_not_an_outage() -> None:
    """Only failures a later try could cure make a 503; a constraint violation stays a 500."""
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE t (k INTEGER PRIMARY KEY)")
    connection.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(sqlite3.IntegrityError) as raised:
        connection.execute("INSERT INTO t VALUES (1)")
    error = IntegrityError("INSERT INTO t", {}, raised.value)
    assert unreachable_cause(error) is None
    assert unreachable_cause(ConnectionRefusedError()) is Cause.refused
    assert unreachable_cause(TimeoutError()) is Cause.timeout


def test_asyncpg_errors_met_without_sqlalchemy_are_told_apart_too() -> None:
    """The replay claims use asyncpg directly: its errors arrive unwrapped."""
    assert unreachable_cause(asyncpg.ConnectionDoesNotExistError()) is Cause.disconnected
    assert unreachable_cause(asyncpg.InterfaceError("connection is closed")) is Cause.disconnected
    assert unreachable_cause(asyncpg.CannotConnectNowError()) is Cause.unavailable
    # What the next statement on a connection the server dropped while it was idle raises.
    dropped = asyncpg.InternalClientError("cannot switch to state 15; another operation is in")
    assert unreachable_cause(dropped) is Cause.disconnected
    in_progress = asyncpg.InterfaceError("another operation is in progress")
    assert unreachable_cause(in_progress) is None
    assert unreachable_cause(asyncpg.UndefinedTableError()) is None
