"""No PHI in logs: every golden case (skipped and reshaped resources among them, every resource
id made distinctive), feedback, fallback fetch and JWT call, with logs captured."""

from __future__ import annotations

import io
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from cds.app import create_app
from cds.clock import clock_for
from cds.logs import configure_logging
from cds.settings import PROJECT_ROOT, Settings
from tests.jwt_minting import ISSUER, make_issuer

pytestmark = pytest.mark.anyio

CASES = sorted((PROJECT_ROOT / "tests" / "cases").glob("*/*.json"))
BASE = "https://cds.example.org"
ACCESS_TOKEN = "ehr-access-token-4f9c2b7d"


def _with_patient_id(value: Any, new_id: str) -> Any:
    """The case with its patient id replaced by a distinctive one we can search the logs for."""
    if isinstance(value, dict):
        return {k: _with_patient_id(v, new_id) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_patient_id(v, new_id) for v in value]
    if value == "p1":
        return new_id
    if value == "Patient/p1":
        return f"Patient/{new_id}"
    return value


def _with_resource_ids(value: Any, prefix: str) -> tuple[Any, set[str]]:
    """The request with every resource id (and the references and selections naming it)
    replaced by a distinctive one: an id links to a patient, so none may reach a log."""
    ids: dict[str, str] = {}

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            ident = node.get("id")
            if isinstance(node.get("resourceType"), str) and isinstance(ident, str):
                ids.setdefault(ident, f"{prefix}-{len(ids):02d}")
            for child in node.values():
                collect(child)
        elif isinstance(node, list):
            for child in node:
                collect(child)

    def rename(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: rename(v) for k, v in node.items()}
        if isinstance(node, list):
            return [rename(v) for v in node]
        if isinstance(node, str):
            head, slash, tail = node.rpartition("/")
            if node in ids:
                return ids[node]
            if slash and tail in ids:
                return f"{head}/{ids[tail]}"
        return node

    collect(value)
    ids.pop("p1", None)  # the patient id has its own distinctive value
    return rename(value), set(ids.values())


def _phi_of(request: dict[str, Any]) -> set[str]:
    """Patient id, names and every coding display in the request: none may reach a log."""
    found = {request["context"]["patientId"]}

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if isinstance(value.get("display"), str) and len(value["display"]) > 3:
                found.add(value["display"])
            for name in value.get("name", []) if value.get("resourceType") == "Patient" else []:
                found.update(part for part in name.get("given", []) if len(part) > 2)
                if len(name.get("family", "")) > 2:
                    found.add(name["family"])
            for child in value.values():
                walk(child)
        elif isinstance(value, list):
            for child in value:
                walk(child)

    walk(request)
    return found


@pytest.fixture
async def logged(tmp_path: Path) -> AsyncIterator[tuple[FastAPI, io.StringIO, Any]]:
    issuer = make_issuer(tmp_path)
    settings = Settings(
        env="test",
        log_level="DEBUG",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'cds.db'}",
        public_base_url=BASE,
        auth_mode="required",
        trusted_issuers={ISSUER: str(issuer.jwks_file)},
    )

    def fhir_server(request: httpx.Request) -> httpx.Response:
        # Answers every fallback search with an empty searchset: we only watch what is logged.
        return httpx.Response(200, json={"resourceType": "Bundle", "type": "searchset"})

    app = create_app(settings, fhir_transport=httpx.MockTransport(fhir_server))
    buffer = io.StringIO()
    configure_logging("DEBUG", stream=buffer)
    async with app.router.lifespan_context(app):
        yield app, buffer, issuer
    configure_logging("INFO")


async def test_no_patient_data_or_token_reaches_the_logs(
    logged: tuple[FastAPI, io.StringIO, Any],
) -> None:
    app, buffer, issuer = logged
    forbidden: set[str] = {ACCESS_TOKEN}
    tokens: list[str] = []
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        for index, path in enumerate(CASES):
            case = json.loads(path.read_text())
            request = _with_patient_id(case["request"], f"zq-patient-{index:03d}")
            request, resource_ids = _with_resource_ids(request, f"zq-resource-{index:03d}")
            forbidden |= _phi_of(request) | resource_ids
            # Half the cases leave prefetch out and are fetched with the EHR's bearer token.
            if index % 2:
                request.pop("prefetch", None)
                request["fhirServer"] = "https://ehr.example.org/fhir"
                request["fhirAuthorization"] = {
                    "access_token": ACCESS_TOKEN,
                    "token_type": "Bearer",
                    "expires_in": 300,
                    "scope": "patient/*.read",
                    "subject": "footpath-cds",
                }
            app.state.parts.clock = clock_for(case["now"])
            url = f"{BASE}/cds-services/{path.parent.name}"
            token = issuer.token(url)
            tokens.append(token)
            response = await client.post(
                url, json=request, headers={"Authorization": f"Bearer {token}"}
            )
            # 400: a case whose draft order cannot be read (named by position, never by id).
            assert response.status_code in (200, 412, case["expect"].get("status", 200))
            for card in response.json().get("cards", []):
                feedback_url = f"{url}/feedback"
                body = {
                    "feedback": [
                        {
                            "card": card["uuid"],
                            "outcome": "overridden",
                            "outcomeTimestamp": "2026-06-01T12:00:00Z",
                            "overrideReason": {"userComment": "Seen by Dr Zebulon today"},
                        }
                    ]
                }
                await client.post(
                    feedback_url,
                    json=body,
                    headers={"Authorization": f"Bearer {issuer.token(feedback_url)}"},
                )
        # A replayed token and a garbage one: the rejections are logged, the tokens are not.
        await client.post(url, json={}, headers={"Authorization": f"Bearer {tokens[-1]}"})
        await client.get("/cds-services", headers={"Authorization": "Bearer not.a.jwt"})

    logs = buffer.getvalue()
    assert "hook answered" in logs
    # The calls include resources skipped as unreadable and resources read leniently.
    assert '"message":"FHIR resources skipped"' in logs
    assert '"message":"FHIR elements reshaped to their R4 cardinality"' in logs
    assert "caller JWT rejected" in logs
    forbidden |= set(tokens) | {"Zebulon"}
    leaked = sorted(s for s in forbidden if re.search(rf"(?<![\w-]){re.escape(s)}(?![\w-])", logs))
    assert leaked == []
    for line in logs.splitlines():
        json.loads(line)
