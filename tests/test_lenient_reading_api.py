"""What real EHRs send, read leniently through the API: repaired shapes fire their rules and are
counted; a draft order or a required key that cannot be read is refused out loud."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from cds.app import create_app
from cds.catalogue import Catalogue
from cds.clock import clock_for
from cds.data.patient_data import read_prefetch
from cds.errors import MissingData
from cds.settings import PROJECT_ROOT, Settings
from cds.store.schema import invocations
from tests.conftest import serving
from tests.patient_data import fhir_access, hook_request

pytestmark = pytest.mark.anyio

CASES = PROJECT_ROOT / "tests" / "cases"
SIGN, SELECT = "back-to-foot-order-sign", "back-to-foot-order-select"
ORDERS = CASES / SIGN
PATIENT_VIEW = CASES / "back-to-foot"
# The sandbox's Rx tabs (modelled as project cases): draftOrders without Bundle.type, and
# MedicationRequest.category as a single object. (service, case) each.
RX_SIGN = (SIGN, "os-04-sandbox-rx-sign-single-category")
RX_VIEW = (SELECT, "os-04-sandbox-rx-view-single-category")
SANDBOX_CASES = [RX_SIGN, RX_VIEW]


def case(folder: Any, name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((folder / f"{name}.json").read_text())
    return loaded


@pytest.fixture
def app(settings: Settings, catalogue: Catalogue) -> FastAPI:
    return create_app(settings, catalogue=catalogue)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(app) as c:
        yield c


async def post(
    app: FastAPI, client: httpx.AsyncClient, service: str, found: dict[str, Any]
) -> httpx.Response:
    app.state.parts.clock = clock_for(found["now"])
    return await client.post(f"/cds-services/{service}", json=found["request"])


async def audit_rows(app: FastAPI) -> list[dict[str, Any]]:
    await app.state.parts.audit.flush()
    async with app.state.parts.store.engine.connect() as conn:
        result = await conn.execute(sa.select(invocations).order_by(invocations.c.id))
        return [dict(row) for row in result.mappings()]


@pytest.mark.parametrize(("service", "name"), SANDBOX_CASES)
async def test_the_sandbox_rx_requests_fire_os_04_with_category_read_as_a_list(
    app: FastAPI, client: httpx.AsyncClient, service: str, name: str
) -> None:
    found = case(CASES / service, name)
    sent = found["request"]["context"]["draftOrders"]
    assert "type" not in sent
    assert isinstance(sent["entry"][0]["resource"]["category"], dict)
    response = await post(app, client, service, found)
    assert response.status_code == 200, response.text
    fired = [card["source"]["topic"]["code"] for card in response.json()["cards"]]
    assert fired == ["OS-04"]


async def test_each_repair_is_counted_in_the_metrics_and_the_audit_row(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    for service, name in SANDBOX_CASES:
        await post(app, client, service, case(CASES / service, name))
    metrics = (await client.get("/metrics")).text
    assert (
        'cds_repaired_elements_total{element="category",resource_type="MedicationRequest"} 2.0'
        in metrics
    )
    rows = await audit_rows(app)
    assert [(row["status_code"], row["repaired_element_count"]) for row in rows] == [
        (200, 1),
        (200, 1),
    ]
    assert [row["skipped_resource_count"] for row in rows] == [0, 0]


async def test_lenient_shapes_in_prefetch_keep_the_cauda_equina_card(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    response = await post(app, client, "back-to-foot", case(PATIENT_VIEW, "rf-01-lenient-shapes"))
    assert response.status_code == 200, response.text
    assert "RF-01" in {card["source"]["topic"]["code"] for card in response.json()["cards"]}
    (row,) = await audit_rows(app)
    # gender once, and code.coding in each of the four Conditions the value sets match.
    assert row["repaired_element_count"] == 5


async def test_a_draft_order_that_cannot_be_read_is_a_400_naming_its_position_never_its_id(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    found = case(ORDERS, "draft-order-unreadable-is-400")
    response = await post(app, client, SIGN, found)
    assert response.status_code == 400
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    (issue,) = outcome["issue"]
    assert issue["expression"] == ["context.draftOrders.entry[0].resource"]
    assert "MedicationRequest" in issue["diagnostics"]
    assert "medicationCodeableConcept" in issue["diagnostics"]
    assert "request-123" not in response.text
    (row,) = await audit_rows(app)
    assert row["status_code"] == 400


async def test_an_order_sign_entry_holding_no_resource_is_a_400_too(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    found = case(ORDERS, RX_SIGN[1])
    found["request"]["context"]["draftOrders"]["entry"].append({"fullUrl": "urn:uuid:x"})
    response = await post(app, client, SIGN, found)
    assert response.status_code == 400
    assert response.json()["issue"][0]["expression"] == ["context.draftOrders.entry[1].resource"]


async def test_an_unselected_draft_is_not_read_at_order_select(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """order-select: the rules read the selected drafts; an unreadable other one is not theirs."""
    found = case(CASES / SELECT, RX_VIEW[1])
    found["request"]["context"]["draftOrders"]["entry"].append(
        {"resource": {"resourceType": "ServiceRequest", "id": "other", "status": ["a", "b"]}}
    )
    response = await post(app, client, SELECT, found)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("rf-01-unreadable-patient-is-412", "patient"),
        ("rf-01-unreadable-condition-is-412", "conditions"),
    ],
)
async def test_a_required_key_that_cannot_be_read_is_a_412_naming_it_without_a_fhir_server(
    app: FastAPI, client: httpx.AsyncClient, name: str, key: str
) -> None:
    response = await post(app, client, "back-to-foot", case(PATIENT_VIEW, name))
    assert response.status_code == 412, response.text
    (issue,) = response.json()["issue"]
    assert issue["expression"] == [f"prefetch.{key}"]
    assert "cannot be read as FHIR R4" in issue["diagnostics"]
    assert "the request has no fhirServer" in issue["diagnostics"]


async def test_an_unreadable_key_is_read_again_from_the_fhir_server_only_once() -> None:
    """A key read from prefetch is fetched again; one the server itself answered is not."""
    request = hook_request(
        {"patientId": "p1"},
        prefetch={"patient": {"resourceType": "Patient"}, "conditions": None},
        fhir_server="https://ehr.example.org/fhir",
        token="s3cr3t",
    )
    templates = {
        "patient": "Patient/{{context.patientId}}",
        "conditions": "Condition?patient={{context.patientId}}",
    }
    async with aclosing(fhir_access(Settings(env="test"))) as access:
        gathering = read_prefetch(templates, templates, request, access)
    assert gathering.jobs == []
    assert gathering.refetch({"patient": "a Patient in it cannot be read"})
    assert [(job.key, str(job.url)) for job in gathering.jobs] == [
        ("patient", "https://ehr.example.org/fhir/Patient/p1")
    ]
    assert "patient" not in gathering.data.resources
    gathering.fetched.add("patient")
    assert not gathering.refetch({"patient": "a Patient in it cannot be read"})
    assert gathering.data.unavailable["patient"] == (
        "a Patient in it cannot be read; as the FHIR server sent it"
    )
    with pytest.raises(MissingData):
        gathering.finish()
