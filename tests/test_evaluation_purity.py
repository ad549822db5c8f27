"""Evaluation is pure in fact: it writes only into the caches its app owns and passes in.

No module of cds holds state that an evaluation changes, the catalogue it reads is left as it
was, and two apps never share what they remember, so every test app starts clean.
"""

from __future__ import annotations

import functools
import importlib
import json
import pickle
import pkgutil
import sys
from collections.abc import Iterator, Mapping
from datetime import datetime
from types import ModuleType
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

import cds
from bench.generate import NOW, make_request
from bench.inprocess import evaluate_body
from cds.app import create_app
from cds.caches import EvaluationCaches
from cds.catalogue import Catalogue, ServiceDefinition, load_catalogue
from cds.engine import Evaluation, evaluate
from cds.errors import CdsError
from cds.invocation import parse_request
from cds.settings import PROJECT_ROOT, Settings
from tests.conftest import changed

CASES = sorted((PROJECT_ROOT / "tests" / "cases").glob("*/*.json"))
MUTABLE = (dict, list, set, bytearray)
DEPTH = 4  # deep enough for a memo object's dict of dicts; module constants are shallow


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    settings = Settings()
    return load_catalogue(settings.rules_dir, settings.cards_dir, settings.topic_system)


def _resources(service: ServiceDefinition, case: Mapping[str, Any]) -> dict[str, list[Any]]:
    """The case's prefetch by key, bundles unpacked (complete prefetch: no FHIR server)."""
    prefetch = case["request"].get("prefetch", {})
    found: dict[str, list[Any]] = {}
    for key in service.prefetch:
        if key in case.get("unavailable", []) or key not in prefetch:
            continue
        value = prefetch[key]
        if isinstance(value, dict) and value.get("resourceType") == "Bundle":
            found[key] = [e["resource"] for e in value.get("entry", []) if "resource" in e]
        else:
            found[key] = [value]
    return found


def evaluate_every_case(catalogue: Catalogue, caches: EvaluationCaches) -> list[Evaluation]:
    """Every golden case through engine.evaluate; the ones that are refused count too."""
    done = []
    for path in CASES:
        case = json.loads(path.read_text(encoding="utf-8"))
        try:
            service, request, context = parse_request(catalogue, path.parent.name, case["request"])
            now = datetime.fromisoformat(case["now"].replace("Z", "+00:00"))
            resources = _resources(service, case)
            done.append(evaluate(service, request, context, resources, {}, now, caches=caches))
        except CdsError:
            continue
    return done


def _state(value: object, depth: int = 0) -> object:
    """What can change in ``value`` without rebinding it: container contents, an lru_cache's
    entries, the fields of an object of cds's own classes."""
    cache_info = getattr(value, "cache_info", None)
    if callable(cache_info):
        info = cache_info()
        return ("lru_cache", info.misses, info.currsize)
    if depth >= DEPTH:
        return id(value)
    if isinstance(value, dict):
        return ("dict", tuple((id(k), _state(v, depth + 1)) for k, v in value.items()))
    if isinstance(value, list):
        return ("list", tuple(_state(v, depth + 1) for v in value))
    if isinstance(value, set | bytearray):
        return (type(value).__name__, frozenset(id(v) for v in value))
    owner = getattr(type(value), "__module__", "") or ""
    if owner.split(".")[0] == "cds" and not isinstance(value, type):
        fields = getattr(value, "__dict__", None)
        if fields is None:  # slots
            names = [n for k in type(value).__mro__ for n in getattr(k, "__slots__", ())]
            fields = {n: getattr(value, n, None) for n in names}
        return ("object", id(value), _state(dict(fields), depth + 1))
    return id(value)


def _cds_modules() -> Iterator[ModuleType]:
    for name, module in sorted(sys.modules.items()):
        if (name == "cds" or name.startswith("cds.")) and module is not None:
            yield module


def _library_callable(value: object) -> bool:
    """A function or class a library defines (fhir.resources' lru-cached model lookup): what
    it keeps is the library's, as Python's own caches are Python's."""
    owner = getattr(value, "__module__", None)
    return (
        callable(value) and isinstance(owner, str) and owner.split(".")[0] not in {"cds", "tests"}
    )


def module_state() -> dict[tuple[str, str], object]:
    """Every binding of every loaded cds module, and the mutable state behind it; for classes
    defined there, their own mutable attributes (a class-level memo is module state too)."""
    found: dict[tuple[str, str], object] = {}
    for module in _cds_modules():
        for name, value in vars(module).items():
            if _library_callable(value):
                found[module.__name__, name] = id(value)
                continue
            found[module.__name__, name] = (id(value), _state(value))
            if isinstance(value, type) and value.__module__ == module.__name__:
                for attr, member in vars(value).items():
                    if not attr.startswith("__") and (
                        isinstance(member, MUTABLE) or callable(getattr(member, "cache_info", None))
                    ):
                        found[module.__name__, f"{name}.{attr}"] = _state(member)
    return found


def changed_bindings(
    before: Mapping[tuple[str, str], object], after: Mapping[tuple[str, str], object]
) -> list[str]:
    return sorted(
        f"{module}.{name}"
        for module, name in before.keys() | after.keys()
        if before.get((module, name)) != after.get((module, name))
    )


def import_every_cds_module() -> None:
    """Everything evaluation could import, imported now: a module first loaded mid-way would
    read as new state. The migrations run Alembic when imported, and evaluation never does."""
    for found in pkgutil.walk_packages(cds.__path__, "cds."):
        if not found.name.startswith("cds.migrations"):
            importlib.import_module(found.name)


def test_evaluating_every_golden_case_changes_no_module_level_state(
    catalogue: Catalogue,
) -> None:
    import_every_cds_module()
    before = module_state()
    caches = EvaluationCaches.for_catalogue(catalogue)
    cold = evaluate_every_case(catalogue, caches)
    warm = evaluate_every_case(catalogue, caches)
    assert changed_bindings(before, module_state()) == []
    # Not vacuous: the cases fired cards and the calls did remember, in the caches given.
    assert sum(len(e.response.cards) for e in cold) > len(CASES) // 2
    assert len(caches.validation) > 0
    assert len(caches.matching) > 0
    remembered = [sum(e.validations_remembered for e in run) for run in (cold, warm)]
    assert remembered[1] > remembered[0]


def test_the_scan_sees_a_write_into_module_level_state() -> None:
    """The scan above would catch a memo written at module level: a dict, an lru_cache."""
    module = importlib.import_module("cds.cards.render")
    before = module_state()
    probe: dict[str, bool] = {}
    remembered = functools.lru_cache(maxsize=4)(lambda text: text.upper())
    module.__dict__.update(_PROBE=probe, _REMEMBERED=remembered)
    try:
        with_probes = module_state()
        probe["written"] = True
        remembered("written")
        assert changed_bindings(with_probes, module_state()) == [
            "cds.cards.render._PROBE",
            "cds.cards.render._REMEMBERED",
        ]
    finally:
        del module.__dict__["_PROBE"], module.__dict__["_REMEMBERED"]
    assert changed_bindings(before, module_state()) == []


def test_evaluation_never_writes_into_the_catalogue_not_even_the_first_time() -> None:
    """The catalogue may be shared (by apps, by a test session): calls only read it. What the
    rules derive from their own definition (a clause's value-set set, a node's branch) is
    filled when the catalogue loads, so a freshly loaded one is already in its final state."""
    settings = Settings()
    catalogue = load_catalogue(settings.rules_dir, settings.cards_dir, settings.topic_system)
    before = pickle.dumps(catalogue)
    caches = EvaluationCaches.for_catalogue(catalogue)
    evaluate_every_case(catalogue, caches)
    evaluate_every_case(catalogue, caches)
    evaluate_every_case(catalogue, EvaluationCaches.for_catalogue(catalogue))
    # A chart of codes and words no case holds: new to every memo there is.
    chart = evaluate_body(caches, orjson.dumps(make_request("typical", seed=11)), NOW)
    assert chart.models_built > 0
    assert pickle.dumps(catalogue) == before


async def _call(app: FastAPI, body: dict[str, Any]) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://cds.example.org") as c:
        return await c.post("/cds-services/back-to-foot", json=body)


@pytest.mark.anyio
async def test_two_apps_do_not_share_what_they_remember(
    settings: Settings, rb01_request: dict[str, Any]
) -> None:
    first, second = create_app(settings), create_app(changed(settings))
    ours, theirs = first.state.parts.caches, second.state.parts.caches
    assert ours is not theirs
    assert ours.validation is not theirs.validation
    assert ours.matching is not theirs.matching
    answer = await _call(first, rb01_request)
    assert answer.status_code == 200
    assert [c["source"]["topic"]["code"] for c in answer.json()["cards"]] == ["RB-01"]
    assert len(ours.validation) > 0
    assert len(ours.matching) > 0
    # The second app starts clean: nothing the first remembered reaches it.
    assert (len(theirs.validation), len(theirs.matching)) == (0, 0)
    assert (theirs.validation.hits, theirs.validation.misses) == (0, 0)
    again = await _call(second, rb01_request)
    assert again.content == answer.content
    assert theirs.validation.hits == 0  # validated afresh, not answered from the first app
