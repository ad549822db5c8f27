"""Benchmark invariants, untimed: a deterministic generator and big charts parsed sparingly."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import pytest

from bench import floor
from bench.generate import (
    NOW,
    PATIENT_ID,
    RELEVANT_PREFIX,
    make_request,
    relevant_count,
    resources_of,
    service_prefetch,
)
from bench.http import ISSUER, Signer
from bench.inprocess import evaluate_body
from cds.app import create_app
from cds.caches import EvaluationCaches
from cds.catalogue import Catalogue
from cds.record import build_record
from cds.settings import Settings
from tests.conftest import changed


@pytest.fixture(scope="module")
def heavy() -> dict[str, object]:
    return make_request("heavy")


def test_the_same_seed_gives_the_same_bytes_and_another_seed_other_bytes() -> None:
    first = orjson.dumps(make_request("heavy", seed=7))
    assert orjson.dumps(make_request("heavy", seed=7)) == first
    assert orjson.dumps(make_request("heavy", seed=8)) != first


def test_the_heavy_patient_has_thousands_of_resources_and_every_prefetch_key(
    heavy: dict[str, object],
) -> None:
    prefetch = heavy["prefetch"]
    assert isinstance(prefetch, dict)
    assert set(prefetch) == set(service_prefetch())
    assert sum(1 for _ in resources_of(heavy)) >= 5_000
    assert relevant_count(heavy) < 50


def test_only_the_resources_a_value_set_can_match_become_models(
    catalogue: Catalogue, heavy: dict[str, object]
) -> None:
    windows = catalogue.services["back-to-foot"].policy.condition_windows
    raws = list(resources_of(heavy))
    record = build_record(catalogue.valuesets, NOW, PATIENT_ID, raws, windows=windows)
    assert 0 < record.models_built <= relevant_count(heavy)
    # No noise resource may match a value set: the generator codes noise in its own system.
    assert all(entry.id.startswith(RELEVANT_PREFIX) for entry in record.entries)


def test_the_route_path_on_the_heavy_patient_builds_few_models_and_fires_cards(
    catalogue: Catalogue, heavy: dict[str, object]
) -> None:
    outcome = evaluate_body(EvaluationCaches.for_catalogue(catalogue), orjson.dumps(heavy), NOW)
    assert 0 < outcome.models_built <= relevant_count(heavy)
    assert outcome.cards > 0


def test_a_repeat_call_for_the_same_chart_validates_nothing_again(
    catalogue: Catalogue, heavy: dict[str, object]
) -> None:
    """Validation outcomes are remembered by content: the second call builds no model at all,
    and answers byte for byte what the first did."""
    body = orjson.dumps(heavy)
    caches = EvaluationCaches.for_catalogue(catalogue)
    memo = caches.validation
    first = evaluate_body(caches, body, NOW)
    assert (memo.misses, memo.hits) == (first.models_built, 0)
    second = evaluate_body(caches, body, NOW)
    assert memo.misses == first.models_built
    assert memo.hits == second.models_built
    assert second.body == first.body


def test_the_validation_memo_is_sized_from_settings(settings: Settings) -> None:
    app = create_app(changed(settings, validation_memo_size=123))
    assert app.state.parts.caches.validation.max_entries == 123


@pytest.mark.anyio
async def test_the_floor_app_checks_every_token_it_is_measured_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A floor that skipped verification would flatter the stack: it verifies like the service."""
    signer = Signer("RS384")
    audience = "http://127.0.0.1:1/cds-services/back-to-foot"
    jwks = tmp_path / "jwks.json"
    jwks.write_text(orjson.dumps(signer.jwks()).decode())
    monkeypatch.setenv("BENCH_FLOOR_JWKS", str(jwks))
    monkeypatch.setenv("BENCH_FLOOR_ISSUER", ISSUER)
    monkeypatch.setenv("BENCH_FLOOR_AUDIENCE", audience)
    body = orjson.dumps(make_request("small"))
    token, other_audience = signer.tokens(audience, 1)[0], signer.tokens("https://else", 1)[0]
    transport = httpx.ASGITransport(app=floor.create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:1") as client:

        async def call(bearer: str | None) -> httpx.Response:
            headers = {"authorization": f"Bearer {bearer}"} if bearer else {}
            return await client.post("/cds-services/back-to-foot", content=body, headers=headers)

        first = await call(token)
        assert (first.status_code, first.json()) == (200, {"cards": []})
        assert (await call(token)).status_code == 401  # the same jti again
        assert (await call(other_audience)).status_code == 401
        assert (await call(None)).status_code == 401
        # A header that is not base64url JSON naming a known kid is refused, never a 500.
        for header in ("!!", "W10", "e30", "eyJraWQiOiJub3RoaW5nIn0"):
            assert (await call(f"{header}.{token.partition('.')[2]}")).status_code == 401


@pytest.mark.parametrize("size", ["small", "heavy"])
def test_a_chart_the_ehr_did_not_filter_gets_the_same_cards_as_the_filtered_one(
    catalogue: Catalogue, size: str
) -> None:
    """Every Observation in every Observation key (vital signs too), repeated across keys: the
    same resources reach the rules, so the answer is the filtered chart's, byte for byte."""
    filtered = make_request(size)
    unfiltered = make_request(size, unfiltered=True)
    keys = [k for k, t in service_prefetch().items() if t.startswith("Observation?")]
    held = [{e["resource"]["id"] for e in unfiltered["prefetch"][k]["entry"]} for k in keys]
    assert len(keys) > 1
    assert all(ids == held[0] for ids in held)
    assert any(
        r["category"][0]["coding"][0]["code"] == "vital-signs"
        and not r["id"].startswith(RELEVANT_PREFIX)
        for r in resources_of(unfiltered)
        if r["resourceType"] == "Observation"
    )
    first = evaluate_body(EvaluationCaches.for_catalogue(catalogue), orjson.dumps(filtered), NOW)
    second = evaluate_body(EvaluationCaches.for_catalogue(catalogue), orjson.dumps(unfiltered), NOW)
    assert second.cards > 0
    assert second.body == first.body
    assert second.models_built == first.models_built


def test_the_cards_list_their_evidence_in_the_same_order_at_every_chart_size(
    catalogue: Catalogue,
) -> None:
    answers = {
        evaluate_body(
            EvaluationCaches.for_catalogue(catalogue), orjson.dumps(make_request(size)), NOW
        ).body
        for size in ("small", "typical", "heavy")
    }
    assert len(answers) == 1
