"""The hook call's route checks the caller's JWT itself, before anything else: a call without a
valid token is refused and counted whatever its body, and a valid one is answered."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cds.catalogue import Catalogue
from cds.settings import Settings
from tests.conftest import serving
from tests.jwt_minting import Issuer, make_issuer
from tests.test_auth_api import BASE, secured_app

pytestmark = pytest.mark.anyio

HOOK = "/cds-services/back-to-foot"


def refusals(metrics_text: str, reason: str) -> float:
    line = f'cds_auth_failures_total{{reason="{reason}"}} '
    found = [row for row in metrics_text.splitlines() if row.startswith(line)]
    return float(found[0].removeprefix(line)) if found else 0.0


@pytest.fixture
def issuer(tmp_path: Path) -> Issuer:
    return make_issuer(tmp_path)


async def test_a_hook_call_without_a_token_is_refused_before_its_body_is_read(
    settings: Settings, issuer: Issuer, catalogue: Catalogue
) -> None:
    async with serving(secured_app(settings, issuer, catalogue)) as client:
        # Neither JSON nor within the size limit: the token is refused first all the same.
        too_big = b"<" * (settings.max_body_bytes + 1)
        response = await client.post(HOOK, content=too_big, headers={"content-type": "text/xml"})
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert refusals((await client.get("/metrics")).text, "missing_token") == 1


async def test_a_hook_call_with_a_token_for_another_endpoint_is_refused_and_counted(
    settings: Settings, issuer: Issuer, catalogue: Catalogue, rb01_request: dict[str, Any]
) -> None:
    async with serving(secured_app(settings, issuer, catalogue)) as client:
        header = issuer.header(f"{BASE}/cds-services/another-service")
        response = await client.post(HOOK, json=rb01_request, headers=header)
        assert response.status_code == 401
        assert refusals((await client.get("/metrics")).text, "bad_audience") == 1


async def test_a_hook_call_with_a_valid_token_is_answered(
    settings: Settings, issuer: Issuer, catalogue: Catalogue, rb01_request: dict[str, Any]
) -> None:
    async with serving(secured_app(settings, issuer, catalogue)) as client:
        response = await client.post(HOOK, json=rb01_request, headers=issuer.header(BASE + HOOK))
        assert response.status_code == 200
        assert [card["source"]["topic"]["code"] for card in response.json()["cards"]]
