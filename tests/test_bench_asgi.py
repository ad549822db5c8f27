"""bench.asgi drives both apps through ASGI with real tokens: the service answers its cards."""

from __future__ import annotations

import asyncio

from bench.asgi import measure


def test_the_asgi_bench_measures_the_service_against_the_floor_on_real_calls() -> None:
    payload = asyncio.run(measure(["small"], calls=10, rounds=1, profile=None))
    small = payload["shapes"]["small"]
    assert small["floor_ms"] > 0
    assert small["service_ms"] > small["floor_ms"]
    assert small["ratio"] == round(small["service_ms"] / small["floor_ms"], 2)
    assert small["cards"] == 4
