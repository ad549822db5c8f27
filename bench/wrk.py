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
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Final

import orjson

from bench import results
from bench.generate import SERVICE_ID, make_request
from bench.http import (
    ALGORITHMS,
    CONCURRENCY,
    HOST,
    Server,
    Signer,
    serving,
    target_met,
    verdict,
    wait_ready,
)

SCRIPT: Final = Path(__file__).resolve().with_name("wrk.lua")
THREADS: Final = 2
WARMUP_SECONDS: Final = 3
# Tokens minted per second of load: a little above what the floor app reaches on two workers,
# so no run ever runs out (an exhausted token is a 401, counted in non2xx).
TOKENS_PER_SECOND: Final[dict[str, int]] = {"small": 5_000, "typical": 1_400, "heavy": 100}


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


def measure(server: Server, signer: Signer, workdir: Path, seconds: int) -> dict[str, Any]:
    audience = server.audience
    phases: dict[str, Any] = {}
    for size, rate in TOKENS_PER_SECOND.items():
        body = workdir / f"{size}.json"
        body.write_bytes(orjson.dumps(make_request(size)))
        tokens = workdir / "tokens.txt"
        for duration in (WARMUP_SECONDS, seconds):
            tokens.write_text("\n".join(signer.tokens(audience, rate * duration)))
            cpu_before = server.cpu_seconds()
            found = run_wrk(server, tokens, body, duration)
            cpu = server.cpu_seconds() - cpu_before
        requests = int(found["requests"])
        phases[size] = {
            "requests": requests,
            "throughput_rps": round(requests / found["seconds"], 1),
            "p50_ms": round(found["p50_ms"], 2),
            "p99_ms": round(found["p99_ms"], 2),
            "non2xx": int(found["non2xx"]),
            "socket_errors": int(found["socket_errors"]),
            "server_cpu_ms_per_request": round(cpu / requests * 1000, 2) if requests else None,
        }
        print(f"{size}: {phases[size]}", flush=True)
    return phases


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
                verdict(met),
            )
        )
    server = payload["server"]
    print(f"server: {server['command']}, {server['workers']} worker(s), JWT {server['alg']}, wrk")
    headers = ("size", "requests", "non-2xx", "p50 ms", "p99 ms", "req/s", "cpu ms/req", "met")
    print(results.table(headers, rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--floor", action="store_true", help="serve bench/floor.py instead")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--database-url", help="the server's CDS_DATABASE_URL")
    parser.add_argument("--alg", choices=ALGORITHMS, default="RS384")
    parser.add_argument("--seconds", type=int, default=10, help="timed seconds per size")
    parser.add_argument(
        "--governance", action="store_true", help="an empty site file and 100,000 snoozes"
    )
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        sys.stderr.write("wrk is not installed: apt-get install -y wrk\n")
        return 2
    signer = Signer(args.alg)
    machine = results.machine()
    with serving(
        signer,
        workers=args.workers,
        floor=args.floor,
        log_level="WARNING",
        database_url=args.database_url,
        governance=args.governance,
    ) as server:
        asyncio.run(wait_ready(server))
        phases = measure(server, signer, server.workdir, args.seconds)
    machine["load_average_at_end"] = results.load_average()
    payload: dict[str, Any] = {
        "benchmark": "wrk",
        "machine": machine,
        "server": {
            "command": server.command,
            "workers": args.workers,
            "alg": args.alg,
            "governance": args.governance,
            "concurrency": CONCURRENCY,
        },
        "phases": phases,
    }
    print()
    _print(payload)
    kind = "wrk-floor" if args.floor else "wrk-governance" if args.governance else "wrk"
    results.save(f"{kind}-w{args.workers}-{args.alg.lower()}", payload)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
