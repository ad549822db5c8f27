"""What evaluation used to work out on every call from the catalogue alone is decided once: the
resource types a service never fetches (per service, with that service's own prefetch) and each
precedence owner's ranking. A call still adds what is its own (the keys it could not obtain)
and never leaves it behind for the next call."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime

from cds.caches import EvaluationCaches
from cds.catalogue import Catalogue
from cds.engine import READ_TYPES, _record, _unfetched
from cds.invocation import parse_request
from cds.rules.schema import Owner
from cds.settings import PROJECT_ROOT

ORDERS = "back-to-foot-order-sign"
CASE = PROJECT_ROOT / "tests" / "cases" / ORDERS / "os-01-positive-stable-weights.json"


def _unavailable(
    catalogue: Catalogue, caches: EvaluationCaches, missing: dict[str, str]
) -> set[str]:
    case = json.loads(CASE.read_text(encoding="utf-8"))
    service = catalogue.services[ORDERS]
    _, _, context = parse_request(catalogue, ORDERS, case["request"])
    record = _record(
        caches,
        service=service,
        context=context,
        resources={},
        unavailable=missing,
        now=datetime.fromisoformat(case["now"].replace("Z", "+00:00")),
    )
    return set(record.unavailable)


def test_a_key_missing_in_one_call_is_not_missing_in_the_next(catalogue: Catalogue) -> None:
    caches = EvaluationCaches.for_catalogue(catalogue)
    service = catalogue.services[ORDERS]
    key = next(k for k, t in service.prefetch.items() if t.startswith("Condition"))
    never = _unfetched(service)
    assert _unavailable(catalogue, caches, {key: "timeout"}) == never | {"Condition"}
    assert _unavailable(catalogue, caches, {}) == never
    assert "Condition" not in never


def test_the_types_a_service_never_fetches_follow_that_service(catalogue: Catalogue) -> None:
    caches = EvaluationCaches.for_catalogue(catalogue)
    service = catalogue.services[ORDERS]
    blind = replace(
        service,
        prefetch={k: v for k, v in service.prefetch.items() if not v.startswith("Observation?")},
    )
    assert "Observation" not in caches.unfetched(service, _unfetched)
    # Another service object under the same id is not given the first one's answer.
    assert "Observation" in caches.unfetched(blind, _unfetched)
    assert "Observation" not in caches.unfetched(service, _unfetched)
    assert caches.unfetched(service, _unfetched) <= READ_TYPES


def test_an_owner_ranks_the_rules_in_its_priority_order_from_load() -> None:
    owner = Owner.model_validate({"kind": "mri", "priority": ["RF-01", "RF-02", "RB-02"]})
    assert "rank" in owner.__dict__  # filled at load: a call never writes into the catalogue
    assert owner.rank == {"RF-01": 0, "RF-02": 1, "RB-02": 2}
