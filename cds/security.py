"""Verifies the JWT a CDS Client presents as its Bearer token (CDS Hooks 2.0, S-03..S-14)."""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Protocol

import httpx
import jwt
from jwt.algorithms import get_default_algorithms

from cds.clock import Clock, system_clock
from cds.errors import ConfigError, Unauthorized
from cds.logs import log_fields
from cds.settings import ReplayCacheChoice, Settings

logger = logging.getLogger(__name__)

Jwk = dict[str, Any]

SANDBOX_ISSUER: Final = "https://sandbox.cds-hooks.org"
SANDBOX_JWKS_URL: Final = "https://sandbox.cds-hooks.org/.well-known/jwks.json"
# UNSAFE: the sandbox's private key is published in its repository; anyone can forge its tokens.
SANDBOX_JWKS_FILE: Final = Path(__file__).resolve().parent / "keys" / "sandbox-jwks.json"

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

MAX_TOKEN_CHARS: Final = 16 * 1024
# Parsed verification keys held at most; a rotation leaves stale ones, dropped all at once.
MAX_PARSED_KEYS: Final = 256
MAX_JWKS_BYTES: Final = 256 * 1024
MAX_JTI_CHARS: Final = 255
JWKS_FETCH_TIMEOUT_SECONDS: Final = 5.0
_SOURCE_SEPARATOR: Final = "|"


# --------------------------------------------------------------------------- replay cache


class ReplayCache(Protocol):
    """Remembers (iss, jti) pairs until they expire (CDS Hooks best practice, step 6)."""

    async def first_use(self, iss: str, jti: str, expires_at: datetime) -> bool:
        """True the first time (iss, jti) is seen before ``expires_at``; False on a replay."""
        ...


class MemoryReplayCache:
    """Per-process replay cache; with several workers or replicas use the shared database one.

    Holds ``rate x token lifetime`` entries (5-minute tokens at 1,000 calls/s: 300,000), so each
    is kept small: an 8-byte digest of (iss, jti) in a set, listed under the second its token
    expires, about 150 bytes in all (45 MB when full). A digest collision could only refuse a
    fresh token, with odds near 2^-64 per call; it can never let a replay through.

    Bounded: when ``max_entries`` unexpired entries are held it fails closed (returns False,
    i.e. 401) rather than forget a jti early, since forgetting would reopen a replay window.
    Only tokens with a valid signature from a trusted issuer ever reach it.
    """

    def __init__(self, max_entries: int = 300_000, *, clock: Clock = system_clock) -> None:
        self._max_entries = max_entries
        self._clock = clock
        self._seen: set[int] = set()
        self._expiring: dict[int, list[int]] = {}  # expiry second -> digests
        self._seconds: list[int] = []  # heap of the keys of ``_expiring``

    def __len__(self) -> int:
        return len(self._seen)

    async def first_use(self, iss: str, jti: str, expires_at: datetime) -> bool:
        self._purge(self._clock().timestamp())
        key = _replay_digest(iss, jti)
        if key in self._seen:
            return False
        if len(self._seen) >= self._max_entries:
            logger.error(
                "replay cache full; refusing tokens until entries expire",
                extra=log_fields(iss=iss, jti=jti, count=len(self._seen)),
            )
            return False
        self._seen.add(key)
        # Kept until the end of the second it expires in: never forgotten early.
        second = math.ceil(expires_at.timestamp())
        bucket = self._expiring.get(second)
        if bucket is None:
            bucket = self._expiring[second] = []
            heapq.heappush(self._seconds, second)
        bucket.append(key)
        return True

    def _purge(self, now: float) -> None:
        while self._seconds and self._seconds[0] <= now:
            for key in self._expiring.pop(heapq.heappop(self._seconds)):
                self._seen.discard(key)


def _replay_digest(iss: str, jti: str) -> int:
    digest = hashlib.blake2b(f"{iss}\0{jti}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def check_replay_cache(settings: Settings) -> None:
    """``ConfigError`` for ``CDS_REPLAY_CACHE=memory`` with several workers.

    Each worker would hold its own cache, so a token replayed to another worker would pass.
    """
    if settings.replay_cache is ReplayCacheChoice.memory and settings.workers > 1:
        raise ConfigError(
            [
                f"CDS_REPLAY_CACHE=memory is unsafe with CDS_WORKERS={settings.workers}: a jti "
                "seen by one worker is unknown to the others. Use 'database' (or 'auto')."
            ]
        )


def replay_cache_for(settings: Settings, database: ReplayCache) -> ReplayCache:
    """The replay cache ``CDS_REPLAY_CACHE`` asks for; ``database`` is the shared one."""
    check_replay_cache(settings)
    if settings.effective_replay_cache is ReplayCacheChoice.memory:
        return MemoryReplayCache()
    return database


# --------------------------------------------------------------------------- key sources


@dataclass(frozen=True, slots=True)
class JwksSource:
    """Where one trusted issuer's keys come from, and the only ``jku`` its tokens may name.

    ``Settings.trusted_issuers`` maps each ``iss`` to one of these strings:

    * ``"https://ehr.example.org/jwks.json"``: keys fetched from that URL; a token's ``jku``
      must be absent or exactly this URL.
    * ``"/etc/cds/ehr-jwks.json"`` (no ``://``): keys read from a local JWK Set file; the
      token must carry no ``jku``, as there is no URL it could legitimately name.
    * ``"https://ehr.example.org/jwks.json|/etc/cds/ehr-jwks.json"``: a pinned local copy of
      that URL; a ``jku`` must be absent or exactly the URL, keys come from the file and the
      URL is never fetched. ``trust_sandbox`` adds the sandbox issuer this way.

    A token's ``jku`` is only ever compared with the configured URL, never dereferenced (no
    SSRF, no attacker-supplied keys); embedded ``jwk``/``x5u``/``x5c`` headers are ignored.
    """

    url: str | None = None
    file: Path | None = None

    @classmethod
    def parse(cls, value: str) -> JwksSource:
        """A source from its ``trusted_issuers`` string (see the module docstring)."""
        url_part, sep, file_part = value.partition(_SOURCE_SEPARATOR)
        url_part, file_part = url_part.strip(), file_part.strip()
        if sep:
            if not file_part:
                raise ValueError("pinned source needs a file after '|'")
            return cls(url=_https_url(url_part), file=Path(file_part).expanduser())
        if "://" in url_part:
            return cls(url=_https_url(url_part))
        if not url_part:
            raise ValueError("empty JWKS source")
        return cls(file=Path(url_part).expanduser())

    def accepts_jku(self, jku: object) -> bool:
        """Whether a token header's ``jku`` (None when absent) is acceptable for this issuer."""
        return jku is None or (self.url is not None and jku == self.url)


def _https_url(value: str) -> str:
    try:
        parsed = httpx.URL(value)
    except httpx.InvalidURL as exc:
        raise ValueError(f"invalid JWKS URL: {value!r}") from exc
    if parsed.scheme != "https" or not parsed.host:
        raise ValueError(f"JWKS URL must be an absolute https URL: {value!r}")
    return value


def trusted_sources(settings: Settings) -> dict[str, JwksSource]:
    """Every trusted issuer's key source; raises ``ConfigError`` listing every bad entry."""
    sources: dict[str, JwksSource] = {}
    problems: list[str] = []
    for iss, value in settings.trusted_issuers.items():
        try:
            sources[iss] = JwksSource.parse(value)
        except ValueError as exc:
            problems.append(f"CDS_TRUSTED_ISSUERS[{iss!r}]: {exc}")
            continue
        file = sources[iss].file
        if file is not None and not file.is_file():
            problems.append(f"CDS_TRUSTED_ISSUERS[{iss!r}]: no such JWKS file {file}")
    if settings.trust_sandbox and SANDBOX_ISSUER not in sources:
        sources[SANDBOX_ISSUER] = JwksSource(url=SANDBOX_JWKS_URL, file=SANDBOX_JWKS_FILE)
        if not SANDBOX_JWKS_FILE.is_file():
            problems.append(f"CDS_TRUST_SANDBOX: packaged key set missing: {SANDBOX_JWKS_FILE}")
    if problems:
        raise ConfigError(problems)
    return sources


class _JwksUnavailableError(Exception):
    """A key set could not be loaded; the message names the cause, never key material."""


@dataclass
class _IssuerKeys:
    keys: dict[str, Jwk] = field(default_factory=dict)
    loaded_at: datetime | None = None
    attempted_at: datetime | None = None
    generation: int = 0  # completed reload attempts, so waiters can tell one just finished
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class JwksCache:
    """Per-issuer public keys with a TTL and a rate-limited refresh on an unknown ``kid``.

    A key set is (re)loaded when it is older than ``cache_seconds``, or when a token names a
    ``kid`` it lacks -- but never more often than once per ``min_refresh_seconds`` per issuer,
    so a flood of made-up kids cannot hammer the issuer. A failed reload keeps the previous
    keys, so a brief issuer outage does not lock every caller out.
    """

    def __init__(
        self,
        sources: Mapping[str, JwksSource],
        http_client: httpx.AsyncClient,
        *,
        cache_seconds: float,
        min_refresh_seconds: float,
        clock: Clock = system_clock,
    ) -> None:
        self._sources = dict(sources)
        self._http = http_client
        self._ttl = timedelta(seconds=cache_seconds)
        self._min_refresh = timedelta(seconds=min_refresh_seconds)
        self._clock = clock
        self._state = {iss: _IssuerKeys() for iss in self._sources}

    async def key(self, iss: str, kid: str) -> Jwk:
        """The JWK ``kid`` of trusted issuer ``iss``; raises ``Unauthorized`` if it has none."""
        state = self._state.get(iss)
        if state is None:
            raise Unauthorized("issuer is not trusted")
        if self._is_stale(state):
            await self._refresh(iss, state)
        jwk = state.keys.get(kid)
        if jwk is None:
            await self._refresh(iss, state)
            jwk = state.keys.get(kid)
        if jwk is None:
            raise Unauthorized("no key with this kid in the issuer's JWKS")
        return jwk

    def _is_stale(self, state: _IssuerKeys) -> bool:
        return state.loaded_at is None or self._clock() - state.loaded_at >= self._ttl

    async def _refresh(self, iss: str, state: _IssuerKeys) -> None:
        """Reload unless rate-limited; callers arriving during a reload wait for its result."""
        generation = state.generation
        async with state.lock:
            if state.generation != generation:
                return
            now = self._clock()
            if state.attempted_at is not None and now - state.attempted_at < self._min_refresh:
                return
            state.attempted_at = now
            try:
                keys = await self._load(self._sources[iss])
            except _JwksUnavailableError as exc:
                logger.warning(
                    "could not load the issuer's JWKS; keeping the previous keys",
                    extra=log_fields(iss=iss, reason=str(exc), count=len(state.keys)),
                )
            else:
                state.keys = keys
                state.loaded_at = now
            finally:
                state.generation += 1

    async def _load(self, source: JwksSource) -> dict[str, Jwk]:
        if source.file is not None:
            raw = await _read_file(source.file)
        elif source.url is not None:
            raw = await self._fetch(source.url)
        else:  # pragma: no cover - JwksSource.parse never builds one
            raise _JwksUnavailableError("source has neither a file nor a URL")
        return _parse_jwks(raw)

    async def _fetch(self, url: str) -> bytes:
        body = bytearray()
        try:
            async with self._http.stream(
                "GET",
                url,
                headers={"Accept": "application/json"},
                timeout=JWKS_FETCH_TIMEOUT_SECONDS,
                follow_redirects=False,  # a redirect could lead anywhere: only the pinned URL
            ) as response:
                if response.status_code != 200:
                    raise _JwksUnavailableError(f"HTTP {response.status_code}")
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_JWKS_BYTES:
                        raise _JwksUnavailableError("JWKS document too large")
        except httpx.HTTPError as exc:
            raise _JwksUnavailableError(type(exc).__name__) from exc
        return bytes(body)


async def _read_file(path: Path) -> bytes:
    try:
        return await asyncio.to_thread(path.read_bytes)
    except OSError as exc:
        raise _JwksUnavailableError(f"cannot read {path}: {type(exc).__name__}") from exc


def _parse_jwks(raw: bytes) -> dict[str, Jwk]:
    """Usable public signing keys by kid; a kid listed twice is ambiguous and dropped."""
    try:
        document = json.loads(raw)
    except ValueError as exc:
        raise _JwksUnavailableError("JWKS is not JSON") from exc
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise _JwksUnavailableError("JWKS has no 'keys' array")
    keys: dict[str, Jwk] = {}
    duplicated: set[str] = set()
    for jwk in document["keys"]:
        if not _is_public_signing_key(jwk):
            continue
        kid = jwk["kid"]
        if kid in keys:
            duplicated.add(kid)
        keys[kid] = jwk
    for kid in duplicated:
        del keys[kid]
    return keys


def _is_public_signing_key(jwk: object) -> bool:
    return (
        isinstance(jwk, dict)
        and isinstance(jwk.get("kid"), str)
        and bool(jwk["kid"])
        and jwk.get("use", "sig") == "sig"
        and "d" not in jwk  # never treat published private key material as a verification key
    )


# --------------------------------------------------------------------------- verification


@dataclass(frozen=True, slots=True)
class VerifiedCaller:
    """Who called, as established by a verified JWT; deliberately never holds the token."""

    iss: str
    jti: str
    tenant: str | None
    kid: str
    alg: str
    expires_at: datetime


@dataclass
class _Attempt:
    """What is known about a token so far, for the rejection log line."""

    iss: str | None = None
    kid: str | None = None
    jti: str | None = None


@dataclass(frozen=True, slots=True)
class _Header:
    alg: str
    kid: str
    jku: object


@dataclass(frozen=True, slots=True)
class _Token:
    """A compact JWS decoded once per request: header checks, claims and signature read this."""

    header: _Header
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes


class JwtVerifier:
    """Checks the ``Authorization`` header of a CDS Hooks request against the trusted issuers.

    Every rejection raises ``Unauthorized`` whose reason is for the logs only; the response
    stays generic, and neither the reason nor any log line contains the token.
    """

    def __init__(
        self,
        settings: Settings,
        replay_cache: ReplayCache,
        http_client: httpx.AsyncClient,
        *,
        clock: Clock = system_clock,
    ) -> None:
        self._sources = trusted_sources(settings)
        self._replay = replay_cache
        self._clock = clock
        self._leeway = timedelta(seconds=settings.jwt_leeway_seconds)
        self._max_lifetime = timedelta(seconds=settings.jwt_max_lifetime_seconds)
        self._tenants = frozenset(settings.trusted_tenants)
        self._jws = jwt.PyJWS(algorithms=sorted(ALLOWED_ALGORITHMS))
        # (alg, iss, kid) -> (the JWK it was parsed from, the key object): parsing a JWK costs
        # more than some signature checks, and the JWK's identity tells when a reload replaced it.
        self._parsed_keys: dict[tuple[str, str, str], tuple[Jwk, Any]] = {}
        self.key_cache = JwksCache(
            self._sources,
            http_client,
            cache_seconds=settings.jwks_cache_seconds,
            min_refresh_seconds=settings.jwks_min_refresh_seconds,
            clock=clock,
        )
        if settings.trust_sandbox:
            logger.warning(
                "UNSAFE: trusting the CDS Hooks sandbox issuer, whose private key is public; "
                "anyone can forge its tokens. Development and testing only.",
                extra=log_fields(iss=SANDBOX_ISSUER, env=settings.env.value),
            )

    @property
    def trusted_issuers(self) -> frozenset[str]:
        return frozenset(self._sources)

    async def verify(
        self, authorization_header: str | None, audience: str | Sequence[str]
    ) -> VerifiedCaller:
        """The verified caller, or ``Unauthorized``; ``audience`` is the invoked endpoint URL
        (or the URLs it may be called by, S-09)."""
        attempt = _Attempt()
        try:
            caller = await self._verify(authorization_header, audience, attempt)
        except Unauthorized as exc:
            logger.warning(
                "caller JWT rejected",
                extra=log_fields(
                    reason=exc.reason, iss=attempt.iss, kid=attempt.kid, jti=attempt.jti
                ),
            )
            raise
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "caller JWT accepted",
                extra=log_fields(
                    iss=caller.iss, kid=caller.kid, jti=caller.jti, tenant=caller.tenant
                ),
            )
        return caller

    async def _verify(
        self, authorization_header: str | None, audience: str | Sequence[str], attempt: _Attempt
    ) -> VerifiedCaller:
        token = _decoded(self._jws, _bearer_token(authorization_header))
        header, claims = token.header, token.claims
        attempt.kid = header.kid
        iss = _unverified_issuer(claims)
        attempt.iss = iss
        source = self._sources.get(iss)
        if source is None:
            raise Unauthorized("issuer is not trusted")
        if not source.accepts_jku(header.jku):
            raise Unauthorized("jku is not the configured JWKS URL of the issuer")
        jwk = await self.key_cache.key(iss, header.kid)
        _check_signature(token, self._public_key(iss, header, jwk))
        jti = _jti(claims)
        attempt.jti = jti
        _check_audience(claims, audience)
        expires_at = self._checked_lifetime(claims)
        tenant = _tenant(claims)
        if self._tenants and tenant not in self._tenants:
            # S-08 step 4: with an allowlist configured, a token must name a listed tenant.
            raise Unauthorized("tenant is not trusted")
        if not await self._replay.first_use(iss, jti, expires_at + self._leeway):
            raise Unauthorized("jti already used (replay)")
        return VerifiedCaller(
            iss=iss, jti=jti, tenant=tenant, kid=header.kid, alg=header.alg, expires_at=expires_at
        )

    def _public_key(self, iss: str, header: _Header, jwk: Jwk) -> Any:
        """The key object for ``jwk``, parsed once per JWK the key cache hands out."""
        slot = (header.alg, iss, header.kid)
        cached = self._parsed_keys.get(slot)
        if cached is not None and cached[0] is jwk:
            return cached[1]
        key = _public_key(header.alg, jwk)
        if len(self._parsed_keys) >= MAX_PARSED_KEYS:
            self._parsed_keys.clear()
        self._parsed_keys[slot] = (jwk, key)
        return key

    def _checked_lifetime(self, claims: Mapping[str, Any]) -> datetime:
        """``exp`` after checking exp/iat/nbf against the clock with leeway, and the lifetime."""
        now = self._clock()
        expires_at = _numeric_date(claims, "exp")
        issued_at = _numeric_date(claims, "iat")
        if now >= expires_at + self._leeway:
            raise Unauthorized("token expired")
        if issued_at > now + self._leeway:
            raise Unauthorized("iat is in the future")
        if "nbf" in claims and _numeric_date(claims, "nbf") > now + self._leeway:
            raise Unauthorized("token not yet valid (nbf)")
        if expires_at <= issued_at:
            raise Unauthorized("exp is not after iat")
        if expires_at - issued_at > self._max_lifetime:
            raise Unauthorized("token lifetime (exp - iat) exceeds the maximum")
        return expires_at


def _bearer_token(authorization_header: str | None) -> str:
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


def _decoded(jws: jwt.PyJWS, token: str) -> _Token:
    """The token's checked header and its claims (not yet verified) from one decoding pass."""
    try:
        parts = jws.decode_complete(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise Unauthorized(f"malformed token: {type(exc).__name__}") from exc
    header = _checked_header(parts["header"])
    return _Token(
        header=header,
        claims=_claims_object(parts["payload"]),
        # What PyJWS signs and checks: the compact form up to the last dot, as bytes.
        signing_input=token.rpartition(".")[0].encode(),
        signature=parts["signature"],
    )


def _checked_header(header: dict[str, Any]) -> _Header:
    typ, kid, alg = header.get("typ"), header.get("kid"), header.get("alg")
    if not isinstance(typ, str) or typ.upper() != "JWT":
        raise Unauthorized("header typ is not JWT")
    if not isinstance(kid, str) or not kid:
        raise Unauthorized("header kid missing")
    if alg not in ALLOWED_ALGORITHMS:
        raise Unauthorized("header alg not allowed")
    if "crit" in header:
        raise Unauthorized("critical header extensions are not supported")
    return _Header(alg=str(alg), kid=kid, jku=header.get("jku"))


def _unverified_issuer(claims: Mapping[str, Any]) -> str:
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


def _public_key(alg: str, jwk: Jwk) -> Any:
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


def _check_signature(token: _Token, key: Any) -> None:
    """The signature over the token's signing input, as ``PyJWS.decode_complete`` checks it."""
    try:
        valid = _ALGORITHMS[token.header.alg].verify(token.signing_input, key, token.signature)
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise Unauthorized(f"signature check failed: {type(exc).__name__}") from exc
    if not valid:
        raise Unauthorized("signature does not verify")


def _check_audience(claims: Mapping[str, Any], audience: str | Sequence[str]) -> None:
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


def _numeric_date(claims: Mapping[str, Any], name: str) -> datetime:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Unauthorized(f"{name} claim missing or not a number")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise Unauthorized(f"{name} claim out of range") from exc


def _jti(claims: Mapping[str, Any]) -> str:
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise Unauthorized("jti claim missing")
    if len(jti) > MAX_JTI_CHARS:
        raise Unauthorized("jti claim too long")
    return jti


def _tenant(claims: Mapping[str, Any]) -> str | None:
    tenant = claims.get("tenant")
    if tenant is not None and not isinstance(tenant, str):
        raise Unauthorized("tenant claim is not a string")
    return tenant
