"""Data a service never fetches is missing, not absent (rules.md 3): clauses over it are unknown."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from typing import Any

from cds.caches import EvaluationCaches
from cds.catalogue import Catalogue, ServiceDefinition
from cds.engine import evaluate
from cds.invocation import parse_request
from cds.settings import PROJECT_ROOT

ORDERS = "back-to-foot-order-sign"
TOPIC = "https://footpath-cds.example.org/CodeSystem/rule"
CASE = PROJECT_ROOT / "tests" / "cases" / ORDERS / "os-01-positive-stable-weights.json"


def fired(catalogue: Catalogue, service: ServiceDefinition, case: dict[str, Any]) -> list[str]:
    _, request, context = parse_request(catalogue, ORDERS, case["request"])
    resources = {
        key: [e["resource"] for e in bundle.get("entry", [])]
        for key, bundle in case["request"]["prefetch"].items()
        if key in service.prefetch and key != "patient"
    }
    resources["patient"] = [case["request"]["prefetch"]["patient"]]
    now = datetime.fromisoformat(case["now"].replace("Z", "+00:00"))
    caches = EvaluationCaches.for_catalogue(catalogue)
    return evaluate(service, request, context, resources, {}, now, caches=caches).fired


def test_os01_challenges_an_early_mri_when_the_weights_were_read(catalogue: Catalogue) -> None:
    case = json.loads(CASE.read_text(encoding="utf-8"))
    assert fired(catalogue, catalogue.services[ORDERS], case) == ["OS-01"]


def test_a_service_that_reads_no_observations_cannot_rule_out_weight_loss(
    catalogue: Catalogue,
) -> None:
    """The same call to a service without an Observation query: RF-03's weight-loss branch is
    unknown, never false, so OS-01 does not tell the clinician to drop the MRI."""
    case = json.loads(CASE.read_text(encoding="utf-8"))
    service = catalogue.services[ORDERS]
    blind = replace(
        service,
        prefetch={k: v for k, v in service.prefetch.items() if not v.startswith("Observation?")},
    )
    assert fired(catalogue, blind, case) == []
