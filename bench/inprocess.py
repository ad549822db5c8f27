"""In-process cost of one back-to-foot evaluation per chart size against orjson.loads, the floor."""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from statistics import median
from typing import Any, Final

import orjson

from bench import results
from bench.generate import NOW, SERVICE_ID, SIZES, make_request, relevant_count
from cds.caches import EvaluationCaches
from cds.catalogue import load_catalogue
from cds.data.patient_data import read_prefetch
from cds.engine import evaluate
from cds.gc_pause import collector_paused
from cds.invocation import parse_request
from cds.request_json import check_limits, parse_json
from cds.settings import Settings

# (timed runs, seconds at most) per size: enough samples for a p99 on the small charts, and a
# bounded wall time on the big ones.
RUNS: Final[dict[str, tuple[int, float]]] = {
    "small": (1_000, 20.0),
    "typical": (400, 30.0),
    "heavy": (60, 40.0),
    "huge": (20, 60.0),
}
# The targets: evaluation at most this many times orjson.loads of the same body.
TARGET_RATIO: Final[dict[str, float]] = {"typical": 5.0, "heavy": 3.0, "huge": 3.0}
STAGES: Final = ("loads", "validate", "prefetch", "evaluate", "serialize")
# The route's input limits at their default settings.
MAX_DEPTH: Final[int] = Settings.model_fields["max_json_depth"].default
MAX_ENTRIES: Final[int] = Settings.model_fields["max_prefetch_entries"].default


@dataclass
class Outcome:
    """One evaluation's answer and what the engine reports about it."""

    body: bytes
    cards: int
    models_built: int


@dataclass
class Samples:
    """Seconds per run: the floor, the whole path, and the path stage by stage."""

    floor: list[float] = field(default_factory=list)
    # The floor again with the cyclic GC paused: what parsing costs without collector pauses,
    # which a big body triggers over every long-lived object of the process.
    floor_no_gc: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    stages: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})


def evaluate_body(
    caches: EvaluationCaches,
    body: bytes,
    now: datetime,
    stages: dict[str, list[float]] | None = None,
) -> Outcome:
    """The route's path without HTTP, JWT or the audit write: the bytes in, the bytes out.

    ``caches`` are what an app keeps between calls (built for its catalogue, which they name).

    Mirrors ``cds.invocation.invoke`` on a call with complete prefetch: one collector-paused
    stretch of parse_json, check_limits, parse_request, read_prefetch, engine.evaluate,
    and to_wire_json (the answer encoded once), with the parsed body dropped before the collector
    resumes.
    """
    catalogue = caches.catalogue
    with collector_paused():
        t0 = time.perf_counter()
        raw = parse_json(body)
        t1 = time.perf_counter()
        check_limits(raw, MAX_DEPTH, MAX_ENTRIES)
        service, request, context = parse_request(catalogue, SERVICE_ID, raw)
        t2 = time.perf_counter()
        data = read_prefetch(service.prefetch, service.required_prefetch, request, None).finish()
        t3 = time.perf_counter()
        evaluation = evaluate(
            service,
            request,
            context,
            data.resources,
            data.unavailable,
            now,
            caches=caches,
        )
        t4 = time.perf_counter()
        out = evaluation.wire_json()[1]
        t5 = time.perf_counter()
        outcome = Outcome(out, len(evaluation.answer["cards"]), evaluation.models_built)
        del raw, request, context, data, evaluation
    if stages is not None:
        for name, seconds in zip(
            STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True
        ):
            stages[name].append(seconds)
    return outcome


def measure(  # noqa: PLR0917 - a benchmark's knobs, named at every call
    caches: EvaluationCaches, body: bytes, runs: int, budget: float, cold: bool, warmup: int = 3
) -> tuple[Samples, Outcome]:
    """Alternate floor and full runs, so both see the same background load.

    ``cold`` forgets remembered validation outcomes before every run: the first call for a
    chart. Warm runs are the repeat calls (each chart open, each order selection).
    """
    samples = Samples()
    outcome = evaluate_body(caches, body, NOW)
    for _ in range(warmup):
        orjson.loads(body)
        evaluate_body(caches, body, NOW)
    deadline = time.monotonic() + budget
    for _ in range(runs):
        gc.disable()
        t0 = time.perf_counter()
        orjson.loads(body)
        t1 = time.perf_counter()
        gc.enable()
        samples.floor_no_gc.append(t1 - t0)
        if cold:
            caches.validation.clear()
            caches.entries.clear()
        t0 = time.perf_counter()
        orjson.loads(body)
        t1 = time.perf_counter()
        evaluate_body(caches, body, NOW, samples.stages)
        t2 = time.perf_counter()
        samples.floor.append(t1 - t0)
        samples.total.append(t2 - t1)
        if time.monotonic() > deadline:
            break
    return samples, outcome


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def summarize(  # noqa: PLR0917
    size: str, memo: str, body: bytes, request: dict[str, Any], samples: Samples, outcome: Outcome
) -> dict[str, Any]:
    floor, total = median(samples.floor), median(samples.total)
    floor_no_gc = median(samples.floor_no_gc)
    ratio = total / floor
    target = TARGET_RATIO.get(size)
    return {
        "size": size,
        "memo": memo,
        "resources": SIZES[size],
        "relevant_resources": relevant_count(request),
        "body_bytes": len(body),
        "runs": len(samples.total),
        "orjson_loads_ms": {
            "median": _ms(floor),
            "p99": _ms(results.percentile(samples.floor, 99)),
        },
        "orjson_loads_no_gc_ms": {
            "median": _ms(floor_no_gc),
            "p99": _ms(results.percentile(samples.floor_no_gc, 99)),
        },
        "ratio_to_orjson_no_gc": round(total / floor_no_gc, 2),
        "evaluation_ms": {
            "median": _ms(total),
            "p99": _ms(results.percentile(samples.total, 99)),
        },
        "stages_median_ms": {name: _ms(median(v)) for name, v in samples.stages.items()},
        "ratio_to_orjson": round(ratio, 2),
        "target_ratio": target,
        # Judged against both floors: the collector's pauses inflate the first one on big bodies,
        # and a target met only against an inflated floor is not met.
        "target_met": None if target is None else max(ratio, total / floor_no_gc) <= target,
        "cards": outcome.cards,
        "models_built": outcome.models_built,
    }


def _print(rows: Sequence[dict[str, Any]]) -> None:
    headers = (
        "size",
        "memo",
        "KiB",
        "runs",
        "loads ms",
        "no-GC ms",
        "eval med ms",
        "eval p99 ms",
        "ratio",
        "no-GC ratio",
        "target",
        "met",
        "models",
        "cards",
    )
    print(
        results.table(
            headers,
            [
                (
                    r["size"],
                    r["memo"],
                    r["body_bytes"] // 1024,
                    r["runs"],
                    r["orjson_loads_ms"]["median"],
                    r["orjson_loads_no_gc_ms"]["median"],
                    r["evaluation_ms"]["median"],
                    r["evaluation_ms"]["p99"],
                    f"{r['ratio_to_orjson']}x",
                    f"{r['ratio_to_orjson_no_gc']}x",
                    f"<= {r['target_ratio']}x" if r["target_ratio"] else "-",
                    {None: "-", True: "yes", False: "NO"}[r["target_met"]],
                    r["models_built"],
                    r["cards"],
                )
                for r in rows
            ],
        )
    )
    print()
    print(
        results.table(
            ("size", "memo", *(f"{s} ms" for s in STAGES)),
            [(r["size"], r["memo"], *(r["stages_median_ms"][s] for s in STAGES)) for r in rows],
        )
    )


def run(  # noqa: PLR0917 - the command line's options, in its order
    sizes: Sequence[str],
    memos: Sequence[str],
    seed: int,
    scale: float,
    gc_mode: str,
    unfiltered: bool = False,
) -> dict[str, Any]:
    settings = Settings()
    catalogue = load_catalogue(settings.rules_dir, settings.cards_dir, settings.topic_system)
    if SERVICE_ID not in catalogue.services:
        raise SystemExit(f"the catalogue in {settings.rules_dir} has no '{SERVICE_ID}' service")
    # As the app owns them: one per process, sized like the server's default.
    caches = EvaluationCaches.for_catalogue(catalogue, settings.validation_memo_size)
    if gc_mode == "freeze":
        # As the server does after startup: everything alive now (modules, the fhir.resources
        # models, the catalogue) moves out of the collector's reach.
        evaluate_body(caches, orjson.dumps(make_request("small", seed)), NOW)
        gc.collect()
        gc.freeze()
    payload: dict[str, Any] = {
        "benchmark": "inprocess",
        "gc": gc_mode,
        "machine": results.machine(),
        "sizes": [],
    }
    payload["unfiltered"] = unfiltered
    for size in sizes:
        request = make_request(size, seed, unfiltered=unfiltered)
        body = orjson.dumps(request)
        runs, budget = RUNS[size]
        for memo in memos:
            samples, outcome = measure(
                caches, body, max(5, int(runs * scale)), budget * scale, cold=memo == "cold"
            )
            row = summarize(size, memo, body, request, samples, outcome)
            payload["sizes"].append(row)
            median_ms = row["evaluation_ms"]["median"]
            print(f"{size}/{memo}: {row['runs']} runs, median {median_ms} ms", flush=True)
    payload["machine"]["load_average_at_end"] = results.load_average()
    return payload


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply run counts and time budgets"
    )
    parser.add_argument(
        "--gc",
        choices=("default", "freeze"),
        default="freeze",
        help="'freeze' (the server's way): gc.freeze() after startup; 'default': no freeze",
    )
    parser.add_argument(
        "--memo",
        nargs="+",
        choices=("cold", "warm"),
        default=["cold", "warm"],
        help="validation memo: 'cold' forgets it before each run (a chart's first call)",
    )
    parser.add_argument(
        "--unfiltered",
        action="store_true",
        help="charts of an EHR that applies none of the templates' code filters (bench.generate)",
    )
    args = parser.parse_args(argv)
    payload = run(args.sizes, args.memo, args.seed, args.scale, args.gc, args.unfiltered)
    print()
    _print(payload["sizes"])
    shape = "-unfiltered" if args.unfiltered else ""
    results.save(f"inprocess-gc-{args.gc}{shape}", payload)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
