"""bench.asgi drives both apps through ASGI with real tokens: the service answers its cards."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bench import results
from bench.asgi import measure


def test_the_asgi_bench_measures_the_service_against_the_floor_on_real_calls() -> None:
    payload = asyncio.run(measure(["small"], calls=10, rounds=1, profile=None))
    small = payload["shapes"]["small"]
    assert small["floor_ms"] > 0
    assert small["service_ms"] > small["floor_ms"]
    # The ratio is of the unrounded medians; the figures shown are rounded to the microsecond.
    assert small["ratio"] == pytest.approx(small["service_ms"] / small["floor_ms"], abs=0.02)
    assert small["cards"] == 4


def test_profiling_a_shape_writes_its_profile_into_a_results_folder_it_creates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "not-yet-made"
    monkeypatch.setattr(results, "RESULTS_DIR", folder)
    payload = asyncio.run(measure(["small"], calls=5, rounds=1, profile="small"))
    assert (folder / "asgi-profile-small.prof").stat().st_size > 0
    assert "small" not in payload["shapes"]
