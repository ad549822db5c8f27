"""With CDS_FIXED_NOW (the demo), rules see the fixed instant but the store's records carry the
real time, so `cds report` with its default window (the last 30 days) counts the demo's cards."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from cds.app import create_app
from cds.cli import main
from cds.demo import load_demo
from cds.demo_server import DEMO_NOW, demo_settings
from cds.settings import Settings
from cds.store.schema import feedback, invocations, issued_cards

PATIENT = "demo-s06"  # cauda equina: RF-01, evaluated as of the demo's fixed instant


async def _demo_call_with_feedback(settings: Settings) -> dict[str, list[Any]]:
    app = create_app(settings)
    service = app.state.parts.catalogue.services["back-to-foot"]
    body = load_demo().hook_request(
        PATIENT, "patient-view", dict(service.prefetch), fhir_server=None, with_prefetch=True
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://cds.example.org") as c:
            answer = await c.post("/cds-services/back-to-foot", json=body)
            assert answer.status_code == 200, answer.text
            (card,) = [
                card
                for card in answer.json()["cards"]
                if card["source"]["topic"]["code"] == "RF-01"
            ]
            sent = await c.post(
                "/cds-services/back-to-foot/feedback",
                json={
                    "feedback": [
                        {
                            "card": card["uuid"],
                            "outcome": "overridden",
                            "outcomeTimestamp": DEMO_NOW,
                        }
                    ]
                },
            )
            assert sent.status_code == 200, sent.text
        await app.state.parts.audit.flush()
        async with app.state.parts.store.engine.connect() as conn:
            return {
                "audit": list((await conn.execute(sa.select(invocations.c.received_at))).scalars()),
                "cards": list((await conn.execute(sa.select(issued_cards.c.issued_at))).scalars()),
                "feedback": list((await conn.execute(sa.select(feedback.c.received_at))).scalars()),
            }


def test_the_store_stamps_real_time_while_the_rules_see_the_fixed_instant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}"
    monkeypatch.setenv("CDS_DATABASE_URL", url)
    settings = demo_settings(database_url=url)
    assert settings.fixed_now == DEMO_NOW
    before = datetime.now(UTC)
    stamps = asyncio.run(_demo_call_with_feedback(settings))
    after = datetime.now(UTC)
    assert {name: len(values) for name, values in stamps.items()} == {
        "audit": 1,
        "cards": 1,
        "feedback": 1,
    }
    for name, values in stamps.items():
        stamp = values[0].replace(tzinfo=UTC) if values[0].tzinfo is None else values[0]
        assert before <= stamp <= after, name

    # The report's default window ends now: the demo's card and its feedback are in it.
    assert main(["report", "--json"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out[out.index("{") :])
    (rf01,) = [rule for rule in report["rules"] if rule["rule_id"] == "RF-01"]
    assert (rf01["times_shown"], rf01["overridden"]) == (1, 1)
