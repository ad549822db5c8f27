"""bench.asgi drives both apps through ASGI with real tokens: the service answers its cards."""

from __future__ import annotations

import asyncio

import pytest

from bench.asgi import measure


def test_the_asgi_bench_measures_the_service_against_the_floor_on_real_calls() -> None:
    payload = asyncio.run(measure(["small"], calls=10, rounds=1, profile=None))
    small = payload["shapes"]["small"]
    assert small["floor_ms"] > 0
    assert small["service_ms"] > small["floor_ms"]
    # The ratio is of the unrounded medians; the figures shown are rounded to the microsecond.
    assert small["ratio"] == pytest.approx(small["service_ms"] / small["floor_ms"], abs=0.02)
    assert small["cards"] == 4
