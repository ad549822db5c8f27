"""Verifies the JWT a CDS Client presents as its Bearer token (CDS Hooks 2.0, S-03..S-14)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import httpx

from cds.clock import Clock, system_clock
from cds.errors import Unauthorized
from cds.logs import log_fields
from cds.security.jwks import SANDBOX_ISSUER, Jwk, JwksCache, trusted_sources
from cds.security.replay import MemoryReplayCache, ReplayCache
from cds.security.tokens import (
    ALLOWED_ALGORITHMS,
    Header,
    StrictJws,
    bearer_token,
    check_audience,
    check_signature,
    claimed_jti,
    claimed_tenant,
    decoded,
    numeric_date,
    unverified_issuer,
    verification_key,
)
from cds.settings import Settings

# One logger for the whole package: operators filter security events by this name.
logger = logging.getLogger("cds.security")

# Parsed verification keys held at most; a rotation leaves stale ones, dropped all at once.
MAX_PARSED_KEYS: Final = 256


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
        # A cache in memory starts empty with the process: a token issued before the start may
        # have been accepted by the previous process, so it is refused (CDS clients mint one
        # per request). The leeway allows for an EHR clock running behind ours.
        self._issued_not_before = (
            replay_cache.started_at - self._leeway
            if isinstance(replay_cache, MemoryReplayCache)
            else None
        )
        self._tenants = frozenset(settings.trusted_tenants)
        self._jws = StrictJws(algorithms=sorted(ALLOWED_ALGORITHMS))
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
        token = decoded(self._jws, bearer_token(authorization_header))
        header, claims = token.header, token.claims
        attempt.kid = header.kid
        iss = unverified_issuer(claims)
        attempt.iss = iss
        source = self._sources.get(iss)
        if source is None:
            raise Unauthorized("issuer is not trusted")
        if not source.accepts_jku(header.jku):
            raise Unauthorized("jku is not the configured JWKS URL of the issuer")
        jwk = await self.key_cache.key(iss, header.kid)
        check_signature(token, self._public_key(iss, header, jwk))
        jti = claimed_jti(claims)
        attempt.jti = jti
        check_audience(claims, audience)
        expires_at = self._checked_lifetime(claims)
        tenant = claimed_tenant(claims)
        if self._tenants and tenant not in self._tenants:
            # S-08 step 4: with an allowlist configured, a token must name a listed tenant.
            raise Unauthorized("tenant is not trusted")
        if not await self._replay.first_use(iss, jti, expires_at + self._leeway):
            raise Unauthorized("jti already used (replay)")
        return VerifiedCaller(
            iss=iss, jti=jti, tenant=tenant, kid=header.kid, alg=header.alg, expires_at=expires_at
        )

    def _public_key(self, iss: str, header: Header, jwk: Jwk) -> Any:
        """The key object for ``jwk``, parsed once per JWK the key cache hands out."""
        slot = (header.alg, iss, header.kid)
        cached = self._parsed_keys.get(slot)
        if cached is not None and cached[0] is jwk:
            return cached[1]
        key = verification_key(header.alg, jwk)
        if len(self._parsed_keys) >= MAX_PARSED_KEYS:
            self._parsed_keys.clear()
        self._parsed_keys[slot] = (jwk, key)
        return key

    def _checked_lifetime(self, claims: Mapping[str, Any]) -> datetime:
        """``exp`` after checking exp/iat/nbf against the clock with leeway, and the lifetime."""
        now = self._clock()
        expires_at = numeric_date(claims, "exp")
        issued_at = numeric_date(claims, "iat")
        if now >= expires_at + self._leeway:
            raise Unauthorized("token expired")
        if issued_at > now + self._leeway:
            raise Unauthorized("iat is in the future")
        if "nbf" in claims and numeric_date(claims, "nbf") > now + self._leeway:
            raise Unauthorized("token not yet valid (nbf)")
        if expires_at <= issued_at:
            raise Unauthorized("exp is not after iat")
        if expires_at - issued_at > self._max_lifetime:
            raise Unauthorized("token lifetime (exp - iat) exceeds the maximum")
        if self._issued_not_before is not None and issued_at < self._issued_not_before:
            raise Unauthorized("issued before this process started: a replay cannot be ruled out")
        return expires_at
