"""A hook call's record, clause inputs and results are freed by reference counting when the call
drops them, not left in reference cycles for the collector's next pass to find (and to walk
whatever else is young meanwhile: ~90 us of a small call's CPU when they were)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from bench.generate import NOW
from bench.http import shape_body
from bench.inprocess import evaluate_body
from cds.caches import EvaluationCaches
from cds.catalogue import Catalogue, load_catalogue
from cds.settings import Settings

# Where a call's per-call evaluation objects are defined (the memos of cds/caches.py are kept).
EVALUATION_MODULES = ("cds.engine", "cds.record.", "cds.rules.", "cds.cards.")


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    settings = Settings()
    return load_catalogue(settings.rules_dir, settings.cards_dir, settings.topic_system)


@pytest.fixture
def garbage() -> Iterator[list[object]]:
    """What the collector finds unreachable while the test runs, kept for the test to read."""
    gc.collect()
    found: list[object] = []
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield found
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


@pytest.mark.parametrize("shape", ["small", "typical", "heavy-unfiltered"])
def test_an_evaluation_leaves_its_record_and_results_in_no_reference_cycle(
    catalogue: Catalogue, shape: str, garbage: list[object]
) -> None:
    caches = EvaluationCaches.for_catalogue(catalogue)
    body = shape_body(shape)
    evaluate_body(caches, body, NOW)  # the first call fills the memos, which are kept
    gc.collect()
    gc.garbage.clear()
    for _ in range(2):
        assert evaluate_body(caches, body, NOW).cards > 0
    gc.collect()
    garbage.extend(gc.garbage)
    kinds = {f"{type(o).__module__}.{type(o).__qualname__}" for o in garbage}
    assert sorted(k for k in kinds if k.startswith(EVALUATION_MODULES)) == []
