"""Cross-check of bench.http with wrk, a C load generator that leaves the cores to the server.

The same server setups as ``bench.http`` (``cds serve`` or ``--floor``, ``--workers``,
``--database-url``, JWT verification and replay protection on), driven by ``wrk`` (Debian
package ``wrk``) at concurrency 8 for a fixed time per size. The Python client of bench.http
costs CPU on the same two cores; with one worker that does not matter (the server's core is the
bottleneck), with two it does, and this tells how much.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from statistics import median
from typing import Any, Final

import orjson

from bench import results
from bench.generate import SERVICE_ID, make_request
from bench.http import (
    ALGORITHMS,
    CONCURRENCY,
    HOST,
    Profiler,
    Server,
    Signer,
    serving,
    target_met,
    verdict,
    wait_ready,
)
from bench.postgres import Cluster, throwaway_cluster

SCRIPT: Final = Path(__file__).resolve().with_name("wrk.lua")
THREADS: Final = 2
WARMUP_SECONDS: Final = 3
# Tokens minted per second of load: a little above what the floor app reaches on two workers,
# so no run ever runs out (an exhausted token is a 401, counted in non2xx).
TOKENS_PER_SECOND: Final[dict[str, int]] = {"small": 5_000, "typical": 1_400, "heavy": 100}
# The service's, minted for each run: about twice what it reaches on two workers.
SERVICE_TOKENS_PER_SECOND: Final[dict[str, int]] = {"small": 1_500, "typical": 800, "heavy": 100}
SIZES: Final = tuple(TOKENS_PER_SECOND)
MEDIAN_KEYS: Final = (
    "throughput_rps",
    "p99_ms",
    "server_cpu_ms_per_request",
    "database_cpu_ms_per_request",
    "wrk_cpu_ms_per_request",
)


def run_wrk(server: Server, tokens: Path, body: Path, seconds: int) -> dict[str, float]:
    """One wrk run; its RESULT line as numbers."""
    command = [
        *("wrk", f"-t{THREADS}", f"-c{CONCURRENCY}", f"-d{seconds}s", "--latency"),
        *("-s", str(SCRIPT), f"http://{HOST}:{server.port}", "--"),
        *(str(tokens), str(body), f"/cds-services/{SERVICE_ID}", str(THREADS)),
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    line = next((ln for ln in out.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{out[-2000:]}")
    return {key: float(value) for key, value in (kv.split("=") for kv in line.split()[1:])}


def one_run(
    server: Server,
    signer: Signer,
    body: Path,
    size: str,
    seconds: int,
    *,
    profile: str = "",
    database: Cluster | None = None,
) -> dict[str, Any]:
    """One wrk run of ``seconds`` against ``server`` with fresh tokens: its figures.

    With ``database`` (a cluster of bench/postgres.py), the database's CPU per request too;
    wrk's own is always given: both share the cores with the server.
    """
    tokens = server.workdir / "tokens.txt"
    rate = (TOKENS_PER_SECOND if server.floor else SERVICE_TOKENS_PER_SECOND)[size]
    tokens.write_text("\n".join(signer.tokens(server.audience, rate * seconds)))
    profiler = Profiler(server.pid, bool(profile), subprocesses=server.workers > 1)
    profiler.start(profile)
    cpu_before = server.cpu_seconds()
    db_before = database.cpu_seconds() if database is not None else 0.0
    client_before = _children_cpu_seconds()
    found = run_wrk(server, tokens, body, seconds)
    cpu = server.cpu_seconds() - cpu_before
    db_cpu = database.cpu_seconds() - db_before if database is not None else None
    client_cpu = _children_cpu_seconds() - client_before
    profiler.stop()
    requests = int(found["requests"])
    per_request = 1000 / requests if requests else None
    return {
        "requests": requests,
        "throughput_rps": round(requests / found["seconds"], 1),
        "p50_ms": round(found["p50_ms"], 2),
        "p99_ms": round(found["p99_ms"], 2),
        "non2xx": int(found["non2xx"]),
        "socket_errors": int(found["socket_errors"]),
        "server_cpu_ms_per_request": round(cpu * per_request, 3) if per_request else None,
        "database_cpu_ms_per_request": (
            round(db_cpu * per_request, 3) if per_request and db_cpu is not None else None
        ),
        "wrk_cpu_ms_per_request": round(client_cpu * per_request, 3) if per_request else None,
        "load_average": results.load_average()[0],
    }


def _children_cpu_seconds() -> float:
    """CPU of this process's children that have ended (wrk, once it has)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def body_file(workdir: Path, size: str) -> Path:
    body = workdir / f"{size}.json"
    if not body.is_file():
        body.write_bytes(orjson.dumps(make_request(size)))
    return body


def measure(
    server: Server,
    signer: Signer,
    sizes: Sequence[str],
    seconds: int,
    *,
    profile: bool,
    database: Cluster | None,
) -> dict[str, Any]:
    phases: dict[str, Any] = {}
    for size in sizes:
        body = body_file(server.workdir, size)
        one_run(server, signer, body, size, WARMUP_SECONDS)
        tag = f"wrk-w{server.workers}-{size}" if profile else ""
        phases[size] = one_run(server, signer, body, size, seconds, profile=tag, database=database)
        print(f"{size}: {phases[size]}", flush=True)
    return phases


def alternate(
    servers: dict[str, Server],
    signer: Signer,
    sizes: Sequence[str],
    seconds: int,
    rounds: int,
    *,
    database: Cluster | None,
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Each size: every server warmed up, then ``rounds`` timed runs of each, taking turns, so
    that every setup meets the same background load; results by size, then by setup."""
    found: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for size in sizes:
        found[size] = {label: [] for label in servers}
        for server in servers.values():
            one_run(server, signer, body_file(server.workdir, size), size, WARMUP_SECONDS)
        for turn in range(rounds):
            for label, server in servers.items():
                body = body_file(server.workdir, size)
                run = one_run(server, signer, body, size, seconds, database=database)
                found[size][label].append(run)
                print(f"{size} round {turn + 1} {label}: {run}", flush=True)
    return found


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median throughput, p99 and CPU per request of several runs of one setup."""
    found: dict[str, Any] = {"non2xx": sum(r["non2xx"] for r in runs)}
    for key in MEDIAN_KEYS:
        values = [r[key] for r in runs if r[key] is not None]
        found[key] = round(median(values), 3) if values else None
    return found


def _print(payload: dict[str, Any]) -> None:
    rows = []
    for size, phase in payload["phases"].items():
        met = target_met(size, phase)
        rows.append(
            (
                size,
                phase["requests"],
                phase["non2xx"],
                phase["p50_ms"],
                phase["p99_ms"],
                phase["throughput_rps"],
                phase["server_cpu_ms_per_request"],
                phase["database_cpu_ms_per_request"],
                phase["wrk_cpu_ms_per_request"],
                verdict(met),
            )
        )
    server = payload["server"]
    print(f"server: {server['command']}, {server['workers']} worker(s), JWT {server['alg']}, wrk")
    headers = (
        *("size", "requests", "non-2xx", "p50 ms", "p99 ms", "req/s"),
        *("cpu ms/req", "db cpu ms/req", "wrk cpu ms/req", "met"),
    )
    print(results.table(headers, rows))


class NullStoreServer(Server):
    """``cds serve`` without the replay cache's and the audit's database work (bench/null_store)."""

    @property
    def command(self) -> str:
        return "bench.null_store (cds serve, no replay cache, no audit writes)"

    def _spawn(self, command: list[str], env: dict[str, str]) -> None:
        super()._spawn([sys.executable, "-m", "bench.null_store"], env)


@contextmanager
def all_serving(
    signer: Signer, setups: dict[str, tuple[type[Server], bool, int]], database_url: str | None
) -> Iterator[dict[str, Server]]:
    """Several servers at once, started one after the other (migrations must not race)."""
    with ExitStack() as stack:
        servers: dict[str, Server] = {}
        for label, (kind, floor, workers) in setups.items():
            server = stack.enter_context(
                serving(
                    signer,
                    workers=workers,
                    floor=floor,
                    log_level="WARNING",
                    database_url=database_url,
                    kind=kind,
                )
            )
            asyncio.run(wait_ready(server))
            servers[label] = server
        yield servers


def scaling(args: argparse.Namespace, signer: Signer, database: Cluster | None) -> dict[str, Any]:
    """The service and the floor on one worker and on ``--workers``, taking turns."""
    many = args.workers if args.workers > 1 else 2
    setups = {
        "service w1": (Server, False, 1),
        f"service w{many}": (Server, False, many),
        "floor w1": (Server, True, 1),
        f"floor w{many}": (Server, True, many),
    }
    with all_serving(signer, setups, args.database_url) as servers:
        found = alternate(servers, signer, args.sizes, args.seconds, args.rounds, database=database)
    table: dict[str, Any] = {}
    for size, by_setup in found.items():
        summary: dict[str, Any] = {label: medians(runs) for label, runs in by_setup.items()}
        for kind in ("service", "floor"):
            one = summary[f"{kind} w1"]["throughput_rps"]
            summary[f"{kind} ratio"] = {
                "throughput": round(summary[f"{kind} w{many}"]["throughput_rps"] / one, 2),
                "per_round": [
                    round(b["throughput_rps"] / a["throughput_rps"], 2)
                    for a, b in zip(
                        by_setup[f"{kind} w1"], by_setup[f"{kind} w{many}"], strict=True
                    )
                ],
            }
        table[size] = summary
    return {"mode": "scaling", "workers": many, "runs": found, "summary": table}


def store_cost(
    args: argparse.Namespace, signer: Signer, database: Cluster | None
) -> dict[str, Any]:
    """``cds serve`` and the same without replay cache and audit writes, taking turns."""
    setups = {
        "store": (Server, False, args.workers),
        "null store": (NullStoreServer, False, args.workers),
    }
    with all_serving(signer, setups, args.database_url) as servers:
        found = alternate(servers, signer, args.sizes, args.seconds, args.rounds, database=database)
    table: dict[str, Any] = {}
    for size, by_setup in found.items():
        summary: dict[str, Any] = {label: medians(runs) for label, runs in by_setup.items()}
        per_round = [
            round(a["server_cpu_ms_per_request"] - b["server_cpu_ms_per_request"], 3)
            for a, b in zip(by_setup["store"], by_setup["null store"], strict=True)
        ]
        summary["store cost ms per call"] = {
            "median": round(median(per_round), 3),
            "per_round": per_round,
        }
        table[size] = summary
    return {"mode": "store-cost", "workers": args.workers, "runs": found, "summary": table}


def _print_turns(payload: dict[str, Any]) -> None:
    rows = []
    for size, summary in payload["summary"].items():
        for label, value in summary.items():
            if "throughput_rps" in value:
                rows.append(
                    (
                        size,
                        label,
                        value["throughput_rps"],
                        value["p99_ms"],
                        value["server_cpu_ms_per_request"],
                        value["database_cpu_ms_per_request"],
                        value["wrk_cpu_ms_per_request"],
                        value["non2xx"],
                    )
                )
            else:
                print(f"{size} {label}: {value}")
    headers = (
        *("size", "setup", "req/s (median)", "p99 ms"),
        *("server cpu ms/req", "db cpu ms/req", "wrk cpu ms/req", "non-2xx"),
    )
    print(results.table(headers, rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--floor", action="store_true", help="serve bench/floor.py instead")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--database-url", help="the server's CDS_DATABASE_URL")
    where.add_argument(
        "--postgres",
        action="store_true",
        help="serve from a throwaway PostgreSQL cluster (bench/postgres.py) and give its CPU",
    )
    parser.add_argument("--alg", choices=ALGORITHMS, default="RS384")
    parser.add_argument("--seconds", type=int, default=10, help="timed seconds per size")
    parser.add_argument(
        "--governance", action="store_true", help="an empty site file and 100,000 snoozes"
    )
    parser.add_argument("--sizes", nargs="+", choices=SIZES, default=list(SIZES))
    parser.add_argument(
        "--py-spy", action="store_true", help="sample the server (every worker) with py-spy"
    )
    turns = parser.add_mutually_exclusive_group()
    turns.add_argument(
        "--scaling",
        action="store_true",
        help="service and floor on 1 worker and on --workers (2 if 1), timed runs taking turns",
    )
    turns.add_argument(
        "--store-cost",
        action="store_true",
        help="cds serve against the same without replay cache and audit writes, taking turns",
    )
    parser.add_argument("--rounds", type=int, default=3, help="turns of --scaling/--store-cost")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        sys.stderr.write("wrk is not installed: apt-get install -y wrk\n")
        return 2
    with ExitStack() as stack:
        database = stack.enter_context(throwaway_cluster()) if args.postgres else None
        if database is not None:
            args.database_url = database.url
        payload = _run(args, Signer(args.alg), database)
    print()
    if "summary" in payload:
        _print_turns(payload)
        results.save(f"wrk-{payload['mode']}-w{payload['workers']}-{args.alg.lower()}", payload)
    else:
        _print(payload)
        kind = "wrk-floor" if args.floor else "wrk-governance" if args.governance else "wrk"
        results.save(f"{kind}-w{args.workers}-{args.alg.lower()}", payload)
    return 0


def _run(args: argparse.Namespace, signer: Signer, database: Cluster | None) -> dict[str, Any]:
    machine = results.machine()
    payload: dict[str, Any]
    if args.scaling or args.store_cost:
        payload = (scaling if args.scaling else store_cost)(args, signer, database)
        payload |= {"benchmark": "wrk", "alg": args.alg}
    else:
        with serving(
            signer,
            workers=args.workers,
            floor=args.floor,
            log_level="WARNING",
            database_url=args.database_url,
            governance=args.governance,
        ) as server:
            asyncio.run(wait_ready(server))
            phases = measure(
                server, signer, args.sizes, args.seconds, profile=args.py_spy, database=database
            )
        payload = {
            "benchmark": "wrk",
            "server": {
                "command": server.command,
                "workers": args.workers,
                "alg": args.alg,
                "governance": args.governance,
                "concurrency": CONCURRENCY,
            },
            "phases": phases,
        }
    machine["load_average_at_end"] = results.load_average()
    payload["machine"] = machine
    payload["database"] = "throwaway PostgreSQL" if database else args.database_url or "SQLite"
    return payload


if __name__ == "__main__":
    raise SystemExit(main())
