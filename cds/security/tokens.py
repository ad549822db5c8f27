"""A CDS Client's JWT read and checked piece by piece: the Bearer header, the compact JWS, its
header, the signature and each claim (S-03..S-14). Every failure is an ``Unauthorized``."""

from __future__ import annotations

import binascii
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import jwt
from jwt.algorithms import get_default_algorithms

from cds.errors import Unauthorized
from cds.security.jwks import Jwk

# Asymmetric algorithms only (spec: no "none", no HMAC), each with the JWK shape it needs.
_KEY_SHAPE: Final[Mapping[str, tuple[str, str | None]]] = {
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
}
ALLOWED_ALGORITHMS: Final = frozenset(_KEY_SHAPE)
_ALGORITHMS: Final = {
    name: impl for name, impl in get_default_algorithms().items() if name in ALLOWED_ALGORITHMS
}

_BASE64URL: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_TO_STANDARD: Final = bytes.maketrans(b"-_", b"+/")
# Each character's 6 bits, and those a segment's last character must leave unset for the
# encoding to be canonical, by the segment's length modulo 4 (0: none unused; 1 is refused).
_SEXTET: Final = {character: value for value, character in enumerate(_BASE64URL)}
_SPARE_BITS: Final = (0, 0, 0b1111, 0b11)

MAX_TOKEN_CHARS: Final = 16 * 1024
MAX_JTI_CHARS: Final = 255


@dataclass(frozen=True, slots=True)
class Header:
    """The JWS header fields the checks read, after ``typ``, ``kid``, ``alg`` and ``crit``."""

    alg: str
    kid: str
    jku: object


@dataclass(frozen=True, slots=True)
class Token:
    """A compact JWS decoded once per request: header checks, claims and signature read this."""

    header: Header
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes


class StrictJws(jwt.PyJWS):
    """PyJWS with its strict reading of each base64url segment done by bytes methods.

    PyJWT checks every character of a segment against the alphabet in a Python generator:
    about 0.1 ms of a call's CPU for an RS384 token (about 620 characters), more than its
    signature check. Deleting the alphabet's bytes leaves nothing exactly when that check
    passes; every other check (padding, length, the canonical encoding) is PyJWT's, in its
    order, with its errors.

    PyJWT finds a segment not canonical by encoding what it decoded and comparing: of a
    segment of alphabet characters only, that differs exactly when its last character carries
    bits the decoded bytes do not have (the low 4 bits after 2 characters of a group, the low
    2 after 3), so that one character is read instead (about 3 us less a token)."""

    @staticmethod
    def _decode_base64url_segment(segment: bytes, name: str) -> bytes:
        stripped = segment.rstrip(b"=")
        padding = len(segment) - len(stripped)
        if padding > 2:
            raise jwt.DecodeError(f"Invalid {name} padding")
        if padding and len(segment) % 4 != 0:
            raise jwt.DecodeError(f"Invalid {name} padding")
        rest = len(stripped) % 4
        if rest == 1 or stripped.translate(None, _BASE64URL):
            raise jwt.DecodeError(f"Invalid {name} padding")
        if rest and _SEXTET[stripped[-1]] & _SPARE_BITS[rest]:
            raise jwt.DecodeError(f"Invalid {name} padding")
        try:
            return binascii.a2b_base64(stripped.translate(_TO_STANDARD) + b"=" * (-rest % 4))
        except (TypeError, binascii.Error) as err:
            raise jwt.DecodeError(f"Invalid {name} padding") from err


def bearer_token(authorization_header: str | None) -> str:
    """The compact JWS of a ``Bearer`` Authorization header, bounded in size."""
    if authorization_header is None or not authorization_header.strip():
        raise Unauthorized("no Authorization header")
    parts = authorization_header.split()
    if parts[0].lower() != "bearer":
        raise Unauthorized("authorization scheme is not Bearer")
    if len(parts) != 2:
        raise Unauthorized("malformed Authorization header")
    token = parts[1]
    if len(token) > MAX_TOKEN_CHARS:
        raise Unauthorized("token too large")
    if token.count(".") != 2:
        raise Unauthorized("not a compact JWS")
    return token


def decoded(jws: jwt.PyJWS, token: str) -> Token:
    """The token's checked header and its claims (not yet verified) from one decoding pass."""
    try:
        parts = jws.decode_complete(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise Unauthorized(f"malformed token: {type(exc).__name__}") from exc
    header = _checked_header(parts["header"])
    return Token(
        header=header,
        claims=_claims_object(parts["payload"]),
        # What PyJWS signs and checks: the compact form up to the last dot, as bytes.
        signing_input=token.rpartition(".")[0].encode(),
        signature=parts["signature"],
    )


def _checked_header(header: dict[str, Any]) -> Header:
    typ, kid, alg = header.get("typ"), header.get("kid"), header.get("alg")
    if not isinstance(typ, str) or typ.upper() != "JWT":
        raise Unauthorized("header typ is not JWT")
    if not isinstance(kid, str) or not kid:
        raise Unauthorized("header kid missing")
    if alg not in ALLOWED_ALGORITHMS:
        raise Unauthorized("header alg not allowed")
    if "crit" in header:
        raise Unauthorized("critical header extensions are not supported")
    return Header(alg=str(alg), kid=kid, jku=header.get("jku"))


def unverified_issuer(claims: Mapping[str, Any]) -> str:
    """The ``iss`` claim before the signature check: only used to pick the issuer's keys."""
    iss = claims.get("iss")
    if not isinstance(iss, str) or not iss:
        raise Unauthorized("iss claim missing")
    return iss


def _claims_object(payload: bytes) -> dict[str, Any]:
    try:
        claims = json.loads(payload)
    except ValueError as exc:
        raise Unauthorized("payload is not JSON") from exc
    if not isinstance(claims, dict):
        raise Unauthorized("payload is not a JSON object")
    return claims


def verification_key(alg: str, jwk: Jwk) -> Any:
    """The verification key, once the JWK's kty/crv/alg are shown to fit the token's alg."""
    kty, crv = _KEY_SHAPE[alg]
    if jwk.get("kty") != kty or (crv is not None and jwk.get("crv") != crv):
        raise Unauthorized("token alg does not fit the key type or curve")
    if "alg" in jwk and jwk["alg"] != alg:
        raise Unauthorized("token alg differs from the key's alg")
    algorithm = _ALGORITHMS[alg]
    try:
        key = algorithm.from_jwk(jwk)
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise Unauthorized("issuer key is not a valid JWK") from exc
    try:
        key = algorithm.prepare_key(key)
    except jwt.PyJWTError as exc:
        raise Unauthorized("issuer key unusable or too weak") from exc
    # PyJWS would only warn about a short key unless told to enforce; we always refuse it.
    if algorithm.check_key_length(key) is not None:
        raise Unauthorized("issuer key unusable or too weak")
    return key


def check_signature(token: Token, key: Any) -> None:
    """The signature over the token's signing input, as ``PyJWS.decode_complete`` checks it."""
    try:
        valid = _ALGORITHMS[token.header.alg].verify(token.signing_input, key, token.signature)
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise Unauthorized(f"signature check failed: {type(exc).__name__}") from exc
    if not valid:
        raise Unauthorized("signature does not verify")


def check_audience(claims: Mapping[str, Any], audience: str | Sequence[str]) -> None:
    """S-09: one ``aud`` names an accepted endpoint URL (a trailing slash is not a difference)."""
    aud = claims.get("aud")
    if isinstance(aud, str):
        candidates = [aud]
    elif isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud):
        candidates = aud
    else:
        raise Unauthorized("aud claim missing or malformed")
    accepted = {a.rstrip("/") for a in ((audience,) if isinstance(audience, str) else audience)}
    if not any(candidate.rstrip("/") in accepted for candidate in candidates):
        raise Unauthorized("aud is not this endpoint")


def numeric_date(claims: Mapping[str, Any], name: str) -> datetime:
    """The claim ``name`` as a NumericDate (seconds since the epoch), in UTC."""
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Unauthorized(f"{name} claim missing or not a number")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise Unauthorized(f"{name} claim out of range") from exc


def claimed_jti(claims: Mapping[str, Any]) -> str:
    """The ``jti`` claim: required, and short enough to remember."""
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise Unauthorized("jti claim missing")
    if len(jti) > MAX_JTI_CHARS:
        raise Unauthorized("jti claim too long")
    return jti


def claimed_tenant(claims: Mapping[str, Any]) -> str | None:
    """The optional ``tenant`` claim (S-08 step 4)."""
    tenant = claims.get("tenant")
    if tenant is not None and not isinstance(tenant, str):
        raise Unauthorized("tenant claim is not a string")
    return tenant
