"""Service calls: the request envelope and each hook's context are validated, errors are 400."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from tests.requests import hook_request

pytestmark = pytest.mark.anyio


async def _entry(client: httpx.AsyncClient, service: str, hook: str) -> dict[str, Any]:
    entries = (await client.get("/cds-services")).json()["services"]
    return next(e for e in entries if e["id"] == service and e["hook"] == hook)


async def _post(
    client: httpx.AsyncClient, body: Any, service: str = "back-to-foot"
) -> httpx.Response:
    return await client.post(f"/cds-services/{service}", json=body)


def _outcome_of(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["severity"] == "error"
    assert body["issue"][0]["diagnostics"]
    return body


async def test_every_advertised_service_accepts_a_minimal_valid_call(
    client: httpx.AsyncClient,
) -> None:
    """D-05: each discovery entry accepts POST with its hook."""
    for entry in (await client.get("/cds-services")).json()["services"]:
        context: dict[str, Any] = {"userId": "Practitioner/example", "patientId": "p1"}
        if entry["hook"] in ("order-sign", "order-select"):
            draft = {
                "resourceType": "ServiceRequest",
                "id": "d1",
                "status": "draft",
                "intent": "order",
                "subject": {"reference": "Patient/p1"},
            }
            context["draftOrders"] = {"resourceType": "Bundle", "entry": [{"resource": draft}]}
            if entry["hook"] == "order-select":
                context["selections"] = ["ServiceRequest/d1"]
        response = await _post(client, hook_request(entry, context=context), entry["id"])
        assert response.status_code == 200, response.text
        assert isinstance(response.json()["cards"], list)


@pytest.mark.parametrize("missing", ["hook", "hookInstance", "context"])
async def test_a_request_without_a_required_member_is_a_400(
    client: httpx.AsyncClient, missing: str
) -> None:
    """R-02, E-02."""
    body = hook_request(await _entry(client, "back-to-foot", "patient-view"))
    del body[missing]
    response = await _post(client, body)
    assert response.status_code == 400
    assert missing in _outcome_of(response)["issue"][0]["diagnostics"]


async def test_malformed_json_is_a_400_operation_outcome_not_a_422(
    client: httpx.AsyncClient,
) -> None:
    """E-02."""
    response = await client.post(
        "/cds-services/back-to-foot",
        content=b'{"hook": "patient-view",',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert "not valid JSON" in _outcome_of(response)["issue"][0]["diagnostics"]


async def test_a_body_that_is_not_an_object_is_a_400(client: httpx.AsyncClient) -> None:
    """R-02."""
    response = await _post(client, ["patient-view"])
    assert response.status_code == 400
    _outcome_of(response)


async def test_a_hook_the_service_does_not_answer_is_a_400_not_a_404(
    client: httpx.AsyncClient,
) -> None:
    """R-03 (cf. cqf-ruler#598: 404 for body problems confuses EHRs)."""
    body = hook_request(await _entry(client, "back-to-foot", "patient-view"))
    body["hook"] = "order-sign"
    response = await _post(client, body)
    assert response.status_code == 400
    assert _outcome_of(response)["issue"][0]["expression"] == ["hook"]


async def test_an_unknown_service_is_a_404(client: httpx.AsyncClient) -> None:
    """E-04."""
    response = await _post(client, {"hook": "patient-view"}, service="no-such-service")
    assert response.status_code == 404
    _outcome_of(response)


async def test_get_on_a_service_is_a_405_operation_outcome(client: httpx.AsyncClient) -> None:
    """R-01."""
    response = await client.get("/cds-services/back-to-foot")
    assert response.status_code == 405
    _outcome_of(response)


@pytest.mark.parametrize(
    ("context", "field"),
    [
        ({"patientId": "p1"}, "context.userId"),
        ({"userId": "Practitioner/example"}, "context.patientId"),
        ({"userId": "example", "patientId": "p1"}, "context.userId"),
        ({"userId": "Device/1", "patientId": "p1"}, "context.userId"),
    ],
)
async def test_a_patient_view_context_missing_or_malformed_fields_is_a_400(
    client: httpx.AsyncClient, context: dict[str, Any], field: str
) -> None:
    """H-01, R-10."""
    body = hook_request(await _entry(client, "back-to-foot", "patient-view"), context=context)
    response = await _post(client, body)
    assert response.status_code == 400
    assert field in _outcome_of(response)["issue"][0]["expression"]


async def test_order_select_selections_must_resolve_in_draft_orders(
    client: httpx.AsyncClient,
) -> None:
    """H-02."""
    entry = await _entry(client, "back-to-foot-order-select", "order-select")
    context = {
        "userId": "Practitioner/example",
        "patientId": "p1",
        "selections": ["ServiceRequest/missing"],
        "draftOrders": {"resourceType": "Bundle", "entry": []},
    }
    response = await _post(client, hook_request(entry, context=context), entry["id"])
    assert response.status_code == 400
    assert "selections" in _outcome_of(response)["issue"][0]["diagnostics"]


async def test_fhir_authorization_without_fhir_server_is_a_400(client: httpx.AsyncClient) -> None:
    """R-05."""
    body = hook_request(await _entry(client, "back-to-foot", "patient-view"))
    body["fhirAuthorization"] = {
        "access_token": "opaque-token-value",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "user/Patient.read",
        "subject": "cds-service",
    }
    response = await _post(client, body)
    assert response.status_code == 400
    assert "opaque-token-value" not in response.text


@pytest.mark.parametrize(
    ("member", "value"),
    [("token_type", "MAC"), ("expires_in", "300"), ("scope", "")],
)
async def test_a_malformed_fhir_authorization_is_a_400(
    client: httpx.AsyncClient, member: str, value: Any
) -> None:
    """R-07."""
    body = hook_request(await _entry(client, "back-to-foot", "patient-view"))
    body["fhirServer"] = "https://ehr.example.org/fhir"
    body["fhirAuthorization"] = {
        "access_token": "opaque-token-value",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "user/Patient.read",
        "subject": "cds-service",
    }
    body["fhirAuthorization"][member] = value
    response = await _post(client, body)
    assert response.status_code == 400
    assert "opaque-token-value" not in response.text


async def test_a_bearer_token_type_is_accepted_in_any_case(client: httpx.AsyncClient) -> None:
    """R-07 (RFC 6749 5.1)."""
    body = hook_request(await _entry(client, "back-to-foot", "patient-view"))
    body["fhirServer"] = "https://ehr.example.org/fhir"
    body["fhirAuthorization"] = {
        "access_token": "opaque-token-value",
        "token_type": "bearer",
        "expires_in": 300,
        "scope": "user/Patient.read",
        "subject": "cds-service",
    }
    response = await _post(client, body)
    assert response.status_code == 200, response.text


async def test_unknown_members_and_extensions_are_ignored(client: httpx.AsyncClient) -> None:
    """G-06, X-01."""
    body = hook_request(await _entry(client, "back-to-foot", "patient-view"))
    body["extension"] = {"com.example.timestamp": "2017-11-27T22:13:25Z"}
    body["somethingNew"] = True
    body["context"]["somethingElse"] = 1
    response = await _post(client, body)
    assert response.status_code == 200


async def test_a_body_over_the_limit_is_a_413(app_settings_small_body: httpx.AsyncClient) -> None:
    """Input limits: a body over CDS_MAX_BODY_BYTES is refused before parsing."""
    response = await app_settings_small_body.post(
        "/cds-services/back-to-foot",
        content=b"{" + b" " * 4096 + b"}",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    _outcome_of(response)


async def test_a_non_json_media_type_is_a_415(client: httpx.AsyncClient) -> None:
    """G-07."""
    response = await client.post(
        "/cds-services/back-to-foot",
        content=b"hook=patient-view",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 415
    _outcome_of(response)


async def test_json_with_a_charset_parameter_is_accepted(client: httpx.AsyncClient) -> None:
    """G-07: axios sends application/json; charset=utf-8."""
    body = hook_request(await _entry(client, "back-to-foot", "patient-view"))
    response = await client.post(
        "/cds-services/back-to-foot",
        content=orjson.dumps(body),
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200
