"""A call's fhirServer must be one its issuer is known to use: fetches go nowhere else."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from cds.app import create_app
from cds.data.fhir_servers import FhirServerPolicy
from cds.security import trusted_sources
from cds.settings import Settings, TrustedIssuer
from tests.conftest import changed, serving
from tests.hostile_fhir import HostileFhirServer, hostile_fhir_server
from tests.jwt_minting import ISSUER, Issuer, make_issuer

AUDIENCE = "https://cds.example.org/cds-services/back-to-foot"


@pytest.fixture
def issuer(tmp_path: Path) -> Issuer:
    return make_issuer(tmp_path)


@pytest.fixture
def fhir() -> Iterator[HostileFhirServer]:
    with hostile_fhir_server() as server:
        yield server


def _body(fhir_server: str) -> dict[str, Any]:
    return {
        "hook": "patient-view",
        "hookInstance": "8a3f4c1e-9b2d-4e6f-a1c3-5d7e9f0b2c4a",
        "fhirServer": fhir_server,
        "context": {"userId": "Practitioner/example", "patientId": "p1"},
    }


def _secured(settings: Settings, issuer: Issuer, entry: str | dict[str, Any], **more: Any) -> Any:
    return create_app(
        changed(
            settings,
            auth_mode="required",
            trusted_issuers={ISSUER: entry},
            fhir_allow_http=True,
            fhir_open_server=True,
            **more,
        )
    )


async def _call(app: Any, issuer: Issuer, fhir_server: str) -> httpx.Response:
    async with serving(app) as client:
        return await client.post(
            "/cds-services/back-to-foot", json=_body(fhir_server), headers=issuer.header(AUDIENCE)
        )


@pytest.mark.anyio
async def test_a_listed_fhir_server_is_fetched_from(
    settings: Settings, issuer: Issuer, fhir: HostileFhirServer
) -> None:
    entry = {"jwks": str(issuer.jwks_file), "fhirServers": [f"{fhir.url}/honest/fhir"]}
    response = await _call(_secured(settings, issuer, entry), issuer, f"{fhir.url}/honest/fhir/")
    assert response.status_code == 200
    assert len(fhir.paths) == 10  # one search per prefetch key of back-to-foot


@pytest.mark.anyio
@pytest.mark.parametrize(
    "elsewhere",
    [
        "/huge/fhir",  # same host, another base
        "/honest/fhirx",  # a prefix of the listed base, not below it
        "/honest/fhir/%2e%2e/%2e%2e/huge/fhir",  # below it only until a server resolves the dots
    ],
)
async def test_a_fhir_server_the_issuer_does_not_list_is_never_called(
    settings: Settings, issuer: Issuer, fhir: HostileFhirServer, elsewhere: str
) -> None:
    entry = {"jwks": str(issuer.jwks_file), "fhirServers": [f"{fhir.url}/honest/fhir"]}
    response = await _call(_secured(settings, issuer, entry), issuer, fhir.url + elsewhere)
    assert response.status_code == 412
    assert "not one of the caller's issuer's fhirServers" in response.text
    assert fhir.paths == []


@pytest.mark.anyio
async def test_in_production_an_issuer_without_fhir_servers_sends_us_nowhere(
    settings: Settings, issuer: Issuer, fhir: HostileFhirServer
) -> None:
    production = {"env": "production", "patient_hash_key": "test-only-key-of-at-least-32-bytes"}
    app = _secured(settings, issuer, str(issuer.jwks_file), **production)
    response = await _call(app, issuer, f"{fhir.url}/honest/fhir")
    assert response.status_code == 412
    assert "lists no fhirServers" in response.text
    assert fhir.paths == []


@pytest.mark.anyio
async def test_outside_production_an_issuer_without_fhir_servers_is_not_restricted(
    settings: Settings, issuer: Issuer, fhir: HostileFhirServer
) -> None:
    response = await _call(
        _secured(settings, issuer, str(issuer.jwks_file)), issuer, f"{fhir.url}/honest/fhir"
    )
    assert response.status_code == 200
    assert fhir.paths


def test_trusted_issuers_take_both_shapes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text('{"keys": []}')
    value = {
        "https://a.example": "https://a.example/jwks.json",
        "https://b.example": {"jwks": str(jwks), "fhirServers": ["https://b.example/fhir/r4"]},
    }
    monkeypatch.setenv("CDS_TRUSTED_ISSUERS", json.dumps(value))
    settings = Settings()
    assert settings.issuer_jwks() == {
        "https://a.example": "https://a.example/jwks.json",
        "https://b.example": str(jwks),
    }
    assert set(trusted_sources(settings)) == {"https://a.example", "https://b.example"}
    policy = FhirServerPolicy.from_settings(settings)
    assert policy.refusal("https://b.example", "https://B.example:443/fhir/r4/t1") is None


def test_a_fhir_servers_entry_that_is_not_an_absolute_url_is_refused_at_startup() -> None:
    with pytest.raises(ValidationError, match="not an absolute URL"):
        TrustedIssuer.model_validate({"jwks": "/keys.json", "fhirServers": ["ehr.example/fhir"]})
