"""Behaviour of the caller JWT verification (checklist section 7.2, S-03..S-14)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from jwt.warnings import InsecureKeyLengthWarning

from cds.errors import ConfigError, Unauthorized
from cds.security import (
    SANDBOX_ISSUER,
    SANDBOX_JWKS_FILE,
    SANDBOX_JWKS_URL,
    JwksSource,
    JwtVerifier,
    MemoryReplayCache,
    VerifiedCaller,
)
from cds.settings import Settings
from tests.examples import SANDBOX
from tests.examples import SPEC_EXAMPLES as SPEC

SANDBOX_JWKS_COPY = SANDBOX / "sandbox-jwks-public.json"

ISS = "https://ehr.example.org"
JWKS_URL = "https://ehr.example.org/.well-known/jwks.json"
BASE = "https://cds.example.org"
AUDIENCE = f"{BASE}/cds-services/back-to-foot"
NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --------------------------------------------------------------------------- keys and tokens

_CURVES: dict[str, ec.EllipticCurve] = {
    "ES256": ec.SECP256R1(),
    "ES384": ec.SECP384R1(),
    "ES512": ec.SECP521R1(),
}


@cache
def private_key(alg: str, label: str = "a", rsa_bits: int = 2048) -> PrivateKey:
    """One key per (alg family, label), generated once: RSA generation is slow."""
    if alg in _CURVES:
        return ec.generate_private_key(_CURVES[alg])
    return rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)


def public_jwk(key: PrivateKey, kid: str, alg: str | None = None) -> dict[str, Any]:
    public = key.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        jwk = ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
    jwk.update({"kid": kid, "use": "sig"})
    if alg is not None:
        jwk["alg"] = alg
    return jwk


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(NOW.timestamp())
    base: dict[str, Any] = {
        "iss": ISS,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 300,
        "jti": str(uuid.uuid4()),
        "tenant": "tenant-1",
    }
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not None}


def mint(
    key: PrivateKey,
    alg: str,
    kid: str | None = "kid-1",
    *,
    payload: dict[str, Any] | None = None,
    **header: Any,
) -> str:
    headers: dict[str, Any] = {"typ": "JWT", **header}
    if kid is not None:
        headers["kid"] = kid
    return jwt.encode(payload if payload is not None else claims(), key, alg, headers=headers)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64_json(value: dict[str, Any]) -> str:
    return _b64(json.dumps(value).encode())


def hand_made(
    header: dict[str, Any], payload: dict[str, Any], sign: Callable[[bytes], bytes]
) -> str:
    signing_input = f"{_b64_json(header)}.{_b64_json(payload)}"
    return f"{signing_input}.{_b64(sign(signing_input.encode()))}"


def bearer(token: str) -> str:
    return f"Bearer {token}"


# --------------------------------------------------------------------------- test doubles


@dataclass
class FakeClock:
    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class JwksServer:
    """The issuer's JWKS endpoint behind httpx.MockTransport; records every request."""

    jwks: dict[str, Any] = field(default_factory=lambda: {"keys": []})
    requests: list[httpx.Request] = field(default_factory=list)
    status_code: int = 200
    raw_body: bytes | None = None

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if str(request.url) != JWKS_URL:
            return httpx.Response(404)
        if self.raw_body is not None:
            return httpx.Response(self.status_code, content=self.raw_body)
        return httpx.Response(self.status_code, json=self.jwks)

    def publish(self, *jwks: dict[str, Any]) -> None:
        self.jwks = {"keys": list(jwks)}


@pytest.fixture
def server() -> JwksServer:
    server = JwksServer()
    server.publish(public_jwk(private_key("ES384"), "kid-1"))
    return server


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def http_client(server: JwksServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(server.handler)) as client:
        yield client


@pytest.fixture
def make_verifier(http_client: httpx.AsyncClient, clock: FakeClock) -> Callable[..., JwtVerifier]:
    def make(**overrides: Any) -> JwtVerifier:
        fields: dict[str, Any] = {"trusted_issuers": {ISS: JWKS_URL}, "env": "test"}
        fields.update(overrides)
        return JwtVerifier(
            Settings(**fields), MemoryReplayCache(clock=clock), http_client, clock=clock
        )

    return make


@pytest.fixture
def verifier(make_verifier: Callable[..., JwtVerifier]) -> JwtVerifier:
    return make_verifier()


async def rejected(verifier: JwtVerifier, header: str | None, audience: str = AUDIENCE) -> str:
    """The log reason of the expected rejection; also checks the public message is generic."""
    with pytest.raises(Unauthorized) as caught:
        await verifier.verify(header, audience)
    assert caught.value.diagnostics == "The request is not authorized."
    return caught.value.reason


# --------------------------------------------------------------------------- accepted tokens


@pytest.mark.anyio
async def test_a_valid_es384_token_is_accepted(verifier: JwtVerifier) -> None:
    """S-04, S-06, S-07: ES384 is RECOMMENDED; a correct token yields the caller, not the token."""
    payload = claims()
    caller = await verifier.verify(
        bearer(mint(private_key("ES384"), "ES384", payload=payload)), AUDIENCE
    )
    assert caller == VerifiedCaller(
        iss=ISS,
        jti=payload["jti"],
        tenant="tenant-1",
        kid="kid-1",
        alg="ES384",
        expires_at=NOW + timedelta(seconds=300),
    )


@pytest.mark.anyio
async def test_a_valid_rs384_token_is_accepted(server: JwksServer, verifier: JwtVerifier) -> None:
    """S-06: RS384 is the other RECOMMENDED algorithm."""
    server.publish(public_jwk(private_key("RS384"), "rsa-1", "RS384"))
    caller = await verifier.verify(bearer(mint(private_key("RS384"), "RS384", "rsa-1")), AUDIENCE)
    assert (caller.alg, caller.kid) == ("RS384", "rsa-1")


@pytest.mark.anyio
@pytest.mark.parametrize("alg", ["ES256", "ES512", "RS256", "RS512", "PS256", "PS384", "PS512"])
async def test_every_allowed_asymmetric_algorithm_is_accepted_with_a_fitting_key(
    server: JwksServer, verifier: JwtVerifier, alg: str
) -> None:
    """S-06: the allowlist is ES256/384/512, RS256/384/512 and PS256/384/512."""
    server.publish(public_jwk(private_key(alg), "k", alg))
    caller = await verifier.verify(bearer(mint(private_key(alg), alg, "k")), AUDIENCE)
    assert caller.alg == alg


@pytest.mark.anyio
async def test_extra_claims_and_a_missing_tenant_are_fine(verifier: JwtVerifier) -> None:
    """S-07: tenant is OPTIONAL and unknown claims (e.g. the 1.0-era sub) are ignored."""
    token = mint(private_key("ES384"), "ES384", payload=claims(tenant=None, sub="client-id"))
    caller = await verifier.verify(bearer(token), AUDIENCE)
    assert caller.tenant is None


# --------------------------------------------------------------------------- S-03 header


@pytest.mark.anyio
@pytest.mark.parametrize("header", [None, "", "   "])
async def test_a_missing_authorization_header_is_rejected(
    verifier: JwtVerifier, header: str | None
) -> None:
    """S-03: a service requiring authentication refuses a request without Authorization."""
    assert await rejected(verifier, header) == "no Authorization header"


@pytest.mark.anyio
@pytest.mark.parametrize("scheme", ["Basic", "Token", "JWT", "Bearer:"])
async def test_a_scheme_other_than_bearer_is_rejected(verifier: JwtVerifier, scheme: str) -> None:
    """S-03: the JWT is presented as a "Bearer" token."""
    token = mint(private_key("ES384"), "ES384")
    assert await rejected(verifier, f"{scheme} {token}") == "authorization scheme is not Bearer"


@pytest.mark.anyio
@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "bEaReR"])
async def test_the_bearer_scheme_is_case_insensitive(verifier: JwtVerifier, scheme: str) -> None:
    """S-03 (impl): auth schemes are case-insensitive (RFC 7235)."""
    token = mint(private_key("ES384"), "ES384")
    caller = await verifier.verify(f"{scheme}  {token}", AUDIENCE)
    assert caller.iss == ISS


@pytest.mark.anyio
@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "a.b.c",
        "a.b",
        "....",
        "eyJhbGciOiJFUzM4NCJ9.!!!.abc",
        "e30.e30.e30",
        "one.two.three.four.five",
        "x" * 20_000,
    ],
)
async def test_a_garbage_token_is_rejected(
    server: JwksServer, verifier: JwtVerifier, token: str
) -> None:
    """S-03: a malformed token gives 401, and no key fetch happens for it."""
    await rejected(verifier, bearer(token))
    assert server.requests == []


@pytest.mark.anyio
async def test_a_bearer_header_with_extra_parts_is_rejected(verifier: JwtVerifier) -> None:
    """S-03: exactly one credential follows the scheme."""
    token = mint(private_key("ES384"), "ES384")
    assert await rejected(verifier, f"Bearer {token} {token}") == "malformed Authorization header"


# --------------------------------------------------------------------------- S-05 JOSE header


@pytest.mark.anyio
async def test_a_token_without_kid_is_rejected(server: JwksServer, verifier: JwtVerifier) -> None:
    """S-05: kid is REQUIRED."""
    token = mint(private_key("ES384"), "ES384", kid=None)
    assert await rejected(verifier, bearer(token)) == "header kid missing"
    assert server.requests == []


@pytest.mark.anyio
@pytest.mark.parametrize("typ", ["JOSE", "at+jwt", "JWS", None])
async def test_a_token_whose_typ_is_not_jwt_is_rejected(
    verifier: JwtVerifier, typ: str | None
) -> None:
    """S-05: typ is REQUIRED with the fixed value JWT."""
    token = mint(private_key("ES384"), "ES384", typ=typ)
    assert jwt.get_unverified_header(token).get("typ") == typ
    assert await rejected(verifier, bearer(token)) == "header typ is not JWT"


@pytest.mark.anyio
async def test_typ_is_compared_case_insensitively(verifier: JwtVerifier) -> None:
    """S-05 (impl): "jwt" is accepted like "JWT"."""
    token = mint(private_key("ES384"), "ES384", typ="jwt")
    assert (await verifier.verify(bearer(token), AUDIENCE)).iss == ISS


@pytest.mark.anyio
@pytest.mark.parametrize(
    "extension",
    [{"crit": ["exp"], "exp": 1}, {"crit": ["b64"], "b64": False}, {"crit": ["b64"]}],
)
async def test_a_critical_header_extension_is_rejected(
    verifier: JwtVerifier, extension: dict[str, Any]
) -> None:
    """S-05: we understand no JWS extensions (e.g. an unencoded b64=false payload)."""
    header = {"alg": "ES384", "typ": "JWT", "kid": "kid-1", **extension}
    await rejected(verifier, bearer(hand_made(header, claims(), lambda data: b"sig")))


# --------------------------------------------------------------------------- S-06 algorithms


@pytest.mark.anyio
async def test_a_token_signed_with_alg_none_is_rejected(
    server: JwksServer, verifier: JwtVerifier
) -> None:
    """S-06: JWTs SHALL NOT be signed using the none algorithm."""
    token = hand_made({"alg": "none", "typ": "JWT", "kid": "kid-1"}, claims(), lambda data: b"")
    assert await rejected(verifier, bearer(token)) == "header alg not allowed"
    assert server.requests == []


@pytest.mark.anyio
async def test_an_hs256_token_signed_with_the_rsa_public_key_pem_is_rejected(
    server: JwksServer, verifier: JwtVerifier
) -> None:
    """S-06: the key-confusion attack (HMAC keyed with the public key) fails before any key use."""
    key = private_key("RS384")
    server.publish(public_jwk(key, "rsa-1"))
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    token = hand_made(
        {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"},
        claims(),
        lambda data: hmac.new(pem, data, hashlib.sha256).digest(),
    )
    assert await rejected(verifier, bearer(token)) == "header alg not allowed"
    assert server.requests == []


@pytest.mark.anyio
@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512", "EdDSA", "ES256K", "RSA-OAEP"])
async def test_algorithms_outside_the_allowlist_are_rejected(
    verifier: JwtVerifier, alg: str
) -> None:
    """S-06: only the asymmetric allowlist is trusted."""
    token = hand_made({"alg": alg, "typ": "JWT", "kid": "kid-1"}, claims(), lambda data: b"sig")
    assert await rejected(verifier, bearer(token)) == "header alg not allowed"


@pytest.mark.anyio
async def test_an_alg_whose_curve_does_not_fit_the_key_is_rejected(
    verifier: JwtVerifier,
) -> None:
    """S-06 (impl): ES256 named in the header cannot be checked against the issuer's P-384 key."""
    token = mint(private_key("ES256"), "ES256")
    assert await rejected(verifier, bearer(token)) == "token alg does not fit the key type or curve"


@pytest.mark.anyio
async def test_an_rsa_alg_against_an_ec_key_is_rejected(verifier: JwtVerifier) -> None:
    """S-06 (impl): the alg must fit the JWK's kty."""
    token = mint(private_key("RS256"), "RS256")
    assert await rejected(verifier, bearer(token)) == "token alg does not fit the key type or curve"


@pytest.mark.anyio
async def test_an_alg_other_than_the_jwk_alg_is_rejected(
    server: JwksServer, verifier: JwtVerifier
) -> None:
    """S-06 (impl): a JWK that names its alg (RS384) is not used for RS256 or PS384."""
    key = private_key("RS384")
    server.publish(public_jwk(key, "rsa-1", "RS384"))
    for alg in ("RS256", "PS384"):
        reason = await rejected(verifier, bearer(mint(key, alg, "rsa-1")))
        assert reason == "token alg differs from the key's alg"


@pytest.mark.anyio
async def test_an_rsa_key_shorter_than_2048_bits_is_refused(
    server: JwksServer, verifier: JwtVerifier
) -> None:
    """S-04: a weak issuer key is not accepted (and raises no warning)."""
    key = private_key("RS256", "short", 1024)
    server.publish(public_jwk(key, "short"))
    with pytest.warns(InsecureKeyLengthWarning):
        token = mint(key, "RS256", "short")
    reason = await rejected(verifier, bearer(token))
    assert reason == "issuer key unusable or too weak"


# --------------------------------------------------------------------------- S-04 signature


@pytest.mark.anyio
async def test_a_token_signed_by_another_key_with_the_same_kid_is_rejected(
    verifier: JwtVerifier,
) -> None:
    """S-04: the signature must match the issuer's key on record."""
    token = mint(private_key("ES384", "intruder"), "ES384")
    assert await rejected(verifier, bearer(token)) == "signature does not verify"


@pytest.mark.anyio
async def test_a_tampered_payload_is_rejected(verifier: JwtVerifier) -> None:
    """S-04: changing the claims after signing breaks the signature."""
    header, _, signature = mint(private_key("ES384"), "ES384").split(".")
    forged = f"{header}.{_b64_json(claims(tenant='someone-else'))}.{signature}"
    assert await rejected(verifier, bearer(forged)) == "signature does not verify"


# --------------------------------------------------------------------------- S-07 claims


@pytest.mark.anyio
@pytest.mark.parametrize("claim", ["iss", "aud", "exp", "iat", "jti"])
async def test_a_token_missing_a_required_claim_is_rejected(
    verifier: JwtVerifier, claim: str
) -> None:
    """S-07: iss, aud, exp, iat and jti are REQUIRED."""
    payload = claims()
    del payload[claim]
    await rejected(verifier, bearer(mint(private_key("ES384"), "ES384", payload=payload)))


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("claim", "value"),
    [("exp", "tomorrow"), ("iat", True), ("jti", 42), ("jti", ""), ("tenant", 7), ("aud", [])],
)
async def test_a_claim_of_the_wrong_type_is_rejected(
    verifier: JwtVerifier, claim: str, value: object
) -> None:
    """S-07: each claim has a type (NumericDate, string, string or array of strings)."""
    payload = claims(**{claim: value})
    await rejected(verifier, bearer(mint(private_key("ES384"), "ES384", payload=payload)))


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (claims(jti="j" * 256), "jti claim too long"),
        (claims(exp=10**20), "exp claim out of range"),
        (claims(iat=float("nan")), "iat claim missing or not a number"),
    ],
)
async def test_absurd_claim_values_are_rejected(
    verifier: JwtVerifier, payload: dict[str, Any], reason: str
) -> None:
    """S-07: bounded jti (it is stored for replay checks) and sane NumericDates."""
    assert await rejected(
        verifier, bearer(mint(private_key("ES384"), "ES384", payload=payload))
    ) == (reason)


@pytest.mark.anyio
async def test_a_payload_that_is_not_a_json_object_is_rejected(verifier: JwtVerifier) -> None:
    """S-07: the claims set is a JSON object."""
    header = _b64_json({"alg": "ES384", "typ": "JWT", "kid": "kid-1"})
    token = f"{header}.{_b64(b'[1, 2]')}.{_b64(b'sig')}"
    assert await rejected(verifier, bearer(token)) == "payload is not a JSON object"


# --------------------------------------------------------------------------- S-08 issuers


@pytest.mark.anyio
async def test_a_token_from_an_untrusted_issuer_is_rejected_without_fetching_anything(
    server: JwksServer, verifier: JwtVerifier
) -> None:
    """S-08: iss must be on the allowlist; its (attacker-chosen) jku is never fetched."""
    token = mint(
        private_key("ES384"),
        "ES384",
        payload=claims(iss="https://evil.example"),
        jku="https://evil.example/jwks.json",
    )
    assert await rejected(verifier, bearer(token)) == "issuer is not trusted"
    assert server.requests == []


@pytest.mark.anyio
async def test_the_issuer_is_compared_exactly(verifier: JwtVerifier) -> None:
    """S-08: "https://ehr.example.org/" is not the configured "https://ehr.example.org"."""
    token = mint(private_key("ES384"), "ES384", payload=claims(iss=ISS + "/"))
    assert await rejected(verifier, bearer(token)) == "issuer is not trusted"


# --------------------------------------------------------------------------- S-09 audience


@pytest.mark.anyio
async def test_a_token_for_another_service_is_rejected(verifier: JwtVerifier) -> None:
    """S-09: aud MUST be the URL of the CDS Service endpoint being invoked."""
    token = mint(private_key("ES384"), "ES384", payload=claims(aud=f"{BASE}/cds-services/other"))
    assert await rejected(verifier, bearer(token)) == "aud is not this endpoint"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "aud",
    [
        [AUDIENCE],
        ["https://elsewhere.example/cds-services", AUDIENCE],
        AUDIENCE + "/",
        [AUDIENCE + "/"],
    ],
)
async def test_an_audience_array_or_a_trailing_slash_is_accepted(
    verifier: JwtVerifier, aud: str | list[str]
) -> None:
    """S-09: aud is a string or an array containing the endpoint; a trailing slash is normalised."""
    token = mint(private_key("ES384"), "ES384", payload=claims(aud=aud))
    assert (await verifier.verify(bearer(token), AUDIENCE)).iss == ISS


@pytest.mark.anyio
async def test_a_trailing_slash_on_the_expected_audience_is_ignored(verifier: JwtVerifier) -> None:
    """S-09: the endpoint URL the app passes in is normalised the same way."""
    token = mint(private_key("ES384"), "ES384")
    assert (await verifier.verify(bearer(token), AUDIENCE + "/")).iss == ISS


@pytest.mark.anyio
@pytest.mark.parametrize(
    "aud", [f"{BASE}/cds-services", f"{BASE}/CDS-SERVICES/back-to-foot", [f"{BASE}/x"], BASE]
)
async def test_an_audience_that_is_only_similar_is_rejected(
    verifier: JwtVerifier, aud: str | list[str]
) -> None:
    """S-09: the comparison is exact apart from a trailing slash."""
    token = mint(private_key("ES384"), "ES384", payload=claims(aud=aud))
    assert await rejected(verifier, bearer(token)) == "aud is not this endpoint"


# --------------------------------------------------------------------------- S-10 jku and JWKS


@pytest.mark.anyio
async def test_a_jku_other_than_the_configured_url_is_rejected_without_any_outbound_request(
    server: JwksServer, verifier: JwtVerifier
) -> None:
    """S-10: never dereference a jku that is not the issuer's allowlisted URL (no SSRF)."""
    for jku in ("http://169.254.169.254/latest/meta-data", JWKS_URL + "?x", JWKS_URL.upper()):
        token = mint(private_key("ES384"), "ES384", jku=jku)
        reason = await rejected(verifier, bearer(token))
        assert reason == "jku is not the configured JWKS URL of the issuer"
    assert server.requests == []


@pytest.mark.anyio
async def test_a_jku_equal_to_the_configured_url_is_accepted(
    server: JwksServer, verifier: JwtVerifier
) -> None:
    """S-10: a jku naming exactly the configured JWKS URL is fine; that URL is what is fetched."""
    token = mint(private_key("ES384"), "ES384", jku=JWKS_URL)
    assert (await verifier.verify(bearer(token), AUDIENCE)).iss == ISS
    assert [str(r.url) for r in server.requests] == [JWKS_URL]


@pytest.mark.anyio
async def test_the_key_set_is_cached(server: JwksServer, verifier: JwtVerifier) -> None:
    """S-10: [BP] the service keeps its own cache of the client's public keys."""
    for _ in range(5):
        await verifier.verify(bearer(mint(private_key("ES384"), "ES384")), AUDIENCE)
    assert len(server.requests) == 1


@pytest.mark.anyio
async def test_the_key_set_is_reloaded_after_the_cache_ttl(
    server: JwksServer, clock: FakeClock, make_verifier: Callable[..., JwtVerifier]
) -> None:
    """S-10: cached keys expire after jwks_cache_seconds."""
    verifier = make_verifier(jwks_cache_seconds=600)
    await verifier.verify(bearer(mint(private_key("ES384"), "ES384")), AUDIENCE)
    clock.advance(601)
    await verifier.verify(
        bearer(
            mint(
                private_key("ES384"),
                "ES384",
                payload=claims(iat=int(clock.now.timestamp()), exp=int(clock.now.timestamp()) + 60),
            )
        ),
        AUDIENCE,
    )
    assert len(server.requests) == 2


@pytest.mark.anyio
async def test_a_rotated_key_is_picked_up_after_a_refresh_without_restart(
    server: JwksServer, clock: FakeClock, verifier: JwtVerifier
) -> None:
    """S-10: an unknown kid triggers a JWKS reload, so key rotation needs no restart."""
    old, new = private_key("ES384"), private_key("ES384", "rotated")
    await verifier.verify(bearer(mint(old, "ES384")), AUDIENCE)

    server.publish(public_jwk(new, "kid-2"))
    clock.advance(31)
    later = claims(iat=int(clock.now.timestamp()), exp=int(clock.now.timestamp()) + 300)
    caller = await verifier.verify(bearer(mint(new, "ES384", "kid-2", payload=later)), AUDIENCE)

    assert caller.kid == "kid-2"
    assert len(server.requests) == 2
    retired = claims(iat=int(clock.now.timestamp()), exp=int(clock.now.timestamp()) + 300)
    assert await rejected(verifier, bearer(mint(old, "ES384", payload=retired))) == (
        "no key with this kid in the issuer's JWKS"
    )


@pytest.mark.anyio
async def test_a_key_replaced_under_the_same_kid_is_used_once_the_key_set_is_reloaded(
    server: JwksServer, clock: FakeClock, make_verifier: Callable[..., JwtVerifier]
) -> None:
    """S-10: parsed keys are remembered per JWK, so a reload never leaves a stale one in use."""
    verifier = make_verifier(jwks_cache_seconds=60)
    old, new = private_key("ES384"), private_key("ES384", "same-kid")
    await verifier.verify(bearer(mint(old, "ES384")), AUDIENCE)
    server.publish(public_jwk(new, "kid-1"))
    clock.advance(61)
    later = claims(iat=int(clock.now.timestamp()), exp=int(clock.now.timestamp()) + 60)
    assert (await verifier.verify(bearer(mint(new, "ES384", payload=later)), AUDIENCE)).kid == (
        "kid-1"
    )
    stale = claims(iat=int(clock.now.timestamp()), exp=int(clock.now.timestamp()) + 60)
    assert await rejected(verifier, bearer(mint(old, "ES384", payload=stale))) == (
        "signature does not verify"
    )


@pytest.mark.anyio
async def test_unknown_kid_refreshes_are_rate_limited(
    server: JwksServer, clock: FakeClock, verifier: JwtVerifier
) -> None:
    """S-05, S-10: a flood of made-up kids reloads the JWKS at most once per interval."""
    key = private_key("ES384")
    for n in range(20):
        reason = await rejected(verifier, bearer(mint(key, "ES384", f"bogus-{n}")))
        assert reason == "no key with this kid in the issuer's JWKS"
    assert len(server.requests) == 1

    clock.advance(30)
    payload = claims(iat=int(clock.now.timestamp()), exp=int(clock.now.timestamp()) + 60)
    await rejected(verifier, bearer(mint(key, "ES384", "bogus-again", payload=payload)))
    await rejected(verifier, bearer(mint(key, "ES384", "bogus-more", payload=payload)))
    assert len(server.requests) == 2


@pytest.mark.anyio
async def test_concurrent_requests_on_a_cold_cache_fetch_the_jwks_once(
    server: JwksServer, clock: FakeClock
) -> None:
    """S-10: callers arriving together wait for one fetch instead of each starting their own."""

    async def slow_handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.01)
        return server.handler(request)

    settings = Settings(env="test", trusted_issuers={ISS: JWKS_URL})
    async with httpx.AsyncClient(transport=httpx.MockTransport(slow_handler)) as client:
        verifier = JwtVerifier(settings, MemoryReplayCache(clock=clock), client, clock=clock)
        tokens = [mint(private_key("ES384"), "ES384") for _ in range(10)]
        callers = await asyncio.gather(*(verifier.verify(bearer(t), AUDIENCE) for t in tokens))
    assert len({caller.jti for caller in callers}) == 10
    assert len(server.requests) == 1


@pytest.mark.anyio
async def test_a_failing_jwks_endpoint_keeps_the_previous_keys(
    server: JwksServer, clock: FakeClock, make_verifier: Callable[..., JwtVerifier]
) -> None:
    """S-10: an issuer outage after the TTL does not lock out callers with known keys."""
    verifier = make_verifier(jwks_cache_seconds=60)
    await verifier.verify(bearer(mint(private_key("ES384"), "ES384")), AUDIENCE)
    server.status_code = 503
    clock.advance(61)
    payload = claims(iat=int(clock.now.timestamp()), exp=int(clock.now.timestamp()) + 60)
    caller = await verifier.verify(
        bearer(mint(private_key("ES384"), "ES384", payload=payload)), AUDIENCE
    )
    assert caller.kid == "kid-1"
    assert len(server.requests) == 2


@pytest.mark.anyio
async def test_an_unreachable_jwks_endpoint_gives_401(
    server: JwksServer, verifier: JwtVerifier
) -> None:
    """S-10, S-13: with no keys at all the caller gets the generic 401."""
    server.status_code = 500
    reason = await rejected(verifier, bearer(mint(private_key("ES384"), "ES384")))
    assert reason == "no key with this kid in the issuer's JWKS"


@pytest.mark.anyio
async def test_private_and_encryption_keys_in_a_jwks_are_ignored(
    server: JwksServer, verifier: JwtVerifier
) -> None:
    """S-10: only public signing keys ("use" sig or absent, no "d") verify tokens."""
    key = private_key("ES384")
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    leaked = ECAlgorithm.to_jwk(key, as_dict=True) | {"kid": "leaked"}
    encrypting = public_jwk(key, "enc") | {"use": "enc"}
    server.publish(leaked, encrypting)
    for kid in ("leaked", "enc"):
        reason = await rejected(verifier, bearer(mint(key, "ES384", kid)))
        assert reason == "no key with this kid in the issuer's JWKS"


@pytest.mark.anyio
async def test_a_kid_listed_twice_in_the_jwks_is_not_used(
    server: JwksServer, verifier: JwtVerifier
) -> None:
    """S-05: kid "MUST be unique within the CDS Client's JWK Set"; an ambiguous kid is refused."""
    key = private_key("ES384")
    server.publish(public_jwk(key, "kid-1"), public_jwk(private_key("ES384", "twin"), "kid-1"))
    reason = await rejected(verifier, bearer(mint(key, "ES384")))
    assert reason == "no key with this kid in the issuer's JWKS"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "body",
    [
        b"<html>not json</html>",
        b"[]",
        b'{"keys": {}}',
        b'{"keys": [], "pad": "' + b"x" * 300_000 + b'"}',
    ],
)
async def test_an_unusable_jwks_document_gives_401(
    server: JwksServer, verifier: JwtVerifier, body: bytes
) -> None:
    """S-10: a key set that is not JSON, has no keys array or is oversized provides no keys."""
    server.raw_body = body
    reason = await rejected(verifier, bearer(mint(private_key("ES384"), "ES384")))
    assert reason == "no key with this kid in the issuer's JWKS"


# --------------------------------------------------------------------------- S-11 time


@pytest.mark.anyio
async def test_an_expired_token_is_rejected(clock: FakeClock, verifier: JwtVerifier) -> None:
    """S-11: expired by 31 s with 30 s leeway."""
    token = mint(private_key("ES384"), "ES384")
    clock.advance(300 + 31)
    assert await rejected(verifier, bearer(token)) == "token expired"


@pytest.mark.anyio
async def test_a_token_expired_within_the_leeway_is_accepted(
    clock: FakeClock, verifier: JwtVerifier
) -> None:
    """S-11: clock skew up to jwt_leeway_seconds is tolerated on exp."""
    token = mint(private_key("ES384"), "ES384")
    clock.advance(300 + 29)
    assert (await verifier.verify(bearer(token), AUDIENCE)).iss == ISS


@pytest.mark.anyio
async def test_a_token_issued_in_the_future_beyond_the_leeway_is_rejected(
    clock: FakeClock, verifier: JwtVerifier
) -> None:
    """S-11: iat more than the leeway ahead of our clock is refused."""
    now = int(clock.now.timestamp())
    token = mint(private_key("ES384"), "ES384", payload=claims(iat=now + 31, exp=now + 331))
    assert await rejected(verifier, bearer(token)) == "iat is in the future"


@pytest.mark.anyio
async def test_a_token_issued_a_few_seconds_ahead_is_accepted(
    clock: FakeClock, verifier: JwtVerifier
) -> None:
    """S-11: the sandbox mints iat from the user's laptop clock, which may run a little fast."""
    now = int(clock.now.timestamp())
    token = mint(private_key("ES384"), "ES384", payload=claims(iat=now + 5, exp=now + 305))
    assert (await verifier.verify(bearer(token), AUDIENCE)).iss == ISS


@pytest.mark.anyio
async def test_a_token_not_yet_valid_by_nbf_is_rejected(
    clock: FakeClock, verifier: JwtVerifier
) -> None:
    """S-11: nbf, when present, is honoured with the same leeway."""
    now = int(clock.now.timestamp())
    token = mint(private_key("ES384"), "ES384", payload=claims(nbf=now + 60))
    assert await rejected(verifier, bearer(token)) == "token not yet valid (nbf)"


@pytest.mark.anyio
async def test_a_token_living_longer_than_an_hour_is_rejected(
    clock: FakeClock, verifier: JwtVerifier
) -> None:
    """S-11: [BP] exp - iat "should be no more than an hour" (jwt_max_lifetime_seconds)."""
    now = int(clock.now.timestamp())
    too_long = mint(private_key("ES384"), "ES384", payload=claims(iat=now, exp=now + 3601))
    assert await rejected(verifier, bearer(too_long)) == (
        "token lifetime (exp - iat) exceeds the maximum"
    )
    one_hour = mint(private_key("ES384"), "ES384", payload=claims(iat=now, exp=now + 3600))
    assert (await verifier.verify(bearer(one_hour), AUDIENCE)).iss == ISS


@pytest.mark.anyio
async def test_a_token_expiring_before_it_was_issued_is_rejected(
    clock: FakeClock, verifier: JwtVerifier
) -> None:
    """S-11: exp must come after iat."""
    now = int(clock.now.timestamp())
    token = mint(private_key("ES384"), "ES384", payload=claims(iat=now, exp=now - 1))
    assert await rejected(verifier, bearer(token)) == "exp is not after iat"


# --------------------------------------------------------------------------- S-12 replay


@pytest.mark.anyio
async def test_a_replayed_jti_is_rejected(verifier: JwtVerifier) -> None:
    """S-12: the same JWT twice: the second is refused."""
    token = mint(private_key("ES384"), "ES384")
    await verifier.verify(bearer(token), AUDIENCE)
    assert await rejected(verifier, bearer(token)) == "jti already used (replay)"


@pytest.mark.anyio
async def test_a_reused_jti_in_a_fresh_token_is_rejected(verifier: JwtVerifier) -> None:
    """S-12: replay is keyed by (iss, jti), not by the token bytes."""
    payload = claims()
    await verifier.verify(bearer(mint(private_key("ES384"), "ES384", payload=payload)), AUDIENCE)
    again = mint(private_key("ES384"), "ES384", payload=payload | {"tenant": "other"})
    assert await rejected(verifier, bearer(again)) == "jti already used (replay)"


@pytest.mark.anyio
async def test_a_rejected_token_does_not_use_up_its_jti(verifier: JwtVerifier) -> None:
    """S-12: only a token that passed every other check is remembered."""
    payload = claims()
    wrong_aud = mint(private_key("ES384"), "ES384", payload=payload | {"aud": BASE})
    await rejected(verifier, bearer(wrong_aud))
    ok = mint(private_key("ES384"), "ES384", payload=payload)
    assert (await verifier.verify(bearer(ok), AUDIENCE)).jti == payload["jti"]


@pytest.mark.anyio
async def test_a_token_issued_before_an_in_memory_cache_started_is_refused(
    clock: FakeClock, make_verifier: Callable[..., JwtVerifier]
) -> None:
    """S-12 across a restart: the new process's empty cache cannot know the token was used,
    so a token issued before it started, less the leeway, is refused; one within is not."""
    verifier = make_verifier(jwt_leeway_seconds=30)
    now = int(clock.now.timestamp())
    before = mint(private_key("ES384"), "ES384", payload=claims(iat=now - 31, exp=now + 200))
    assert "issued before this process started" in await rejected(verifier, bearer(before))
    within = mint(private_key("ES384"), "ES384", payload=claims(iat=now - 29, exp=now + 200))
    assert (await verifier.verify(bearer(within), AUDIENCE)).iss == ISS


@pytest.mark.anyio
async def test_the_memory_replay_cache_forgets_expired_entries(clock: FakeClock) -> None:
    """S-12: entries are kept only until the token could no longer be accepted."""
    cache = MemoryReplayCache(clock=clock)
    assert await cache.first_use(ISS, "j1", NOW + timedelta(seconds=10))
    assert not await cache.first_use(ISS, "j1", NOW + timedelta(seconds=10))
    assert await cache.first_use("https://other.example", "j1", NOW + timedelta(seconds=10))
    clock.advance(11)
    assert await cache.first_use(ISS, "j2", NOW + timedelta(seconds=100))
    assert len(cache) == 1
    assert await cache.first_use(ISS, "j1", NOW + timedelta(seconds=100))


@pytest.mark.anyio
async def test_a_full_memory_replay_cache_fails_closed(clock: FakeClock) -> None:
    """S-12: when full it refuses new jtis rather than forgetting live ones."""
    cache = MemoryReplayCache(max_entries=2, clock=clock)
    expiry = NOW + timedelta(seconds=60)
    assert await cache.first_use(ISS, "a", expiry)
    assert await cache.first_use(ISS, "b", expiry)
    assert not await cache.first_use(ISS, "c", expiry)
    clock.advance(61)
    assert await cache.first_use(ISS, "c", NOW + timedelta(seconds=600))


@pytest.mark.anyio
async def test_remembered_tokens_cost_about_a_hundred_bytes_each(clock: FakeClock) -> None:
    """A busy worker holds rate x token lifetime entries: they must stay small."""
    cache = MemoryReplayCache(clock=clock)
    expiries = [NOW + timedelta(seconds=60 + i % 300) for i in range(20_000)]
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for i, expiry in enumerate(expiries):
            assert await cache.first_use(ISS, str(uuid.uuid4()) + str(i), expiry)
        grown = sum(
            stat.size_diff for stat in tracemalloc.take_snapshot().compare_to(before, "filename")
        )
    finally:
        tracemalloc.stop()
    assert len(cache) == 20_000
    assert grown / 20_000 < 200  # the tuple-and-datetime entries before took ~340
    clock.advance(400)
    assert await cache.first_use(ISS, "late", NOW + timedelta(seconds=900))
    assert len(cache) == 1


# --------------------------------------------------------------------------- S-13, S-14


@pytest.mark.anyio
async def test_rejections_are_logged_with_a_reason_but_never_the_token(
    verifier: JwtVerifier, caplog: pytest.LogCaptureFixture
) -> None:
    """S-13, S-14: the log names iss, kid, jti and the reason; the token appears nowhere."""
    token = mint(private_key("ES384"), "ES384", payload=claims(aud=BASE))
    caplog.set_level(logging.DEBUG, logger="cds.security")
    with pytest.raises(Unauthorized) as caught:
        await verifier.verify(bearer(token), AUDIENCE)

    record = next(r for r in caplog.records if r.getMessage() == "caller JWT rejected")
    fields = record.__dict__["fields"]
    assert fields["reason"] == "aud is not this endpoint"
    assert (fields["iss"], fields["kid"]) == (ISS, "kid-1")
    signature = token.rsplit(".", 1)[1]
    for part in token.split("."):
        assert part not in caplog.text
        assert part not in str(fields)
        assert part not in caught.value.reason
    assert signature not in str(caught.value)


@pytest.mark.anyio
async def test_every_rejection_has_the_same_public_message(
    clock: FakeClock, verifier: JwtVerifier
) -> None:
    """S-13: the response never says which check failed."""
    key = private_key("ES384")
    headers = [
        None,
        "Basic abc",
        bearer("garbage"),
        bearer(mint(key, "ES384", payload=claims(iss="https://evil.example"))),
        bearer(mint(key, "ES384", payload=claims(aud=BASE))),
        bearer(mint(private_key("ES384", "intruder"), "ES384")),
    ]
    messages = set()
    for header in headers:
        with pytest.raises(Unauthorized) as caught:
            await verifier.verify(header, AUDIENCE)
        messages.add((str(caught.value), caught.value.status_code))
    assert messages == {("The request is not authorized.", 401)}


# --------------------------------------------------------------------------- spec example


@pytest.mark.anyio
async def test_the_spec_example_token_verifies_against_the_spec_jwks() -> None:
    """S-04..S-07: the spec's own ES384 example JWT, checked at a time when it was valid."""
    header = json.loads((SPEC / "22-jwt-header.json").read_text())
    payload = json.loads((SPEC / "23-jwt-payload.json").read_text())
    token = (SPEC / "31-jwt-compact-es384.txt").read_text().strip()
    settings = Settings(
        env="test",
        trusted_issuers={payload["iss"]: f"{header['jku']}|{SPEC / '24-jwks-public.json'}"},
    )
    valid_then = datetime.fromtimestamp(payload["exp"] - 60, UTC)
    # A process already running when the token was issued: it is the one that saw every use.
    started = datetime.fromtimestamp(payload["iat"], UTC)
    async with httpx.AsyncClient(transport=httpx.MockTransport(_no_network)) as client:
        verifier = JwtVerifier(
            settings.model_copy(update={"jwt_max_lifetime_seconds": 10**9}),
            MemoryReplayCache(clock=lambda: started),
            client,
            clock=lambda: valid_then,
        )
        caller = await verifier.verify(f"Bearer {token}", payload["aud"])
    assert caller == VerifiedCaller(
        iss=payload["iss"],
        jti=payload["jti"],
        tenant=payload["tenant"],
        kid=header["kid"],
        alg="ES384",
        expires_at=datetime.fromtimestamp(payload["exp"], UTC),
    )


@pytest.mark.anyio
async def test_the_spec_example_token_is_expired_today() -> None:
    """S-11: its exp is in 2015 (and its lifetime is years), so with the real clock it fails."""
    token = (SPEC / "31-jwt-compact-es384.txt").read_text().strip()
    settings = Settings(
        env="test",
        trusted_issuers={
            "https://fhir-ehr.example.com/": (
                f"https://fhir-ehr.example.com/jwk_uri|{SPEC / '24-jwks-public.json'}"
            )
        },
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(_no_network)) as client:
        verifier = JwtVerifier(settings, MemoryReplayCache(), client)
        reason = await rejected(
            verifier, f"Bearer {token}", "https://cds.example.org/cds-services/some-service"
        )
    assert reason == "token expired"


def _no_network(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"unexpected outbound request to {request.url}")


# --------------------------------------------------------------------------- sources and sandbox


def test_a_jwks_source_is_a_url_a_file_or_a_url_pinned_to_a_file(tmp_path: Path) -> None:
    """S-10: the three shapes of a trusted_issuers value."""
    file = tmp_path / "jwks.json"
    assert JwksSource.parse(JWKS_URL) == JwksSource(url=JWKS_URL)
    assert JwksSource.parse(str(file)) == JwksSource(file=file)
    assert JwksSource.parse(f"{JWKS_URL} | {file}") == JwksSource(url=JWKS_URL, file=file)


@pytest.mark.parametrize(
    "value",
    ["http://ehr.example.org/jwks.json", "ftp://x/jwks", "https:///nohost", f"{JWKS_URL}|", ""],
)
def test_a_bad_jwks_source_is_a_startup_error(value: str) -> None:
    """S-01, S-10: JWKS URLs must be https; a misconfiguration stops startup."""
    settings = Settings(env="test", trusted_issuers={ISS: value})
    with pytest.raises(ConfigError) as caught:
        JwtVerifier(settings, MemoryReplayCache(), httpx.AsyncClient())
    assert ISS in caught.value.problems[0]


def test_a_missing_jwks_file_is_a_startup_error(tmp_path: Path) -> None:
    """S-10: a pinned file that does not exist is reported at startup, not at the first call."""
    settings = Settings(env="test", trusted_issuers={ISS: str(tmp_path / "absent.json")})
    with pytest.raises(ConfigError, match="no such JWKS file"):
        JwtVerifier(settings, MemoryReplayCache(), httpx.AsyncClient())


@pytest.mark.anyio
async def test_a_file_source_accepts_no_jku_and_rereads_the_file_for_rotation(
    tmp_path: Path, clock: FakeClock
) -> None:
    """S-10: a bare file source has no URL a jku could name; a new kid in the file is found."""
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps({"keys": [public_jwk(private_key("ES384"), "kid-1")]}))
    settings = Settings(env="test", trusted_issuers={ISS: str(jwks_file)})
    async with httpx.AsyncClient(transport=httpx.MockTransport(_no_network)) as client:
        verifier = JwtVerifier(settings, MemoryReplayCache(clock=clock), client, clock=clock)
        await verifier.verify(bearer(mint(private_key("ES384"), "ES384")), AUDIENCE)
        with_jku = mint(private_key("ES384"), "ES384", jku=JWKS_URL)
        assert await rejected(verifier, bearer(with_jku)) == (
            "jku is not the configured JWKS URL of the issuer"
        )

        new_key = private_key("ES384", "file-rotated")
        jwks_file.write_text(json.dumps({"keys": [public_jwk(new_key, "kid-2")]}))
        clock.advance(30)
        payload = claims(iat=int(clock.now.timestamp()), exp=int(clock.now.timestamp()) + 60)
        caller = await verifier.verify(
            bearer(mint(new_key, "ES384", "kid-2", payload=payload)), AUDIENCE
        )
    assert caller.kid == "kid-2"


@pytest.mark.anyio
async def test_a_sandbox_shaped_token_is_accepted_through_a_pinned_jwks_copy(
    tmp_path: Path, clock: FakeClock
) -> None:
    """S-05, S-10: sandbox header (ES384, kid, jku) matches the pinned URL; keys from the file.

    The sandbox's private key is not in this repository, so our own key stands in for it.
    """
    kid = "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f"
    key = private_key("ES384", "sandbox-stand-in")
    pinned = tmp_path / "sandbox-jwks.json"
    pinned.write_text(json.dumps({"keys": [public_jwk(key, kid, "ES384")]}))
    settings = Settings(
        env="development", trusted_issuers={SANDBOX_ISSUER: f"{SANDBOX_JWKS_URL}|{pinned}"}
    )
    now = int(clock.now.timestamp())
    payload = {
        "iss": SANDBOX_ISSUER,
        "aud": AUDIENCE,
        "exp": now + 300,
        "iat": now + 3,  # the sandbox clock (the user's browser) may run a little ahead
        "jti": str(uuid.uuid4()),
    }
    token = mint(key, "ES384", kid, payload=payload, jku=SANDBOX_JWKS_URL)
    async with httpx.AsyncClient(transport=httpx.MockTransport(_no_network)) as client:
        verifier = JwtVerifier(settings, MemoryReplayCache(clock=clock), client, clock=clock)
        caller = await verifier.verify(bearer(token), AUDIENCE)
    assert (caller.iss, caller.kid, caller.tenant) == (SANDBOX_ISSUER, kid, None)


@pytest.mark.anyio
async def test_trust_sandbox_loads_the_shipped_sandbox_jwks_and_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """S-08, S-10: the development profile trusts the sandbox with its published ES384 key."""
    caplog.set_level(logging.WARNING, logger="cds.security")
    settings = Settings(env="development", trust_sandbox=True)
    async with httpx.AsyncClient(transport=httpx.MockTransport(_no_network)) as client:
        verifier = JwtVerifier(settings, MemoryReplayCache(), client)
        jwk = await verifier.key_cache.key(SANDBOX_ISSUER, "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f")
    published = json.loads(SANDBOX_JWKS_COPY.read_text())["keys"][0]
    assert jwk == published
    assert json.loads(SANDBOX_JWKS_FILE.read_text())["keys"] == [published]
    assert SANDBOX_ISSUER in verifier.trusted_issuers
    assert any("UNSAFE" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


@pytest.mark.anyio
async def test_the_sandbox_is_not_trusted_unless_asked(verifier: JwtVerifier) -> None:
    """S-08: trust_sandbox defaults to off."""
    assert verifier.trusted_issuers == {ISS}


def test_trust_sandbox_is_refused_in_production() -> None:
    """S-08: the forgeable sandbox issuer can never be trusted in production."""
    with pytest.raises(ValueError, match="TRUST_SANDBOX"):
        Settings(
            env="production",
            trust_sandbox=True,
            patient_hash_key="a-real-secret-for-this-test",
        )
