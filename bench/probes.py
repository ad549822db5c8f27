"""Probe latency under load: /healthz and /readyz on one worker while heavy hook calls
(3.3 MiB charts) are in flight, with heavy evaluation in a worker thread and, for comparison,
on the event loop (the behaviour before CDS_EVALUATION_THREAD_BYTES); and the floor: the same
probes with no call in flight, which is what the machine allows at its present load."""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Final

import httpx
import orjson

from bench import results
from bench.generate import make_request
from bench.http import HOST, Signer, serving, wait_ready

HEAVY_IN_FLIGHT: Final = 4  # the issue's: four heavy calls at once on one worker
PROBE_INTERVAL_SECONDS: Final = 0.05
TARGET_MS: Final = 100.0  # the bound on probe latency under that load
# CDS_EVALUATION_THREAD_BYTES per mode; "loop" keeps every evaluation on the event loop and
# "idle" sends no heavy call at all.
MODES: Final[dict[str, str | None]] = {"thread": None, "loop": str(2**40), "idle": None}


async def _heavy(
    client: httpx.AsyncClient, url: str, body: bytes, tokens: list[str], until: float
) -> list[int]:
    """Heavy calls one after another until ``until``; each one's status."""
    statuses = []
    while time.monotonic() < until and tokens:
        headers = {"Authorization": f"Bearer {tokens.pop()}", "Content-Type": "application/json"}
        response = await client.post(url, content=body, headers=headers)
        statuses.append(response.status_code)
    return statuses


async def _probes(client: httpx.AsyncClient, path: str, until: float) -> list[float]:
    """Seconds each probe of ``path`` took, one every PROBE_INTERVAL_SECONDS until ``until``."""
    latencies = []
    while time.monotonic() < until:
        started = time.perf_counter()
        response = await client.get(path)
        latencies.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"{path} answered {response.status_code}")
        await asyncio.sleep(PROBE_INTERVAL_SECONDS)
    return latencies


def _probe_both(base: str, until: float) -> tuple[list[float], list[float]]:
    """Both probes until ``until`` (time.monotonic, which every process shares on Linux), from
    a process of their own: like the kubelet's, they share no GIL with the heavy calls' client."""

    async def both() -> tuple[list[float], list[float]]:
        async with httpx.AsyncClient(base_url=base, timeout=30.0) as probes:
            healthz, readyz = await asyncio.gather(
                _probes(probes, "/healthz", until), _probes(probes, "/readyz", until)
            )
        return healthz, readyz

    return asyncio.run(both())


async def _measure(
    port: int, audience: str, signer: Signer, seconds: float, in_flight: int
) -> dict[str, Any]:
    body = orjson.dumps(make_request("heavy"))
    tokens = signer.tokens(audience, 400)
    base = f"http://{HOST}:{port}"
    limits = httpx.Limits(max_connections=HEAVY_IN_FLIGHT)
    spawn = multiprocessing.get_context("spawn")
    async with httpx.AsyncClient(timeout=120.0, limits=limits) as heavy:
        with ProcessPoolExecutor(1, mp_context=spawn) as prober:
            loop = asyncio.get_running_loop()
            # The prober imports this module before the clock starts, not during the run.
            await loop.run_in_executor(prober, time.monotonic)
            until = time.monotonic() + seconds
            # The probes start once the heavy calls are under way.
            load = [
                asyncio.create_task(_heavy(heavy, audience, body, tokens, until))
                for _ in range(in_flight)
            ]
            await asyncio.sleep(0.5)
            healthz, readyz = await loop.run_in_executor(prober, _probe_both, base, until)
        statuses = [status for task in load for status in await task]
    summary: dict[str, Any] = {"heavy_calls": len(statuses), "heavy_ok": statuses.count(200)}
    for name, samples in (("healthz", healthz), ("readyz", readyz)):
        summary[name] = {
            "probes": len(samples),
            "p50_ms": round(results.percentile(samples, 50) * 1000, 1),
            "p99_ms": round(results.percentile(samples, 99) * 1000, 1),
            "max_ms": round(max(samples) * 1000, 1),
        }
    return summary


def run(mode: str, seconds: float) -> dict[str, Any]:
    signer = Signer("RS384")
    threshold = MODES[mode]
    if threshold is None:
        os.environ.pop("CDS_EVALUATION_THREAD_BYTES", None)
    else:
        os.environ["CDS_EVALUATION_THREAD_BYTES"] = threshold
    with serving(signer, workers=1, floor=False, log_level="WARNING", database_url=None) as srv:
        asyncio.run(wait_ready(srv))
        in_flight = 0 if mode == "idle" else HEAVY_IN_FLIGHT
        return asyncio.run(_measure(srv.port, srv.audience, signer, seconds, in_flight))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--mode", choices=sorted(MODES), action="append")
    args = parser.parse_args(argv)
    payload: dict[str, Any] = {"machine": results.machine(), "target_ms": TARGET_MS}
    for mode in args.mode or list(MODES):
        payload[mode] = run(mode, args.seconds)
    payload["machine"]["load_average_at_end"] = results.load_average()
    idle = payload.get("idle")
    rows = [
        [
            mode,
            probe,
            m[probe]["probes"],
            m[probe]["p50_ms"],
            m[probe]["p99_ms"],
            m[probe]["max_ms"],
            # The machine's share of the tail: how far above the floor the heavy calls push it.
            round(m[probe]["p99_ms"] / idle[probe]["p99_ms"], 1) if idle else "",
        ]
        for mode, m in payload.items()
        if mode in MODES
        for probe in ("healthz", "readyz")
    ]
    headers = ["heavy evaluation", "probe", "n", "p50 ms", "p99 ms", "max ms", "p99 / idle"]
    print(results.table(headers, rows))
    results.save("probes", payload)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
