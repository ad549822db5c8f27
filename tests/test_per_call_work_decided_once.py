"""What evaluation used to work out again and again is decided once: the resource types a
service never fetches (per service, with that service's own prefetch), each precedence owner's
ranking, and the patient's age (once per call, not per rule). A call still adds what is its own
(the keys it could not obtain) and never leaves it behind for the next call."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime

from cds.caches import EvaluationCaches
from cds.catalogue import Catalogue
from cds.engine import READ_TYPES, _record, _unfetched
from cds.invocation import parse_request
from cds.record import PatientRecord
from cds.rules import ClauseInputs
from cds.rules.policy import load_policy
from cds.rules.schema import Owner
from cds.settings import PROJECT_ROOT

ORDERS = "back-to-foot-order-sign"
WINDOWS = load_policy(PROJECT_ROOT / "rules").condition_windows
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


def test_the_patients_age_is_read_once_per_call_and_shared_by_every_rule(
    catalogue: Catalogue,
) -> None:
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    rule = catalogue.rules["RF-03"]
    for birth, age in ((date(1960, 3, 2), 65), (date(1960, 3, 1), 66), (None, None)):
        record = PatientRecord(now, "p1", WINDOWS, birth_date=birth)
        inputs = ClauseInputs(record, catalogue.rules)
        assert inputs.age == record.age() == age
        assert inputs.for_rule(rule, now).age == age
