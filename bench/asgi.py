"""CPU per call through the apps' ASGI interface, no sockets: the service against the floor.

``bench.http --against-floor`` is the judge of issue #18 (uvicorn, a real client, the server's
CPU from /proc). This is the quick loop for working on it: the same two apps (``cds.app`` as
``cds serve`` configures it, with JWT verification on, SQLite and the audit writer; and
``bench/floor.py``), built in this process and called through ASGI one call at a time with the
same tokens and bodies, alternating in rounds. Per call it counts this process's CPU
(``time.process_time``: the audit writer's and SQLite's threads included), with the writer
flushed at the end of each round so its work is inside the round it belongs to.

Without uvicorn's HTTP parsing and socket writes (which both apps pay alike, about
0.1-0.2 ms a call) the floor is smaller here, so ratios are higher than over HTTP: a ratio met
here is met there. ``--profile small`` writes a cProfile of the service's rounds instead.

    .venv/bin/python -m bench.asgi [--shapes small typical] [--calls 400] [--rounds 5]
    .venv/bin/python -m bench.asgi --profile small [--calls 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from statistics import median
from typing import Any, Final

import orjson
from starlette.types import ASGIApp as App
from starlette.types import Message, Scope

from bench import results
from bench.floor import create_app as create_floor
from bench.generate import NOW, SERVICE_ID
from bench.http import ISSUER, SHAPES, TARGET_RATIO, Signer, shape_body
from cds.app import create_app

HOST: Final = "127.0.0.1:8000"
AUDIENCE: Final = f"http://{HOST}/cds-services/{SERVICE_ID}"
# Calls per round per shape at --calls 400; heavier shapes get fewer (the body is bigger).
WEIGHT: Final = {"small": 1.0, "typical": 0.5, "heavy": 0.05, "heavy-unfiltered": 0.04}


def _environment(workdir: Path, jwks_file: Path) -> dict[str, str]:
    """What ``bench.http`` gives ``cds serve`` (auth on, SQLite in ``workdir``), and the floor."""
    return {
        "CDS_ENV": "production",
        "CDS_PATIENT_HASH_KEY": "bench-only-patient-hash-key-of-at-least-32-bytes",
        "CDS_AUTH_MODE": "required",
        "CDS_TRUSTED_ISSUERS": json.dumps({ISSUER: str(jwks_file)}),
        "CDS_PUBLIC_BASE_URL": f"http://{HOST}",
        "CDS_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
        "CDS_FIXED_NOW": NOW.isoformat(),
        "CDS_LOG_LEVEL": "INFO",
        "BENCH_FLOOR_JWKS": str(jwks_file),
        "BENCH_FLOOR_ISSUER": ISSUER,
        "BENCH_FLOOR_AUDIENCE": AUDIENCE,
    }


@contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    """``values`` in the environment while the apps read their settings, then as before."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class Lifespan:
    """An app's lifespan protocol driven by hand: started, then shut down."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.outbox: asyncio.Queue[Message] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        async def receive() -> Message:
            return await self.inbox.get()

        async def send(message: Message) -> None:
            await self.outbox.put(message)

        scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}

        async def run() -> None:
            await self.app(scope, receive, send)

        self.task = asyncio.create_task(run())
        await self.inbox.put({"type": "lifespan.startup"})
        started = await self.outbox.get()
        if started["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"start-up failed: {started}")

    async def stop(self) -> None:
        await self.inbox.put({"type": "lifespan.shutdown"})
        await self.outbox.get()
        if self.task is not None:
            await self.task


async def call(app: App, body: bytes, token: str) -> tuple[int, bytes]:
    """One POST to the service's endpoint, as uvicorn would hand it over; status and body."""
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": f"/cds-services/{SERVICE_ID}",
        "raw_path": f"/cds-services/{SERVICE_ID}".encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", HOST.encode()),
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    sent = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> Message:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


async def _round(
    app: App, body: bytes, tokens: list[str], flush: Callable[[], Awaitable[None]] | None
) -> tuple[float, int]:
    """CPU seconds for ``len(tokens)`` calls made one after another, and the cards answered."""
    answer = b""
    cpu = time.process_time()
    for token in tokens:
        status, answer = await call(app, body, token)
        if status != 200:
            raise RuntimeError(f"status {status}: {answer[:300]!r}")
    if flush is not None:
        await flush()
    spent = time.process_time() - cpu
    # Read outside the timed stretch: the answers are the same call after call.
    return spent, len(orjson.loads(answer)["cards"]) if answer else 0


async def measure(
    shapes: list[str], calls: int, rounds: int, profile: str | None
) -> dict[str, Any]:
    signer = Signer("RS384")
    with tempfile.TemporaryDirectory(prefix="bench-asgi-") as tmp:
        workdir = Path(tmp)
        jwks_file = workdir / "jwks.json"
        jwks_file.write_text(json.dumps(signer.jwks()), encoding="utf-8")
        with _environ(_environment(workdir, jwks_file)):
            service_app = create_app()
            floor_app = create_floor()
        parts = service_app.state.parts
        service_life, floor_life = Lifespan(service_app), Lifespan(floor_app)
        await service_life.start()
        await floor_life.start()
        payload: dict[str, Any] = {"benchmark": "asgi-against-floor", "shapes": {}}
        try:
            for shape in shapes:
                body = shape_body(shape)
                count = max(10, int(calls * WEIGHT.get(shape, 1.0)))
                apps = {"floor": (floor_app, None), "service": (service_app, parts.audit.flush)}
                for app, flush in apps.values():  # warm-up
                    await _round(app, body, signer.tokens(AUDIENCE, max(5, count // 5)), flush)
                if profile == shape:
                    profiler = cProfile.Profile()
                    tokens = signer.tokens(AUDIENCE, count * rounds)
                    profiler.enable()
                    await _round(service_app, body, tokens, parts.audit.flush)
                    profiler.disable()
                    results.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
                    out = results.RESULTS_DIR / f"asgi-profile-{shape}.prof"
                    profiler.dump_stats(out)
                    stats = pstats.Stats(str(out))
                    stats.sort_stats("tottime").print_stats(45)
                    stats.sort_stats("cumulative").print_stats(60)
                    continue
                per_call: dict[str, list[float]] = {"floor": [], "service": []}
                cards = 0
                for _ in range(rounds):
                    for name, (app, flush) in apps.items():
                        tokens = signer.tokens(AUDIENCE, count)
                        spent, answered = await _round(app, body, tokens, flush)
                        per_call[name].append(spent / count * 1000)
                        if name == "service":
                            cards = answered
                floor_ms, service_ms = median(per_call["floor"]), median(per_call["service"])
                payload["shapes"][shape] = {
                    "floor_ms": round(floor_ms, 3),
                    "service_ms": round(service_ms, 3),
                    "ratio": round(service_ms / floor_ms, 2),
                    "target": TARGET_RATIO.get(shape),
                    "cards": cards,
                    "rounds": {k: [round(v, 3) for v in vs] for k, vs in per_call.items()},
                }
                print(
                    f"{shape:17} floor {floor_ms:7.3f} ms  service {service_ms:7.3f} ms  "
                    f"{service_ms / floor_ms:5.2f}x  (target {TARGET_RATIO.get(shape)}x, "
                    f"{cards} cards)",
                    flush=True,
                )
        finally:
            await service_life.stop()
            await floor_life.stop()
    return payload


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["small", "typical"], choices=list(SHAPES))
    parser.add_argument("--calls", type=int, default=400, help="calls per round (small)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", choices=list(SHAPES), help="cProfile this shape instead")
    args = parser.parse_args(argv)
    gc.collect()
    load = results.load_average()
    payload = asyncio.run(measure(args.shapes, args.calls, args.rounds, args.profile))
    payload["load_average"] = [load, results.load_average()]
    if args.profile is None:
        results.write("asgi-against-floor", payload)
    print(f"load average {load} -> {results.load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
