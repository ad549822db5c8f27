"""order-select and order-sign take orders of any FHIR version: the rules read the ones they
understand and ignore the rest (H-02, H-03: the hook's list of order types is not comprehensive).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from cds.clock import clock_for
from cds.settings import PROJECT_ROOT
from tests.conftest import serving
from tests.examples import HOOKS_LIBRARY, load
from tests.requests import patient, searchset

pytestmark = pytest.mark.anyio

# The hook library's own examples, one per hook and FHIR version it shows.
LIBRARY_EXAMPLES = {
    ("order-select", "DSTU2"): "order-select-context-DSTU2.json",
    ("order-select", "STU3"): "order-select-request-context-STU3.json",
    ("order-select", "R4"): "order-select-request-context-R4.json",
    ("order-sign", "DSTU2"): "order-sign-context-DSTU2.jsonfrag",
    ("order-sign", "STU3"): "order-sign-request-context-STU3.json",
    ("order-sign", "R4"): "order-sign-request-context-R4.json",
}
SERVICE = {"order-select": "back-to-foot-order-select", "order-sign": "back-to-foot-order-sign"}
EARLY_MRI = (
    PROJECT_ROOT / "tests" / "cases" / "back-to-foot-order-select" / "os-01-order-select.json"
)


def _request(hook: str, context: dict[str, Any]) -> dict[str, Any]:
    return {
        "hook": hook,
        "hookInstance": "0c6f2f39-4b55-4a3f-9d39-4f7f0a3c2b10",
        "context": context,
        "prefetch": {
            "patient": patient(id=context["patientId"]),
            "conditions": searchset(),
            "procedures": searchset(),
            "servicerequests": searchset(),
            "reports": searchset(),
        },
    }


@pytest.mark.parametrize(("hook", "version"), sorted(LIBRARY_EXAMPLES))
async def test_the_hook_librarys_order_example_in_every_fhir_version_answers_200(
    client: httpx.AsyncClient, hook: str, version: str
) -> None:
    """H-02, H-03: DSTU2 MedicationOrder, STU3 and R4 MedicationRequest, NutritionOrder."""
    context = load(HOOKS_LIBRARY / LIBRARY_EXAMPLES[hook, version])["context"]
    response = await client.post(f"/cds-services/{SERVICE[hook]}", json=_request(hook, context))
    assert response.status_code == 200, response.text
    assert response.json()["cards"] == []


def _early_mri_case() -> dict[str, Any]:
    case: dict[str, Any] = json.loads(Path(EARLY_MRI).read_text(encoding="utf-8"))
    return case


# Orders the rules have no clause for, named as their FHIR version names them.
FOREIGN_ORDERS = [
    {"resourceType": "MedicationOrder", "id": "dstu2-med", "status": "draft"},
    {"resourceType": "ProcedureRequest", "id": "stu3-proc", "status": "draft", "intent": "order"},
    {"resourceType": "ReferralRequest", "id": "stu3-ref", "status": "draft"},
    {"resourceType": "CommunicationRequest", "id": "r4-comm", "status": "draft"},
    {"resourceType": "SupplyRequest", "id": "r4-supply", "status": "draft"},
    {"resourceType": "ImmunizationRecommendation", "id": "r4-imm", "date": "2026-06-01"},
]


@pytest.mark.parametrize("order", FOREIGN_ORDERS, ids=lambda o: o["resourceType"])
@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
async def test_an_order_type_the_rules_do_not_read_is_ignored_and_the_rest_evaluated(
    app: FastAPI, hook: str, order: dict[str, Any]
) -> None:
    """The early lumbar MRI still raises OS-01 beside an order of another type or version."""
    case = _early_mri_case()
    body = case["request"]
    body["hook"] = hook
    context = body["context"]
    context["draftOrders"]["entry"].append({"resource": order})
    if hook == "order-select":
        context["selections"] = [*context["selections"], f"{order['resourceType']}/{order['id']}"]
    else:
        context.pop("selections", None)
    async with serving(app) as client:
        app.state.parts.clock = clock_for(case["now"])
        response = await client.post(f"/cds-services/{SERVICE[hook]}", json=body)
    assert response.status_code == 200, response.text
    rules = {card["source"]["topic"]["code"] for card in response.json()["cards"]}
    assert "OS-01" in rules


async def test_a_selection_missing_from_draft_orders_is_still_a_400(
    client: httpx.AsyncClient,
) -> None:
    """H-02: any ``Type/id`` is accepted, but it must name an order in draftOrders."""
    context = load(HOOKS_LIBRARY / "order-select-context-DSTU2.json")["context"]
    context["selections"] = ["ProcedureRequest/not-drafted"]
    response = await client.post(
        "/cds-services/back-to-foot-order-select", json=_request("order-select", context)
    )
    assert response.status_code == 400
    assert "selections" in response.json()["issue"][0]["diagnostics"]


async def test_a_selection_that_is_not_a_relative_reference_is_a_400(
    client: httpx.AsyncClient,
) -> None:
    context = load(HOOKS_LIBRARY / "order-select-request-context-R4.json")["context"]
    context["selections"] = ["https://ehr.example.org/fhir/MedicationRequest/1"]
    response = await client.post(
        "/cds-services/back-to-foot-order-select", json=_request("order-select", context)
    )
    assert response.status_code == 400
