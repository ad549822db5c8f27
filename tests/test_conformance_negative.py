"""Negative conformance: what the service refuses, and how (checklist ids in each test)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from cds import hooks
from cds.app import create_app
from cds.catalogue import Catalogue
from cds.settings import PROJECT_ROOT, Settings
from tests.conftest import changed, serving
from tests.requests import hook_request

pytestmark = pytest.mark.anyio

ORIGIN = "https://sandbox.cds-hooks.org"


@pytest.fixture
async def small(settings: Settings, catalogue: Catalogue) -> AsyncIterator[httpx.AsyncClient]:
    """The service with a 4 KiB body limit, so a 413 is cheap to provoke."""
    app = create_app(changed(settings, max_body_bytes=4096), catalogue=catalogue)
    async with serving(app) as client:
        yield client


@pytest.fixture
async def secured(settings: Settings, catalogue: Catalogue) -> AsyncIterator[httpx.AsyncClient]:
    trusted = {"https://ehr.example.org": "https://ehr.example.org/.well-known/jwks.json"}
    app = create_app(
        changed(settings, auth_mode="required", trusted_issuers=trusted), catalogue=catalogue
    )
    async with serving(app) as client:
        yield client


async def _discovered(client: httpx.AsyncClient, hook: str) -> dict[str, Any]:
    services = (await client.get("/cds-services")).json()["services"]
    entry: dict[str, Any] = next(s for s in services if s["hook"] == hook)
    return entry


def _patient_view_without_data(entry: dict[str, Any]) -> dict[str, Any]:
    body = hook_request(entry)
    body.pop("prefetch")
    return body


# Each: what to send, and the status it must get. Bodies are built from the live discovery.
ERRORS: dict[str, tuple[str, str, Any, dict[str, str], int]] = {
    "malformed JSON": ("POST", "/cds-services/back-to-foot", b"{not json", {}, 400),
    "not an object": ("POST", "/cds-services/back-to-foot", b"[1, 2]", {}, 400),
    "invalid request": ("POST", "/cds-services/back-to-foot", b'{"hook": "patient-view"}', {}, 400),
    "unknown service": ("POST", "/cds-services/no-such-service", b"{}", {}, 404),
    "GET on a service": ("GET", "/cds-services/back-to-foot", None, {}, 405),
    "body over the limit": ("POST", "/cds-services/back-to-foot", b" " * 8192, {}, 413),
    "not JSON media type": (
        "POST",
        "/cds-services/back-to-foot",
        b"{}",
        {"Content-Type": "text/plain"},
        415,
    ),
    "malformed feedback": ("POST", "/cds-services/back-to-foot/feedback", b"{}", {}, 400),
    "feedback to an unknown service": ("POST", "/cds-services/nope/feedback", b"{}", {}, 404),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
async def test_every_error_is_a_json_operation_outcome_with_cors_headers(
    small: httpx.AsyncClient, case: str
) -> None:
    """G-01, E-07, S-18: JSON media type, an OperationOutcome body, readable by the browser."""
    method, path, body, headers, status = ERRORS[case]
    response = await small.request(
        method,
        path,
        content=body,
        headers={"Content-Type": "application/json", "Origin": ORIGIN, **headers},
    )
    _assert_json_outcome(response, status)


async def test_a_412_for_missing_required_data_is_a_json_operation_outcome_with_cors(
    client: httpx.AsyncClient,
) -> None:
    """G-01, E-07, E-04: nothing prefetched and no fhirServer to ask."""
    body = _patient_view_without_data(await _discovered(client, "patient-view"))
    response = await client.post(
        "/cds-services/back-to-foot", json=body, headers={"Origin": ORIGIN}
    )
    _assert_json_outcome(response, 412)


async def test_a_wrong_hook_is_a_json_operation_outcome_with_cors(
    client: httpx.AsyncClient,
) -> None:
    """G-01, E-07: patient-view posted to the order-sign service."""
    body = hook_request(await _discovered(client, "patient-view"))
    response = await client.post(
        "/cds-services/back-to-foot-order-sign", json=body, headers={"Origin": ORIGIN}
    )
    _assert_json_outcome(response, 400)


@pytest.mark.parametrize(
    "path", ["/cds-services", "/cds-services/back-to-foot", "/cds-services/back-to-foot/feedback"]
)
async def test_a_401_is_a_json_operation_outcome_with_cors(
    secured: httpx.AsyncClient, path: str
) -> None:
    """G-01, E-07, S-03: no token."""
    method = "GET" if path == "/cds-services" else "POST"
    response = await secured.request(method, path, json={}, headers={"Origin": ORIGIN})
    _assert_json_outcome(response, 401)


def _assert_json_outcome(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0] == "application/json"
    assert response.headers["access-control-allow-origin"] == ORIGIN
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["severity"] == "error"
    assert body["issue"][0]["diagnostics"]


# --------------------------------------------------------------------------- D-03


async def test_a_server_with_no_services_answers_discovery_with_an_empty_list(
    settings: Settings, tmp_path: Path
) -> None:
    """D-03: no service files, only the value sets and cards they would use."""
    rules = tmp_path / "rules"
    shutil.copytree(PROJECT_ROOT / "rules" / "valuesets", rules / "valuesets")
    app = create_app(changed(settings, rules_dir=rules, demo_dir=tmp_path / "no-demo"))
    async with serving(app) as client:
        response = await client.get("/cds-services")
    assert response.status_code == 200
    assert response.json() == {"services": []}


# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("member", "value"),
    [
        ("context", "Patient/p1"),
        ("context", ["Patient/p1"]),
        ("context", 7),
        ("prefetch", "Patient/p1"),
        ("prefetch", ["Patient/p1"]),
        ("prefetch", 7),
        ("fhirAuthorization", "Bearer opaque-token-value"),
        ("fhirAuthorization", ["opaque-token-value"]),
        ("fhirServer", "not a url"),
        ("fhirServer", "/fhir"),
        ("fhirServer", "ftp://ehr.example.org/fhir"),
        ("hookInstance", ""),
        ("hookInstance", "   "),
    ],
)
async def test_a_request_member_of_the_wrong_shape_is_a_400(
    client: httpx.AsyncClient, member: str, value: Any
) -> None:
    """R-02: context, prefetch and fhirAuthorization are objects, fhirServer is a URL, and
    hookInstance is a non-empty string."""
    body = hook_request(await _discovered(client, "patient-view"))
    if member == "fhirAuthorization":
        body["fhirServer"] = "https://ehr.example.org/fhir"
    body[member] = value
    response = await client.post("/cds-services/back-to-foot", json=body)
    _assert_refused(response, member)


def _assert_refused(response: httpx.Response, member: str) -> None:
    assert response.status_code == 400, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "opaque-token-value" not in response.text
    named = " ".join(outcome["issue"][0].get("expression", [])) + outcome["issue"][0]["diagnostics"]
    assert member in named


# --------------------------------------------------------------------------- C-13..C-21

SOURCE = {"label": "NICE NG59", "url": "https://www.nice.org.uk/guidance/ng59"}
CREATE = {
    "type": "create",
    "description": "Refer to physiotherapy",
    "resource": {"resourceType": "ServiceRequest", "status": "draft", "intent": "proposal"},
}


def _card(**members: Any) -> dict[str, Any]:
    return {"summary": "A summary", "indicator": "info", "source": SOURCE, **members}


def test_a_card_with_suggestions_but_no_selection_behavior_is_refused() -> None:
    """C-13 (cds-resp-6)."""
    with pytest.raises(ValidationError, match="selectionBehavior is required"):
        hooks.Card.model_validate(_card(suggestions=[{"label": "Refer", "actions": [CREATE]}]))


def test_two_recommended_suggestions_under_at_most_one_are_refused() -> None:
    """C-14 (cds-resp-1)."""
    suggestions = [
        {"label": "Refer", "isRecommended": True, "actions": [CREATE]},
        {"label": "Refer elsewhere", "isRecommended": True, "actions": [CREATE]},
    ]
    with pytest.raises(ValidationError, match="at-most-one allows one recommended"):
        hooks.Card.model_validate(_card(suggestions=suggestions, selectionBehavior="at-most-one"))
    # The same two under "any" are fine: only at-most-one limits the recommendation.
    assert hooks.Card.model_validate(_card(suggestions=suggestions, selectionBehavior="any"))


def test_a_delete_action_carrying_a_resource_is_refused() -> None:
    """C-16: delete names its target with resourceId and carries no resource."""
    delete = {
        "type": "delete",
        "description": "Cancel the draft MRI",
        "resourceId": "ServiceRequest/draft-mri",
        "resource": {"resourceType": "ServiceRequest", "id": "draft-mri"},
    }
    with pytest.raises(ValidationError, match="delete action carries resourceId and no resource"):
        hooks.Action.model_validate(delete)


def test_app_context_on_an_absolute_link_is_refused() -> None:
    """C-21 (cds-resp-3): appContext belongs to smart links only."""
    link = {
        "label": "Guideline",
        "url": "https://www.nice.org.uk/guidance/ng59",
        "type": "absolute",
        "appContext": "patient=p1",
    }
    with pytest.raises(ValidationError, match="appContext is only valid for smart links"):
        hooks.Link.model_validate(link)
    assert hooks.Link.model_validate({**link, "type": "smart"})
