"""Discovery: GET /cds-services lists every service with hook, id, title, description, prefetch."""

from __future__ import annotations

import re

import httpx
import pytest

from cds.data.templates import check_template

pytestmark = pytest.mark.anyio


async def test_discovery_answers_200_with_a_services_array(client: httpx.AsyncClient) -> None:
    """D-01, D-02."""
    response = await client.get("/cds-services")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"services"}
    assert body["services"]


async def test_discovery_also_answers_with_a_trailing_slash_without_redirect(
    client: httpx.AsyncClient,
) -> None:
    """D-01 (impl): a 307 would break CORS callers."""
    response = await client.get("/cds-services/")
    assert response.status_code == 200
    assert response.json() == (await client.get("/cds-services")).json()


async def test_every_entry_has_the_required_members_and_a_usable_id(
    client: httpx.AsyncClient,
) -> None:
    """D-04, D-05."""
    for entry in (await client.get("/cds-services")).json()["services"]:
        assert {"hook", "id", "title", "description"} <= set(entry)
        assert set(entry) <= {"hook", "id", "title", "description", "prefetch", "usageRequirements"}
        assert re.fullmatch(r"[A-Za-z0-9._~-]+", entry["id"])
        for key, template in entry.get("prefetch", {}).items():
            assert key
            assert template


async def test_the_back_to_foot_services_are_advertised_on_their_hooks(
    client: httpx.AsyncClient,
) -> None:
    """D-04, D-06: each entry is its own service, so no id is listed twice (clients key
    services by ``{baseUrl}/cds-services/{id}``; the sandbox keeps only the last entry)."""
    entries = (await client.get("/cds-services")).json()["services"]
    ids = [e["id"] for e in entries]
    assert len(ids) == len(set(ids))
    assert {(e["id"], e["hook"]) for e in entries} == {
        ("back-to-foot", "patient-view"),
        ("back-to-foot-order-sign", "order-sign"),
        ("back-to-foot-order-select", "order-select"),
    }


async def test_prefetch_templates_follow_the_token_and_query_restrictions(
    client: httpx.AsyncClient,
) -> None:
    """P-02..P-06: only allowed tokens, no _include, no modifiers but :in."""
    for entry in (await client.get("/cds-services")).json()["services"]:
        for template in entry.get("prefetch", {}).values():
            assert check_template(template, entry["hook"]) == []


async def test_a_client_keying_services_by_url_keeps_a_service_for_every_hook(
    client: httpx.AsyncClient,
) -> None:
    """SB-03, SB-04: the reference sandbox stores services in a map keyed by
    ``{discoveryUrl}/{id}``, the last entry winning; every one of our hooks survives that."""
    discovery = "http://localhost:8080/cds-services"
    kept = {
        f"{discovery}/{e['id']}": e["hook"]
        for e in (await client.get("/cds-services")).json()["services"]
    }
    assert kept == {
        f"{discovery}/back-to-foot": "patient-view",
        f"{discovery}/back-to-foot-order-select": "order-select",
        f"{discovery}/back-to-foot-order-sign": "order-sign",
    }
