"""Who may call: the EHR's JWT verified against trusted issuers' keys, once per jti."""

from cds.security.jwks import (
    SANDBOX_ISSUER,
    SANDBOX_JWKS_FILE,
    SANDBOX_JWKS_URL,
    JwksCache,
    JwksSource,
    trusted_sources,
)
from cds.security.replay import (
    MemoryReplayCache,
    ReplayCache,
    check_replay_cache,
    replay_cache_for,
)
from cds.security.tokens import ALLOWED_ALGORITHMS
from cds.security.verifier import JwtVerifier, VerifiedCaller

__all__ = [
    "ALLOWED_ALGORITHMS",
    "SANDBOX_ISSUER",
    "SANDBOX_JWKS_FILE",
    "SANDBOX_JWKS_URL",
    "JwksCache",
    "JwksSource",
    "JwtVerifier",
    "MemoryReplayCache",
    "ReplayCache",
    "VerifiedCaller",
    "check_replay_cache",
    "replay_cache_for",
    "trusted_sources",
]
