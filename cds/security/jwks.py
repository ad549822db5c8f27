"""Where each trusted issuer's public keys come from (a pinned URL, a file, or both) and the
cache that holds them: a TTL, and a rate-limited reload when a token names an unknown ``kid``."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import httpx

from cds.clock import Clock, system_clock
from cds.errors import ConfigError, Unauthorized
from cds.logs import log_fields
from cds.settings import Settings

# One logger for the whole package: operators filter security events by this name.
logger = logging.getLogger("cds.security")

Jwk = dict[str, Any]

SANDBOX_ISSUER: Final = "https://sandbox.cds-hooks.org"
SANDBOX_JWKS_URL: Final = "https://sandbox.cds-hooks.org/.well-known/jwks.json"
# UNSAFE: the sandbox's private key is published in its repository; anyone can forge its tokens.
SANDBOX_JWKS_FILE: Final = Path(__file__).resolve().parents[1] / "keys" / "sandbox-jwks.json"

MAX_JWKS_BYTES: Final = 256 * 1024
JWKS_FETCH_TIMEOUT_SECONDS: Final = 5.0
_SOURCE_SEPARATOR: Final = "|"


@dataclass(frozen=True, slots=True)
class JwksSource:
    """Where one trusted issuer's keys come from, and the only ``jku`` its tokens may name.

    ``Settings.trusted_issuers`` maps each ``iss`` to one of these strings (or to an object
    whose ``jwks`` is one):

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
        """A source from its ``trusted_issuers`` string (the forms above)."""
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
    for iss, value in settings.issuer_jwks().items():
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
