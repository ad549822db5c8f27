"""The OpenAPI document is valid, shows the CDS Hooks bodies and the statuses really sent."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate
from pydantic import SecretStr

from cds.app import create_app
from cds.settings import PROJECT_ROOT, Settings
from tests.conftest import changed, serving

pytestmark = pytest.mark.anyio

CALL = "/cds-services/{service_id}"
FEEDBACK = "/cds-services/{service_id}/feedback"


@pytest.fixture
async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def conforms(document: dict[str, Any], schema: str, value: Any) -> list[str]:
    """Every way ``value`` departs from components.schemas[schema] (empty when it conforms)."""
    root = {"components": document["components"], "$ref": f"#/components/schemas/{schema}"}
    return [error.message for error in OAS31Validator(root).iter_errors(value)]


def statuses(document: dict[str, Any], method: str, path: str) -> set[int]:
    return {int(code) for code in document["paths"][path][method]["responses"]}


def body_schema(operation: dict[str, Any], key: str = "requestBody") -> str:
    ref: str = operation[key]["content"]["application/json"]["schema"]["$ref"]
    return ref.rsplit("/", 1)[-1]


async def test_the_document_is_a_valid_openapi_document(document: dict[str, Any]) -> None:
    validate(document)


async def test_no_route_promises_a_422_the_service_never_sends(document: dict[str, Any]) -> None:
    codes = [
        c for ops in document["paths"].values() for op in ops.values() for c in op["responses"]
    ]
    assert "422" not in codes
    assert "HTTPValidationError" not in document["components"]["schemas"]


async def test_a_service_call_shows_the_cds_hooks_request_the_cards_and_its_real_errors(
    document: dict[str, Any],
) -> None:
    call = document["paths"][CALL]["post"]
    assert body_schema(call) == "HookRequest"
    assert call["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/CdsResponse"
    )
    errors = {400, 401, 404, 408, 412, 413, 415, 431, 500, 503}
    assert statuses(document, "post", CALL) == {200} | errors
    card = document["components"]["schemas"]["Card"]
    assert {"summary", "indicator", "source", "suggestions", "selectionBehavior"} <= set(
        card["properties"]
    )


async def test_feedback_shows_its_body_and_its_answer(document: dict[str, Any]) -> None:
    feedback = document["paths"][FEEDBACK]["post"]
    assert body_schema(feedback) == "FeedbackRequest"
    item = document["components"]["schemas"]["FeedbackItem"]
    assert {"card", "outcome", "acceptedSuggestions", "overrideReason", "outcomeTimestamp"} <= set(
        item["properties"]
    )
    assert statuses(document, "post", FEEDBACK) == {200, 400, 401, 404, 408, 413, 415, 431, 503}


async def test_a_real_call_and_its_cards_conform_to_the_documented_bodies(
    client: httpx.AsyncClient, document: dict[str, Any], rb01_request: dict[str, Any]
) -> None:
    assert conforms(document, "HookRequest", rb01_request) == []
    response = await client.post("/cds-services/back-to-foot", json=rb01_request)
    assert response.status_code in statuses(document, "post", CALL)
    cards = response.json()
    assert cards["cards"]
    assert conforms(document, "CdsResponse", cards) == []
    card = cards["cards"][0]
    feedback = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "accepted",
                "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
                "outcomeTimestamp": "2026-06-01T12:01:00Z",
            }
        ]
    }
    assert conforms(document, "FeedbackRequest", feedback) == []
    answer = await client.post("/cds-services/back-to-foot/feedback", json=feedback)
    assert answer.status_code == 200
    assert conforms(document, "FeedbackResponse", answer.json()) == []
    discovery = await client.get("/cds-services")
    assert conforms(document, "DiscoveryResponse", discovery.json()) == []


async def test_a_real_error_is_a_documented_status_with_an_operation_outcome(
    client: httpx.AsyncClient, document: dict[str, Any], rb01_request: dict[str, Any]
) -> None:
    missing = await client.post("/cds-services/no-such-service", json=rb01_request)
    invalid = await client.post("/cds-services/back-to-foot", json={"hook": "patient-view"})
    for response in (missing, invalid):
        assert response.status_code in statuses(document, "post", CALL)
        assert conforms(document, "OperationOutcome", response.json()) == []


async def test_the_admin_report_is_documented_with_its_body(
    settings: Settings, document: dict[str, Any]
) -> None:
    assert statuses(document, "get", "/admin/report") == {200, 400, 401, 404, 503}
    token = "admin-token-for-the-openapi-test"
    async with serving(create_app(changed(settings, admin_token=SecretStr(token)))) as client:
        report = await client.get("/admin/report", headers={"Authorization": f"Bearer {token}"})
    assert conforms(document, "RuleReport", report.json()) == []


def _production(settings: Settings, **changes: Any) -> FastAPI:
    return create_app(
        changed(
            settings,
            env="production",
            patient_hash_key=SecretStr("p" * 32),
            trusted_issuers={"https://ehr.example.org": "https://ehr.example.org/jwks.json"},
            **changes,
        )
    )


async def test_production_serves_the_document_and_the_docs_page_only_when_asked(
    settings: Settings,
) -> None:
    async with serving(_production(settings)) as client:
        assert (await client.get("/openapi.json")).status_code == 200
        assert (await client.get("/docs")).status_code == 404
    async with serving(_production(settings, api_docs_enabled=True)) as client:
        assert (await client.get("/docs")).status_code == 200


async def test_development_serves_the_interactive_docs(client: httpx.AsyncClient) -> None:
    assert (await client.get("/docs")).status_code == 200


def test_the_readme_points_to_the_interactive_docs() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert "/docs" in readme
    assert "/openapi.json" in readme
