"""What one call may read from its FHIR server: the grant's refusals, scope and expiry."""

from __future__ import annotations

import time

import pytest
from pydantic import SecretStr

from cds.data.grant import TOKEN_EXPIRED, GrantPolicy
from cds.settings import Settings

SERVER = "https://ehr.example.org/fhir"
TOKEN = SecretStr("s3cr3t")


def _policy(**settings: object) -> GrantPolicy:
    return GrantPolicy.from_settings(Settings.model_validate({"env": "test", **settings}))


@pytest.mark.parametrize(
    ("fhir_server", "token", "token_patient", "refusal"),
    [
        (None, TOKEN, None, "the request has no fhirServer"),
        ("https://ehr.example.org:port/fhir", TOKEN, None, "fhirServer is not a valid URL"),
        ("ftp://ehr.example.org/fhir", TOKEN, None, "fhirServer is not an absolute https URL"),
        ("http://ehr.example.org/fhir", TOKEN, None, "fhirServer is plain http, which is refused"),
        (SERVER, None, None, "the request has no fhirAuthorization"),
        (SERVER, TOKEN, "Patient/p2", "fhirAuthorization is for another patient"),
        (SERVER, TOKEN, "Patient/p1", None),
        (SERVER, TOKEN, "p1", None),
    ],
)
def test_a_grant_refuses_a_server_or_token_the_call_may_not_use(
    fhir_server: str | None,
    token: SecretStr | None,
    token_patient: str | None,
    refusal: str | None,
) -> None:
    """R-06, R-07, P-16: the first reason found is the one the call's keys carry."""
    grant = _policy().grant(fhir_server, token, patient_id="p1", token_patient=token_patient)
    if refusal is None:
        assert grant.refusal is None
        assert grant.server == fhir_server
    else:
        assert grant.refusal is not None
        assert grant.refusal.startswith(refusal)
        assert grant.server is None


def test_the_settings_allow_plain_http_and_reading_without_a_token() -> None:
    """CDS_FHIR_ALLOW_HTTP and CDS_FHIR_OPEN_SERVER (the sandbox, SB-07)."""
    policy = _policy(fhir_allow_http=True, fhir_open_server=True)
    grant = policy.grant("http://localhost:8080/fhir", None, patient_id="p1")
    assert grant.refusal is None


def test_a_token_is_used_until_it_expires_and_never_after() -> None:
    """R-08: the fetches get the request's budget, or what is left of the token's life."""
    policy = _policy()
    now = time.monotonic()
    lasting = policy.grant(SERVER, TOKEN, patient_id="p1", expires_in=300, received=now)
    assert lasting.time_left(4.0) == (4.0, None)
    short = policy.grant(SERVER, TOKEN, patient_id="p1", expires_in=1, received=now)
    seconds, why = short.time_left(4.0)
    assert 0 < seconds <= 1
    assert why == TOKEN_EXPIRED
    expired = policy.grant(SERVER, TOKEN, patient_id="p1", expires_in=5, received=now - 10)
    assert expired.time_left(4.0) == (0.0, TOKEN_EXPIRED)


def test_the_scope_decides_each_read_and_no_scope_leaves_it_to_the_server() -> None:
    """R-09: a read the scope clearly forbids is refused before it is sent."""
    policy = _policy()
    narrow = policy.grant(SERVER, TOKEN, patient_id="p1", scope="patient/Condition.rs")
    assert narrow.refuses("Condition?patient=p1") is None
    assert narrow.refuses("Patient/p1") == "fhirAuthorization.scope does not allow reading Patient"
    unscoped = policy.grant(SERVER, None, patient_id="p1")
    assert unscoped.refuses("Patient/p1") is None
