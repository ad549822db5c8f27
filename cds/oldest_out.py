"""Bounded memos shared by an app's evaluation threads: an insert that makes room first by
dropping the oldest entries (dicts keep insertion order)."""

from __future__ import annotations

import contextlib
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


def insert_oldest_out(store: dict[K, V], key: K, value: V, limit: int) -> None:
    """``store[key] = value`` with at most ``limit`` entries kept (none when ``limit`` <= 0),
    the oldest leaving first."""
    if limit <= 0:
        return
    while len(store) >= limit:
        # Another evaluation slot's thread may be evicting too: then it has made room.
        with contextlib.suppress(StopIteration, RuntimeError, KeyError):
            del store[next(iter(store))]
    store[key] = value
