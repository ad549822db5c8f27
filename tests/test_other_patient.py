"""Another patient's data is never used: skipped, counted and logged without ids."""

from __future__ import annotations

import copy
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from cds.app import create_app
from cds.catalogue import Catalogue
from cds.clock import clock_for
from cds.settings import PROJECT_ROOT, Settings
from cds.store import Store
from cds.store.schema import invocations
from cds.subjects import OTHER_PATIENT, names_other_patient, patient_id_of
from tests.conftest import serving

pytestmark = pytest.mark.anyio
CASES = PROJECT_ROOT / "tests" / "cases"
OTHER = "someone-else"
FORMS = {
    "relative": f"Patient/{OTHER}",
    "absolute": f"https://ehr.example.org/fhir/Patient/{OTHER}",
    "versioned": f"Patient/{OTHER}/_history/2",
}


@pytest.mark.parametrize(
    ("reference", "named"),
    [
        ("Patient/p1", "p1"),
        ("https://ehr.example.org/fhir/R4/Patient/p1", "p1"),
        ("Patient/p1/_history/7", "p1"),
        ("https://ehr.example.org/fhir/Patient/p1/_history/7", "p1"),
        ("Group/g1", None),
        ("#contained-patient", None),
        ("urn:uuid:2b3c0d0e-1f4a-4b8e-9c1d-5e6f7a8b9c0d", None),
        ("Patient/", None),
    ],
)
def test_a_reference_names_a_patient_by_its_id_alone(reference: str, named: str | None) -> None:
    assert patient_id_of(reference) == named


def test_only_a_subject_or_patient_naming_another_patient_id_counts_as_foreign() -> None:
    assert names_other_patient({"subject": {"reference": "Patient/p2"}}, "p1")
    assert names_other_patient({"patient": {"reference": "Patient/p2/_history/1"}}, "p1")
    assert not names_other_patient({"subject": {"reference": "https://x.org/Patient/p1"}}, "p1")
    assert not names_other_patient({"subject": {"display": "Someone"}}, "p1")
    assert not names_other_patient({}, "p1")


def _case(name: str) -> tuple[str, dict[str, Any]]:
    (path,) = CASES.glob(f"*/{name}.json")
    case = json.loads(path.read_text())
    return case["now"], case["request"]


def _resources(request: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for value in [*request.get("prefetch", {}).values(), request["context"].get("draftOrders")]:
        if isinstance(value, dict):
            entries = (
                value.get("entry", [])
                if value["resourceType"] == "Bundle"
                else [{"resource": value}]
            )
            found += [e["resource"] for e in entries]
    return found


def _as_statement(request: dict[str, Any]) -> None:
    """The metformin MedicationRequest recorded as a MedicationStatement instead."""
    for raw in _resources(request):
        if raw["resourceType"] == "MedicationRequest":
            raw.update(resourceType="MedicationStatement", effectiveDateTime="2026-01-10")
            raw.pop("intent")


def _as_report(request: dict[str, Any]) -> None:
    """The completed needle EMG on file as a final DiagnosticReport instead of a Procedure."""
    procedure = request["prefetch"].pop("procedures")["entry"][0]["resource"]
    report = {
        "resourceType": "DiagnosticReport",
        "id": "dr-emg",
        "status": "final",
        "subject": procedure["subject"],
        "code": procedure["code"],
        "effectiveDateTime": procedure["performedDateTime"],
    }
    request["prefetch"]["procedures"] = {"resourceType": "Bundle", "type": "searchset"}
    request["prefetch"]["reports"] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": report}],
    }


def _unchanged(_: dict[str, Any]) -> None:
    return None


# (resource type, golden case, how to adapt it, the rule it decides, fires with own data)
TYPES: list[tuple[str, str, Callable[[dict[str, Any]], None], str, bool]] = [
    ("Condition", "s06-cauda-equina", _unchanged, "RF-01", True),
    ("Observation", "rf-03-positive-measured-weight-loss", _unchanged, "RF-03", True),
    ("MedicationRequest", "b12-01-positive-metformin-by-text", _unchanged, "B12-01", True),
    ("MedicationStatement", "b12-01-positive-metformin-by-text", _as_statement, "B12-01", True),
    ("Procedure", "rb-03-negative-edx-done", _unchanged, "RB-03", False),
    ("ServiceRequest", "mim-03-negative-vascular-referral", _unchanged, "MIM-03", False),
    ("DiagnosticReport", "rb-03-negative-edx-done", _as_report, "RB-03", False),
]


def _to_other_patient(request: dict[str, Any], resource_type: str, reference: str) -> int:
    moved = 0
    for raw in _resources(request):
        if raw["resourceType"] == resource_type and "subject" in raw:
            raw["subject"] = {"reference": reference}
            moved += 1
    return moved


@pytest.fixture
async def app(settings: Settings, catalogue: Catalogue) -> AsyncIterator[FastAPI]:
    application = create_app(settings, catalogue=catalogue)
    async with application.router.lifespan_context(application):
        yield application


async def _call(app: FastAPI, now: str, request: dict[str, Any]) -> httpx.Response:
    app.state.parts.clock = clock_for(now)
    service = {
        "patient-view": "back-to-foot",
        "order-sign": "back-to-foot-order-sign",
        "order-select": "back-to-foot-order-select",
    }[request["hook"]]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://cds.example.org") as c:
        return await c.post(f"/cds-services/{service}", json=request)


def _fired(response: httpx.Response) -> set[str]:
    assert response.status_code == 200, response.text
    return {card["source"]["topic"]["code"] for card in response.json()["cards"]}


async def _skipped_metric(app: FastAPI, resource_type: str) -> float:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://cds.example.org") as c:
        text = (await c.get("/metrics")).text
    label = f'cds_skipped_resources_total{{resource_type="{resource_type}"}}'
    lines = [line for line in text.splitlines() if line.startswith(label)]
    return float(lines[0].split()[-1]) if lines else 0.0


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize(
    ("resource_type", "case", "adapt", "rule", "fires"), TYPES, ids=[t[0] for t in TYPES]
)
async def test_a_prefetched_resource_naming_another_patient_is_skipped_and_counted(  # noqa: PLR0917
    app: FastAPI,
    resource_type: str,
    case: str,
    adapt: Callable[[dict[str, Any]], None],
    rule: str,
    fires: bool,
    form: str,
) -> None:
    now, request = _case(case)
    adapt(request)
    assert (rule in _fired(await _call(app, now, copy.deepcopy(request)))) is fires
    assert await _skipped_metric(app, resource_type) == 0
    moved = _to_other_patient(request, resource_type, FORMS[form])
    assert moved >= 1
    assert (rule in _fired(await _call(app, now, request))) is not fires
    assert await _skipped_metric(app, resource_type) == moved


async def test_another_patients_cauda_equina_never_fires_rf01_and_the_audit_counts_it(
    settings: Settings, catalogue: Catalogue, caplog: pytest.LogCaptureFixture
) -> None:
    now, request = _case("s06-cauda-equina")
    conditions = [r for r in _resources(request) if r["resourceType"] == "Condition"]
    _to_other_patient(request, "Condition", FORMS["absolute"])
    application = create_app(settings, catalogue=catalogue)
    with caplog.at_level(logging.DEBUG):
        async with serving(application):
            answer = await _call(application, now, request)
    assert answer.json() == {"cards": []}
    async with Store.from_settings(settings) as store, store.engine.connect() as conn:
        (row,) = list(await conn.execute(sa.select(invocations)))
    assert row.skipped_resource_count == len(conditions)
    # One line per call for these skips: resource type, reason and count, never an id.
    skipped = [
        getattr(record, "fields", {})
        for record in caplog.records
        if record.getMessage() == "FHIR resources skipped"
    ]
    assert {"resource_type": "Condition", "reason": OTHER_PATIENT, "count": len(conditions)} in (
        skipped
    )
    logged = caplog.text
    assert OTHER not in logged
    # As whole words: a short id such as "c60" also occurs inside hex addresses in debug lines.
    assert not [c["id"] for c in conditions if re.search(rf"(?<![\w-]){c['id']}(?![\w-])", logged)]


async def test_a_draft_order_naming_another_patient_is_skipped_and_counted(
    app: FastAPI,
) -> None:
    """Skipped like a resource that cannot be read, except that an unreadable draft order is a
    400 (tests/test_lenient_reading_api.py): another patient's draft is readable, just not ours."""
    now, request = _case("os-03-edx-for-isolated-back-pain")
    assert "OS-03" in _fired(await _call(app, now, copy.deepcopy(request)))
    draft = request["context"]["draftOrders"]["entry"][0]["resource"]
    draft["subject"] = {"reference": FORMS["versioned"]}
    assert "OS-03" not in _fired(await _call(app, now, request))
    assert await _skipped_metric(app, "ServiceRequest") == 1


async def test_a_prefetched_patient_who_is_someone_else_without_a_server_answers_412(
    app: FastAPI,
) -> None:
    now, request = _case("s06-cauda-equina")
    request["prefetch"]["patient"]["id"] = OTHER
    answer = await _call(app, now, request)
    assert answer.status_code == 412
    outcome = answer.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "patient" in outcome["issue"][0]["diagnostics"]
    assert OTHER not in answer.text
