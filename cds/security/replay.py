"""The jti replay cache: each (iss, jti) accepted once until its token expires (CDS Hooks best
practice, step 6). The in-memory one is per process; the database one is shared."""

from __future__ import annotations

import hashlib
import heapq
import logging
import math
from datetime import datetime
from typing import Protocol

from cds.clock import Clock, system_clock
from cds.errors import ConfigError
from cds.logs import log_fields
from cds.settings import ReplayCacheChoice, Settings

# One logger for the whole package: operators filter security events by this name.
logger = logging.getLogger("cds.security")


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

    It remembers nothing from before ``started_at`` (the process's start): the verifier
    refuses tokens issued before then, which a previous process may have accepted.
    """

    def __init__(self, max_entries: int = 300_000, *, clock: Clock = system_clock) -> None:
        self._max_entries = max_entries
        self._clock = clock
        self.started_at = clock()
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
