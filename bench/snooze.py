"""What the snooze lookup adds to a hook call that would show cards, on SQLite and PostgreSQL.

A snoozes table of 100,000 rows (20,000 other patients, five snoozed cards each) and the
synthetic patient's four cards: each run is what ``cds.invocation`` adds to such a call (the
patient hash, then ``Snoozing.hidden``: one query by primary key), timed as median and p99.
Two cases alternate: the patient has no snooze (the usual), and one of their cards is snoozed.
``seed`` is also what ``bench.http --governance`` fills the server's database with.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median
from typing import Any, Final

import sqlalchemy as sa
from pydantic import SecretStr

from bench import results
from bench.generate import SERVICE_ID
from cds.catalogue import load_catalogue
from cds.migrations import upgrade
from cds.settings import Settings, load_settings
from cds.snooze.snoozing import Snoozing
from cds.store import Store, patient_hash
from cds.store.schema import snoozes

ROWS: Final = 100_000
CARDS_PER_PATIENT: Final = 5
BATCH: Final = 10_000
RUNS: Final = 2_000
WARMUP: Final = 200
HASH_KEY: Final = "bench-only-patient-hash-key-of-at-least-32-bytes"
# The synthetic patient's cards: rules whose cards can be snoozed, as bench.generate fires them.
RULES: Final = ("RB-01", "B12-01", "DM-01", "RB-02")
CASES: Final = ("no card (no lookup)", "no snooze", "one card snoozed")


@dataclass(frozen=True)
class Card:
    card_uuid: str
    rule_id: str


def _other_patient(i: int) -> str:
    return hashlib.sha256(f"bench-patient-{i}".encode()).hexdigest()


async def seed(database_url: str, rows: int = ROWS, *, now: datetime | None = None) -> None:
    """Migrate the database and fill its snoozes table with ``rows`` running snoozes of other
    patients than the synthetic one."""
    settings = load_settings(database_url=database_url, patient_hash_key=SecretStr(HASH_KEY))
    await upgrade(settings)
    at = now or datetime.now(UTC)
    async with Store.from_settings(settings) as store, store.engine.begin() as conn:
        for start in range(0, rows, BATCH):
            await conn.execute(
                snoozes.insert(),
                [
                    {
                        "patient_hash": _other_patient(i // CARDS_PER_PATIENT),
                        "service_id": SERVICE_ID,
                        "card_uuid": str(uuid.UUID(int=i)),
                        "rule_id": RULES[i % len(RULES)],
                        "override_code": "patient-declined",
                        "snoozed_at": at - timedelta(days=i % 30),
                        "expires_at": at + timedelta(days=30 - i % 30),
                    }
                    for i in range(start, min(start + BATCH, rows))
                ],
            )
        # PostgreSQL plans from statistics: an unanalysed fresh table could be read by a scan.
        if conn.dialect.name == "postgresql":
            await conn.execute(sa.text("ANALYZE snoozes"))
    if settings.database_url.startswith("sqlite"):
        # As a long-running database would be: its log copied into the file, not 100,000 rows
        # of write-ahead log every read of the server would look through first.
        async with Store.from_settings(settings) as store, store.engine.connect() as conn:
            await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def governance_on(workdir: Path, database_url: str, rows: int = ROWS) -> Path:
    """Governance on, for a benchmark's server: its database migrated and holding ``rows``
    snoozes of other patients, and an empty site file (a site that changes nothing), whose
    path is returned for ``CDS_SITE_CONFIG``."""
    asyncio.run(seed(database_url, rows))
    site = workdir / "site.yaml"
    site.write_text("", encoding="utf-8")
    return site


async def _timed(
    snoozing: Snoozing | None, cards: list[Card], who: str, now: datetime
) -> tuple[float, float]:
    """One call's added cost, wall time and this process's CPU; with no ``snoozing``, the
    timer's own floor (a call that shows no card: no lookup), which shows what the machine's
    load adds to every sample."""
    started, cpu = time.perf_counter(), time.process_time()
    hashed = patient_hash(HASH_KEY, who)
    if snoozing is not None:
        await snoozing.hidden(SERVICE_ID, hashed, cards, now)
    else:
        await asyncio.sleep(0)
    return time.perf_counter() - started, time.process_time() - cpu


async def measure(database_url: str, runs: int = RUNS, rows: int = ROWS) -> dict[str, Any]:
    """Median and p99 of the lookup on ``database_url`` (seeded here), miss and hit."""
    await seed(database_url, rows)
    settings = load_settings(database_url=database_url, patient_hash_key=SecretStr(HASH_KEY))
    shipped = Settings(env="test")
    catalogue = load_catalogue(shipped.rules_dir, shipped.cards_dir, shipped.topic_system)
    now = datetime.now(UTC)
    cards = [Card(str(uuid.uuid4()), rule) for rule in RULES]
    samples: dict[str, list[tuple[float, float]]] = {case: [] for case in CASES}
    async with Store.from_settings(settings) as store:
        snoozing = Snoozing.for_catalogue(store, catalogue)
        snoozed_one = patient_hash(HASH_KEY, "bench-snoozed")
        async with store.engine.begin() as conn:
            await conn.execute(
                snoozes.insert(),
                {
                    "patient_hash": snoozed_one,
                    "service_id": SERVICE_ID,
                    "card_uuid": cards[0].card_uuid,
                    "rule_id": cards[0].rule_id,
                    "override_code": "patient-declined",
                    "snoozed_at": now,
                    "expires_at": now + timedelta(days=30),
                },
            )
        users = (None, snoozing, snoozing)
        patients = ("bench-patient", "bench-patient", "bench-snoozed")
        cases = list(zip(CASES, users, patients, strict=True))
        try:
            for i in range(WARMUP + runs):
                for case, used, who in cases:
                    timed = await _timed(used, cards, who, now)
                    if i >= WARMUP:
                        samples[case].append(timed)
            hidden = await snoozing.hidden(SERVICE_ID, snoozed_one, cards, now)
            assert hidden == {cards[0].card_uuid}, "the snoozed card must be found"
        finally:
            await snoozing.close()
    return {case: _summary(values) for case, values in samples.items()}


def _summary(values: list[tuple[float, float]]) -> dict[str, Any]:
    wall = [w for w, _ in values]
    return {
        "runs": len(values),
        "median_ms": round(median(wall) * 1000, 4),
        "p99_ms": round(results.percentile(wall, 99) * 1000, 4),
        # The client's CPU (SQLAlchemy, the driver): what the lookup takes from the worker.
        "cpu_ms_per_lookup": round(sum(c for _, c in values) / len(values) * 1000, 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url",
        action="append",
        help="a database to measure (repeatable; each is migrated and seeded: use an empty one); "
        "default: a SQLite file in a temp dir",
    )
    parser.add_argument("--runs", type=int, default=RUNS)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="footpath-snooze-") as tmp:
        default = f"sqlite+aiosqlite:///{Path(tmp) / 'snooze.db'}"
        return _run(args.database_url or [default], args.runs)


def _run(urls: list[str], runs: int) -> int:
    payload: dict[str, Any] = {"benchmark": "snooze", "machine": results.machine(), "rows": ROWS}
    rows = []
    for url in urls:
        dialect = url.split(":", 1)[0].split("+", 1)[0]
        measured = asyncio.run(measure(url, runs))
        payload[dialect] = measured
        rows += [
            (dialect, case, m["median_ms"], m["p99_ms"], m["cpu_ms_per_lookup"])
            for case, m in measured.items()
        ]
    payload["machine"]["load_average_at_end"] = results.load_average()
    print(results.table(("database", "patient", "median ms", "p99 ms", "cpu ms"), rows))
    print(
        f"load average: {payload['machine']['load_average_at_start']} -> "
        f"{payload['machine']['load_average_at_end']}"
    )
    results.save("snooze", payload)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
