"""What the replay cache and the audit cost a worker per call, in process, on PostgreSQL.

The same ``Store`` and ``AuditWriter`` the service builds, on a throwaway cluster
(bench/postgres.py) or ``--database-url``: eight calls at a time each check a fresh jti and
queue an audit record with four issued cards (the typical patient's answer), as a worker at
concurrency 8 does. Reported per call: this process's CPU (the worker's share, what the issue
bounds at 0.3 ms), the database's CPU when the cluster is ours, and the calls per second.
``bench.wrk --store-cost`` measures the same thing from outside, whole servers with and without
the store taking turns, which the machine's load makes far noisier.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from statistics import median
from typing import Any, Final

from pydantic import SecretStr

from bench import results
from bench.postgres import Cluster, throwaway_cluster
from cds.metrics import Metrics
from cds.migrations import upgrade
from cds.settings import load_settings
from cds.store import AuditRecord, AuditWriter, IssuedCard, Store

CONCURRENCY: Final = 8
CARDS_PER_CALL: Final = 4
ISSUER: Final = "https://bench.example"


def _call(now: datetime) -> tuple[AuditRecord, list[IssuedCard]]:
    """One answered call as the audit records it: four cards, their rules and versions."""
    hook_instance = str(uuid.uuid4())
    rules = ["RF-01", "RB-01", "RB-02", "RB-03"][:CARDS_PER_CALL]
    cards = [
        IssuedCard(
            card_uuid=str(uuid.uuid4()),
            rule_id=rule,
            service_id="back-to-foot",
            hook_instance=hook_instance,
            suggestion_uuids=[str(uuid.uuid4())],
            issued_at=now,
        )
        for rule in rules
    ]
    audit = AuditRecord(
        hook_instance=hook_instance,
        service_id="back-to-foot",
        hook="patient-view",
        rule_ids=rules,
        rule_versions=dict.fromkeys(rules, "1.0.0"),
        card_uuids=[card.card_uuid for card in cards],
        duration_ms=4.2,
        status=200,
        received_at=now,
        patient_hash="0" * 64,
    )
    return audit, cards


async def _run(store: Store, calls: int, database: Cluster | None) -> dict[str, Any]:
    writer = AuditWriter(store, Metrics(service_ids=["back-to-foot"], rule_ids=[]))
    writer.start()
    expires = datetime.now(UTC) + timedelta(minutes=10)
    now = datetime.now(UTC)
    records = [_call(now) for _ in range(calls)]
    jtis = [str(uuid.uuid4()) for _ in range(calls)]
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(index: int) -> None:
        async with gate:
            if not await store.first_use(ISSUER, jtis[index], expires):
                raise RuntimeError("a fresh jti was refused")
            await writer.submit(*records[index])

    cpu, db = time.process_time(), database.cpu_seconds() if database else 0.0
    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(calls)))
    await writer.close()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    db_cpu = database.cpu_seconds() - db if database else None
    return {
        "calls": calls,
        "calls_per_second": round(calls / elapsed),
        "worker_cpu_ms_per_call": round(cpu / calls * 1000, 3),
        "database_cpu_ms_per_call": round(db_cpu / calls * 1000, 3) if db_cpu is not None else None,
        "load_average": results.load_average()[0],
    }


async def measure(url: str, calls: int, rounds: int, database: Cluster | None) -> list[Any]:
    settings = load_settings(database_url=url, patient_hash_key=SecretStr("bench-only-key"))
    await upgrade(settings)
    async with Store.from_settings(settings) as store:
        await _run(store, 200, database)  # connections opened, statements prepared
        found = []
        for turn in range(rounds):
            found.append(await _run(store, calls, database))
            print(f"round {turn + 1}: {found[-1]}", flush=True)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", help="default: a throwaway PostgreSQL cluster")
    parser.add_argument("--calls", type=int, default=3_000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    machine = results.machine()
    with ExitStack() as stack:
        database = None if args.database_url else stack.enter_context(throwaway_cluster())
        url = args.database_url or (database.url if database else "")
        runs = asyncio.run(measure(url, args.calls, args.rounds, database))
    machine["load_average_at_end"] = results.load_average()
    summary = {
        key: median(run[key] for run in runs)
        for key in ("worker_cpu_ms_per_call", "calls_per_second")
    }
    if database is not None:
        summary["database_cpu_ms_per_call"] = median(r["database_cpu_ms_per_call"] for r in runs)
    print(f"\nmedian of {args.rounds} rounds (replay check + audit record with 4 cards): {summary}")
    payload = {"benchmark": "store-cost", "machine": machine, "runs": runs, "summary": summary}
    results.save("store-cost", payload)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
