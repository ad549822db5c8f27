"""Direct rule tests through the hook API: one app on the session's catalogue, "now" fixed.

The tests name a patient's resources relative to ``NOW`` and read the cards back by rule id, so
they hold whatever shape evaluation takes inside (clauses, caches, module names).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from cds.app import create_app
from cds.catalogue import Catalogue
from cds.settings import Settings
from tests.requests import ICD10, PATIENT_ID, SNOMED, condition, hook_request, patient

NOW = datetime.fromisoformat("2026-06-01T12:00:00+00:00")
LOINC = "http://loinc.org"
CPT = "http://www.ama-assn.org/go/cpt"
UCUM = "http://unitsofmeasure.org"


def ago(days: float = 0, *, seconds: float = 0) -> str:
    """The FHIR dateTime ``days`` (and ``seconds``) before ``NOW``; negative is later."""
    return (NOW - timedelta(days=days, seconds=seconds)).isoformat()


def born(years: int, *, days_later: int = 0) -> dict[str, Any]:
    """A Patient whose ``years``-th birthday is today (``days_later``: born that much later)."""
    birthday = NOW.date().replace(year=NOW.year - years) + timedelta(days=days_later)
    return patient(birth_date=birthday.isoformat())


def icd(cid: str, code: str, display: str, onset: str, **extra: Any) -> dict[str, Any]:
    """An active, confirmed ICD-10-CM Condition of the test patient."""
    return condition(cid, ICD10, code, display, onset, **extra)


def sciatica_with_tingling(onset_days: int = 20) -> list[dict[str, Any]]:
    """New sciatica and tingling: RB-01's patient."""
    return [
        icd("radic", "M54.16", "Radiculopathy, lumbar region", ago(onset_days)),
        icd("tingling", "R20.2", "Paresthesia of skin", ago(5)),
    ]


def quantity(oid: str, code: str, value: float, unit: str, when: str) -> dict[str, Any]:
    """A final LOINC Observation with a UCUM quantity."""
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "effectiveDateTime": when,
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
    }


def weight(oid: str, kg: float, when: str) -> dict[str, Any]:
    return quantity(oid, "29463-7", kg, "kg", when)


def procedure(pid: str, system: str, code: str, when: str) -> dict[str, Any]:
    """A completed Procedure, such as physiotherapy or a lumbar MRI."""
    return {
        "resourceType": "Procedure",
        "id": pid,
        "status": "completed",
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "code": {"coding": [{"system": system, "code": code}]},
        "performedDateTime": when,
    }


def referral(sid: str, code: str, when: str) -> dict[str, Any]:
    """An active SNOMED ServiceRequest (a referral) authored at ``when``."""
    return {
        "resourceType": "ServiceRequest",
        "id": sid,
        "status": "active",
        "intent": "order",
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "code": {"coding": [{"system": SNOMED, "code": code}]},
        "authoredOn": when,
    }


def rule_of(card: dict[str, Any]) -> str:
    code: str = card["source"]["topic"]["code"]
    return code


def suggestion_labels(card: dict[str, Any]) -> list[str]:
    """The labels of what the card offers, in order."""
    return [s["label"] for s in card.get("suggestions", [])]


def priorities(card: dict[str, Any]) -> set[str]:
    """The priorities of the ServiceRequests the card's suggestions would create."""
    return {
        action["resource"]["priority"]
        for s in card.get("suggestions", [])
        for action in s.get("actions", [])
        if "resource" in action
    }


@dataclass
class HookCalls:
    """Calls one app's services and hands back the cards."""

    client: httpx.AsyncClient
    discovery: dict[str, dict[str, Any]]

    async def cards(
        self, service_id: str, *, patient: dict[str, Any] | None = None, **found: list[Any]
    ) -> list[dict[str, Any]]:
        """The cards ``service_id`` answers, in order, for a patient with ``found`` under its
        prefetch keys (``conditions=[...]``; every other key answered empty)."""
        given = {**found, "patient": [patient or born(50)]}
        body = hook_request(self.discovery[service_id], given)
        answer = await self.client.post(f"/cds-services/{service_id}", json=body)
        assert answer.status_code == 200, answer.text
        cards: list[dict[str, Any]] = answer.json()["cards"]
        return cards

    async def fired(self, service_id: str, **given: Any) -> dict[str, dict[str, Any]]:
        """The cards by rule id."""
        return {rule_of(card): card for card in await self.cards(service_id, **given)}


@asynccontextmanager
async def hook_calls(catalogue: Catalogue, folder: Path) -> AsyncIterator[HookCalls]:
    """An app on ``catalogue`` evaluating as of ``NOW``, its database in ``folder``."""
    settings = Settings(
        env="test",
        database_url=f"sqlite+aiosqlite:///{folder / 'cds.db'}",
        fixed_now=NOW.isoformat(),
    )
    app = create_app(settings, catalogue=catalogue)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://cds.example.org") as c:
            services = (await c.get("/cds-services")).json()["services"]
            yield HookCalls(c, {s["id"]: s for s in services})
