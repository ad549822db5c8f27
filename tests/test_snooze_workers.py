"""A snooze lives in the database, so it holds across workers: with ``cds serve`` running two
workers on PostgreSQL, an override received by one worker hides the card on the other."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from cds.settings import PROJECT_ROOT
from tests.pgserver import PgServer
from tests.served import cds_serve

RB01 = PROJECT_ROOT / "tests/cases/back-to-foot/rb-01-foot-paraesthesia-with-low-back-pain.json"
REASONS = "https://footpath-cds.example.org/CodeSystem/override-reason"
HOOK, FEEDBACK = "/cds-services/back-to-foot", "/cds-services/back-to-foot/feedback"
# Each worker counts only its own feedback when no multiprocess metrics directory is set: a
# connection whose /metrics lacks this line was accepted by the worker the feedback missed.
FEEDBACK_SEEN = 'cds_feedback_items_total{result="matched",service="back-to-foot"} 1.0'
# Connections tried until one reaches the other worker (the kernel picks the worker).
CONNECTIONS = 60


def _rules(client: httpx.Client, request: dict[str, Any]) -> list[str]:
    response = client.post(HOOK, json=request)
    assert response.status_code == 200, response.text
    return [card["source"]["topic"]["code"] for card in response.json()["cards"]]


@pytest.mark.postgres
def test_a_snooze_set_through_one_worker_hides_the_card_on_the_other(
    tmp_path: Path, postgres_server: PgServer
) -> None:
    case = json.loads(RB01.read_text(encoding="utf-8"))
    request = case["request"]
    env = {
        "CDS_ENV": "test",
        "CDS_WORKERS": "2",
        "CDS_DATABASE_URL": postgres_server.create_database(),
        "CDS_FIXED_NOW": case["now"],
    }
    with cds_serve(tmp_path / "server.log", **env) as server:
        # One connection, so one worker, shows the card and receives the override.
        with httpx.Client(base_url=server.url, timeout=30) as first:
            cards = first.post(HOOK, json=request).json()["cards"]
            (card,) = [c for c in cards if c["source"]["topic"]["code"] == "RB-01"]
            override = {
                "card": card["uuid"],
                "outcome": "overridden",
                "overrideReason": {
                    "reason": {"system": REASONS, "code": "patient-declined", "display": "Declined"}
                },
                "outcomeTimestamp": datetime.now(UTC).isoformat(),
            }
            stored = first.post(FEEDBACK, json={"feedback": [override]}).json()
            assert stored["stored"] == 1
            assert "RB-01" not in _rules(first, request)
            assert FEEDBACK_SEEN in first.get("/metrics").text
        answers_on_the_other = []
        for tried in range(CONNECTIONS):
            with httpx.Client(base_url=server.url, timeout=30) as fresh:
                rules = _rules(fresh, request)
                other = FEEDBACK_SEEN not in fresh.get("/metrics").text
            assert "RB-01" not in rules
            if other:
                answers_on_the_other.append(rules)
                print(f"\nthe second worker answered connection {tried + 1}")
                break
    assert answers_on_the_other, f"no connection of {CONNECTIONS} reached the second worker"
