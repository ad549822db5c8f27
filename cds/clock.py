"""The evaluation clock: real time, or a fixed instant for demos and reproducible cases."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


def clock_for(fixed_now: str | None) -> Clock:
    """A clock frozen at ``fixed_now`` (ISO 8601) when set, else the system clock."""
    if fixed_now is None:
        return system_clock
    instant = datetime.fromisoformat(fixed_now)
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return lambda: instant
