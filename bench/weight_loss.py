"""RF-03's measured weight loss (rules.md 3.3) at 100, 1,000 and 10,000 weights: linear time.

The measure compares the median of the last 14 days with the median 30-365 days earlier, one
pass over a sorted list, where it used to compare every pair of weights (quadratic). Each size
is timed as the fact alone on a built record, and as the whole RF-03 trigger evaluation; the
ratio between sizes ten times apart is ~10 for linear work and ~100 for quadratic work.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from itertools import pairwise
from statistics import median
from typing import Any, Final

from bench import results
from cds.catalogue import load_catalogue
from cds.gc_pause import collector_paused
from cds.record import PatientRecord, build_record
from cds.rules import ClauseInputs, trigger
from cds.rules.facts import measured_weight_loss
from cds.rules.schema import FactClause, Node
from cds.settings import Settings

NOW: Final = datetime.fromisoformat("2026-03-01T12:00:00+00:00")
SIZES: Final = (100, 1_000, 10_000)
PATIENT: Final = "bench-weights"
BUDGET_SECONDS: Final = 3.0  # per size and measure: enough runs for a stable median


def weights(count: int, seed: int = 15) -> list[dict[str, Any]]:
    """``count`` home-scale weights over a year, +-2.5 % noise, the last two weeks 6 % lower."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        when = NOW - timedelta(days=2 + 363 * (count - 1 - i) / max(count - 1, 1))
        mean = 77.0 if (NOW - when).days <= 15 else 82.0
        out.append(
            {
                "resourceType": "Observation",
                "id": f"w{i}",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
                "subject": {"reference": f"Patient/{PATIENT}"},
                "effectiveDateTime": when.isoformat(),
                "valueQuantity": {
                    "value": round(mean * (1 + rng.uniform(-0.025, 0.025)), 1),
                    "unit": "kg",
                    "system": "http://unitsofmeasure.org",
                    "code": "kg",
                },
            }
        )
    return out


PATIENT_RESOURCE: Final = {"resourceType": "Patient", "id": PATIENT, "birthDate": "1960-04-04"}
SCIATICA: Final = {
    "resourceType": "Condition",
    "id": "sciatica",
    "clinicalStatus": {
        "coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}
        ]
    },
    "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "M54.41"}]},
    "subject": {"reference": f"Patient/{PATIENT}"},
    "onsetDateTime": "2026-01-30",
}


def _timed(step: Any, budget_seconds: float) -> list[float]:
    """CPU seconds of this thread per run: on a shared machine, wall time would add whatever
    ran in between, and the longer a run the more of it (a long run spans several slices)."""
    samples: list[float] = []
    deadline = time.perf_counter() + budget_seconds
    while len(samples) < 5 or (time.perf_counter() < deadline and len(samples) < 1_000):
        with collector_paused():  # as the service evaluates (cds/gc_pause.py)
            start = time.thread_time()
            step()
            samples.append(time.thread_time() - start)
    return samples


def _weight_loss_fact(node: Node) -> FactClause | None:
    """RF-03's own measured_weight_loss clause, so the bench runs the shipped parameters."""
    if node.fact is not None and node.fact.name == "measured_weight_loss":
        return node.fact
    children = [*(node.all_ or ()), *(node.any_ or ()), *([node.not_] if node.not_ else [])]
    return next((f for c in children if (f := _weight_loss_fact(c)) is not None), None)


def run(sizes: Sequence[int], budget_seconds: float = BUDGET_SECONDS) -> dict[str, Any]:
    settings = Settings()
    catalogue = load_catalogue(settings.rules_dir, settings.cards_dir, settings.topic_system)
    rf03 = catalogue.rules["RF-03"]
    fact = _weight_loss_fact(rf03.when)
    assert fact is not None
    assert fact.percent is not None
    assert fact.windows is not None
    percent, windows, wanted = fact.percent, fact.windows, frozenset(fact.valuesets)
    condition_windows = catalogue.services["back-to-foot"].policy.condition_windows
    payload: dict[str, Any] = {"machine": results.machine(), "sizes": []}
    for count in sizes:
        raws = [PATIENT_RESOURCE, SCIATICA, *weights(count)]
        record: PatientRecord = build_record(
            catalogue.valuesets, NOW, PATIENT, raws, windows=condition_windows
        )
        assert measured_weight_loss(record, wanted, percent, windows).true

        def fact_alone(r: PatientRecord = record) -> object:
            return measured_weight_loss(r, wanted, percent, windows)

        def rf03_trigger(r: PatientRecord = record) -> object:
            return trigger(rf03, ClauseInputs(r, catalogue.rules))

        fact_s = median(_timed(fact_alone, budget_seconds))
        rule_s = median(_timed(rf03_trigger, budget_seconds))
        payload["sizes"].append(
            {
                "weights": count,
                "fact_ms": round(fact_s * 1000, 4),
                "rf03_trigger_ms": round(rule_s * 1000, 4),
                "fact_us_per_weight": round(fact_s * 1e6 / count, 4),
            }
        )
        print(f"{count} weights: fact {fact_s * 1000:.3f} ms", flush=True)
    rows = payload["sizes"]
    for smaller, larger in pairwise(rows):
        growth = larger["weights"] / smaller["weights"]
        larger["fact_ratio"] = round(larger["fact_ms"] / smaller["fact_ms"], 2)
        larger["rf03_trigger_ratio"] = round(
            larger["rf03_trigger_ms"] / smaller["rf03_trigger_ms"], 2
        )
        larger["size_ratio"] = growth
    payload["machine"]["load_average_at_end"] = results.load_average()
    return payload


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", nargs="+", type=int, default=list(SIZES))
    args = parser.parse_args(argv)
    payload = run(args.sizes)
    print()
    print(
        results.table(
            ["weights", "fact ms", "x prev", "RF-03 ms", "x prev", "us/weight"],
            [
                [
                    row["weights"],
                    row["fact_ms"],
                    row.get("fact_ratio", "-"),
                    row["rf03_trigger_ms"],
                    row.get("rf03_trigger_ratio", "-"),
                    row["fact_us_per_weight"],
                ]
                for row in payload["sizes"]
            ],
        )
    )
    results.save("weight-loss", payload)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
