"""Every call leaves an audit row without PHI; the admin report shows clinicians' responses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from cds.app import create_app
from cds.catalogue import Catalogue
from cds.settings import Settings
from cds.store import Store
from cds.store.schema import invocations
from tests.conftest import changed, holding_audit_app, serving

pytestmark = pytest.mark.anyio

ADMIN = "admin-secret-for-tests"


@pytest.fixture
def admin_app(settings: Settings, catalogue: Catalogue) -> FastAPI:
    return create_app(changed(settings, admin_token=ADMIN), catalogue=catalogue)


@pytest.fixture
async def admin_client(admin_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(admin_app) as c:
        yield c


async def _written(app: FastAPI) -> Store:
    """The app's store once the audit writer has written every call answered so far."""
    await app.state.parts.audit.flush()
    store: Store = app.state.parts.store
    return store


async def test_a_hook_call_writes_one_audit_row_with_a_hashed_patient(
    admin_client: httpx.AsyncClient, admin_app: FastAPI, rb01_request: dict[str, Any]
) -> None:
    response = await admin_client.post("/cds-services/back-to-foot", json=rb01_request)
    cards = response.json()["cards"]
    async with (await _written(admin_app)).engine.connect() as conn:
        rows = (await conn.execute(sa.select(invocations))).mappings().all()
    assert len(rows) == 1
    row = dict(rows[0])
    assert row["hook_instance"] == rb01_request["hookInstance"]
    assert row["status_code"] == 200
    assert "RB-01" in str(row["rule_ids"])
    assert cards[0]["uuid"] in str(row["card_uuids"])
    assert row["patient_hash"] != "p1"
    assert len(row["patient_hash"]) >= 32
    assert "p1" not in [str(value) for value in row.values()]


async def test_a_failed_call_is_audited_with_its_status(
    admin_client: httpx.AsyncClient, admin_app: FastAPI, rb01_request: dict[str, Any]
) -> None:
    del rb01_request["prefetch"]["conditions"]
    response = await admin_client.post("/cds-services/back-to-foot", json=rb01_request)
    assert response.status_code == 412
    async with (await _written(admin_app)).engine.connect() as conn:
        statuses = (await conn.execute(sa.select(invocations.c.status_code))).scalars().all()
    assert statuses == [412]


async def test_the_admin_report_counts_shown_accepted_and_overridden_cards(
    admin_client: httpx.AsyncClient, rb01_request: dict[str, Any]
) -> None:
    cards = (await admin_client.post("/cds-services/back-to-foot", json=rb01_request)).json()[
        "cards"
    ]
    card = next(c for c in cards if c["source"]["topic"]["code"] == "RB-01")
    reason = card["overrideReasons"][0]
    await admin_client.post(
        "/cds-services/back-to-foot/feedback",
        json={
            "feedback": [
                {
                    "card": card["uuid"],
                    "outcome": "overridden",
                    "overrideReason": {"reason": reason, "userComment": "later"},
                    "outcomeTimestamp": "2026-06-01T12:01:00Z",
                }
            ]
        },
    )
    response = await admin_client.get(
        "/admin/report",
        params={"service": "back-to-foot", "since": "2026-01-01T00:00:00Z"},
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    assert response.status_code == 200
    rules = {r["rule_id"]: r for r in response.json()["rules"]}
    assert rules["RB-01"]["times_shown"] == 1
    assert rules["RB-01"]["overridden"] == 1
    assert rules["RB-01"]["top_override_reasons"][0]["code"] == reason["code"]


async def test_the_admin_report_counts_cards_still_waiting_to_be_written(
    settings: Settings, rb01_request: dict[str, Any]
) -> None:
    app = holding_audit_app(changed(settings, admin_token=ADMIN))
    async with serving(app) as client:
        await client.post("/cds-services/back-to-foot", json=rb01_request)
        response = await client.get(
            "/admin/report",
            params={"since": "2026-01-01T00:00:00Z"},
            headers={"Authorization": f"Bearer {ADMIN}"},
        )
    assert {r["rule_id"]: r["times_shown"] for r in response.json()["rules"]}["RB-01"] == 1


async def test_calls_still_queued_at_shutdown_are_written_before_the_app_stops(
    settings: Settings, rb01_request: dict[str, Any]
) -> None:
    app = holding_audit_app(settings)
    async with serving(app) as client:
        for n in range(3):
            request = {**rb01_request, "hookInstance": f"shutdown-{n}"}
            assert (await client.post("/cds-services/back-to-foot", json=request)).is_success
    async with Store.from_settings(settings) as store, store.engine.connect() as conn:
        hooks = (await conn.execute(sa.select(invocations.c.hook_instance))).scalars().all()
    assert sorted(hooks) == ["shutdown-0", "shutdown-1", "shutdown-2"]


async def test_the_admin_report_needs_the_admin_token(admin_client: httpx.AsyncClient) -> None:
    assert (await admin_client.get("/admin/report")).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert (await admin_client.get("/admin/report", headers=wrong)).status_code == 401


async def test_the_admin_report_does_not_exist_without_an_admin_token(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/admin/report")).status_code == 404


async def test_bad_report_parameters_are_a_400(admin_client: httpx.AsyncClient) -> None:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    response = await admin_client.get("/admin/report?since=yesterday", headers=headers)
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"


async def test_the_admin_report_takes_a_plain_date_as_a_whole_utc_day(
    admin_client: httpx.AsyncClient, rb01_request: dict[str, Any]
) -> None:
    await admin_client.post("/cds-services/back-to-foot", json=rb01_request)
    # The store stamps calls with the real clock: today's call falls in today's whole day.
    today = datetime.now(UTC).date()
    headers = {"Authorization": f"Bearer {ADMIN}"}
    response = await admin_client.get(
        "/admin/report", params={"since": str(today), "until": str(today)}, headers=headers
    )
    assert response.status_code == 200
    body = response.json()
    tomorrow = today + timedelta(days=1)
    assert (body["start"], body["end"]) == (f"{today}T00:00:00Z", f"{tomorrow}T00:00:00Z")
    assert "RB-01" in {r["rule_id"] for r in body["rules"]}


async def test_the_admin_report_takes_an_instant_with_or_without_an_offset(
    admin_client: httpx.AsyncClient,
) -> None:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    response = await admin_client.get(
        "/admin/report",
        params={"since": "2026-05-01T10:00:00+02:00", "until": "2026-05-02T08:00:00"},
        headers=headers,
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["start"], body["end"]) == ("2026-05-01T08:00:00Z", "2026-05-02T08:00:00Z")


async def test_a_report_bound_that_is_no_date_names_the_parameter_and_the_format(
    admin_client: httpx.AsyncClient,
) -> None:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    response = await admin_client.get("/admin/report?until=31/05/2026", headers=headers)
    assert response.status_code == 400
    issue = response.json()["issue"][0]
    assert issue["expression"] == ["until"]
    assert "2026-05-01T08:00:00Z" in issue["diagnostics"]


async def _skipped_counts(app: FastAPI) -> list[int]:
    async with (await _written(app)).engine.connect() as conn:
        query = sa.select(invocations.c.skipped_resource_count)
        return list((await conn.execute(query)).scalars().all())


async def test_a_text_only_problem_is_counted_as_skipped_in_the_audit(
    admin_client: httpx.AsyncClient, admin_app: FastAPI, rb01_request: dict[str, Any]
) -> None:
    """Rules.md 3.1: free text is not matched in v1, and the audit shows how much of it came."""
    rb01_request["prefetch"]["conditions"]["entry"].append(
        {
            "resource": {
                "resourceType": "Condition",
                "id": "free-text",
                "subject": {"reference": "Patient/p1"},
                "code": {"text": "tingling in both feet since spring"},
            }
        }
    )
    response = await admin_client.post("/cds-services/back-to-foot", json=rb01_request)
    assert response.status_code == 200
    assert await _skipped_counts(admin_app) == [1]


async def test_a_coded_chart_leaves_nothing_skipped_in_the_audit(
    admin_client: httpx.AsyncClient, admin_app: FastAPI, rb01_request: dict[str, Any]
) -> None:
    response = await admin_client.post("/cds-services/back-to-foot", json=rb01_request)
    assert response.status_code == 200
    assert await _skipped_counts(admin_app) == [0]
