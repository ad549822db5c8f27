"""``/docs`` loads Swagger UI only from this service, and is off where it cannot."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from cds.api.api_docs import mount_api_docs, swagger_assets
from cds.app import create_app
from cds.settings import Settings
from tests.conftest import changed, serving

pytestmark = pytest.mark.anyio


async def test_the_docs_page_loads_every_script_and_stylesheet_from_this_service(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert urls, "the page names its assets"
    assert all(url.startswith("/docs/assets/") for url in urls), urls
    for url in urls:
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert asset.content
    # Swagger UI's online validator would receive the OpenAPI document.
    assert '"validatorUrl": null' in page.text


async def test_redoc_is_not_served_because_it_would_load_from_a_cdn(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/redoc")).status_code == 404


async def test_production_serves_no_docs_page_and_no_docs_assets(settings: Settings) -> None:
    production = changed(
        settings,
        env="production",
        auth_mode="required",
        patient_hash_key=SecretStr("a-production-secret-of-at-least-32-bytes"),
        trusted_issuers={"https://ehr.example.org": "https://ehr.example.org/jwks.json"},
    )
    async with serving(create_app(production)) as client:
        assert (await client.get("/docs")).status_code == 404
        assert (await client.get("/docs/assets/swagger-ui-bundle.js")).status_code == 404


def test_the_installed_package_ships_every_asset_the_page_loads() -> None:
    assets = swagger_assets()
    assert assets is not None
    assert (assets / "swagger-ui-bundle.js").stat().st_size > 100_000


@pytest.mark.parametrize("package", ["no_such_package", "cds"])
def test_a_missing_package_or_a_package_without_the_assets_yields_none(package: str) -> None:
    assert swagger_assets(package) is None


async def test_without_the_assets_the_docs_page_is_off_rather_than_blank(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = FastAPI(docs_url=None, redoc_url=None)
    mount_api_docs(app, swagger_assets("no_such_package"))
    assert "Swagger UI assets missing" in caplog.text
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/docs")).status_code == 404
        assert (await client.get("/docs/assets/swagger-ui.css")).status_code == 404
