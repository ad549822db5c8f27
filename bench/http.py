"""Load test of the real server on 127.0.0.1 with JWT verification on: latency, throughput, RSS."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any, Final

import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from bench import results
from bench.generate import NOW, SERVICE_ID, make_request
from bench.snooze import governance_on

HOST: Final = "127.0.0.1"  # the load generator talks to this address and no other
ISSUER: Final = "https://bench.example"
# The two algorithms CDS Hooks recommends. Verifying RS384 costs the server ~0.02 ms of CPU,
# ES384 ~0.4 ms: at the small patient's budget (1.25 ms) the choice alone moves req/s a lot.
ALGORITHMS: Final = ("ES384", "RS384")
CONCURRENCY: Final = 8  # the issue's; --concurrency 1 shows the latency of one unqueued call
TOKEN_LIFETIME_SECONDS: Final = 600
# (requests, seconds at most) per phase; the memory phase is two windows on the small patient.
PHASES: Final[dict[str, tuple[int, float]]] = {"typical": (2_000, 60.0), "heavy": (200, 90.0)}
MEMORY_WINDOW: Final = 5_000
MEMORY_WINDOW_SECONDS: Final = 120.0
WARMUP: Final = 200
# Targets from the issue (2 cores, 1 worker, concurrency 8).
TARGET_P99_MS: Final[dict[str, float]] = {"typical": 20.0, "heavy": 150.0}
TARGET_SMALL_RPS: Final = 800.0
TARGET_RSS_MIB: Final = 150.0
# RSS moves by allocator noise; more than this between 5,000 and 10,000 requests is "growth".
GROWTH_TOLERANCE_MIB: Final = 2.0


class Signer:
    """A key pair standing in for the EHR (EC P-384 or RSA 2048): its public JWKS and tokens."""

    def __init__(self, alg: str = "ES384") -> None:
        self.alg = alg
        self.kid = f"bench-{alg.lower()}"
        self._key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
        if alg == "ES384":
            self._key = ec.generate_private_key(ec.SECP384R1())
        elif alg == "RS384":
            self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            raise ValueError(f"unsupported algorithm {alg}; one of {', '.join(ALGORITHMS)}")

    def jwks(self) -> dict[str, Any]:
        public = self._key.public_key()
        jwk = (
            ECAlgorithm.to_jwk(public, as_dict=True)
            if isinstance(public, ec.EllipticCurvePublicKey)
            else RSAAlgorithm.to_jwk(public, as_dict=True)
        )
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": self.alg}]}

    def tokens(self, audience: str, count: int) -> list[str]:
        """``count`` tokens for ``audience``, each with its own jti (replay protection is on)."""
        now = int(time.time())
        return [
            jwt.encode(
                {
                    "iss": ISSUER,
                    "sub": "bench-client",
                    "aud": audience,
                    "iat": now,
                    "exp": now + TOKEN_LIFETIME_SECONDS,
                    "jti": str(uuid.uuid4()),
                },
                self._key,
                algorithm=self.alg,
                headers={"kid": self.kid, "typ": "JWT"},
            )
            for _ in range(count)
        ]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # After the command name: state is field 3, so utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (uvicorn's workers when it runs more than one)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # the process ended while we looked
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        found.extend(children)
        frontier.extend(children)
    return found


def memory_mib(pid: int) -> dict[str, float]:
    """Resident set size now and at its peak, from /proc/<pid>/status, in MiB."""
    values: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values["rss" if name == "VmRSS" else "peak"] = round(int(rest.split()[0]) / 1024, 1)
    return values


@dataclass
class Server:
    """``cds serve`` (uvicorn, 1 worker, uvloop + httptools) in a child process, or with
    ``floor`` the stack's floor app (bench/floor.py) under the same uvicorn."""

    port: int
    workdir: Path
    workers: int = 1
    floor: bool = False
    # Governance on: an empty site file and 100,000 snoozes in the database (bench/snooze.py).
    governance: bool = False
    process: subprocess.Popen[bytes] | None = None

    @property
    def audience(self) -> str:
        """The URL the EHR's tokens name as ``aud``: the service's endpoint on this server."""
        return f"http://{HOST}:{self.port}/cds-services/{SERVICE_ID}"

    @property
    def command(self) -> str:
        return "bench.floor (JWT + orjson.loads only)" if self.floor else "cds serve"

    def _floor_command(self, jwks_file: Path) -> tuple[list[str], dict[str, str]]:
        env = {
            **os.environ,
            "BENCH_FLOOR_JWKS": str(jwks_file),
            "BENCH_FLOOR_ISSUER": ISSUER,
            "BENCH_FLOOR_AUDIENCE": self.audience,
        }
        command = [
            *(sys.executable, "-m", "uvicorn", "bench.floor:create_app", "--factory"),
            *("--host", HOST, "--port", str(self.port), "--workers", str(self.workers)),
            *("--no-access-log", "--log-level", "warning"),
        ]
        return command, env

    def start(self, jwks_file: Path, log_level: str, database_url: str | None) -> None:
        if self.floor:
            command, env = self._floor_command(jwks_file)
            self._spawn(command, env)
            return
        url = database_url or f"sqlite+aiosqlite:///{self.workdir / 'bench.db'}"
        env = {
            **os.environ,
            "CDS_HOST": HOST,
            "CDS_PORT": str(self.port),
            "CDS_WORKERS": str(self.workers),
            "CDS_ENV": "production",
            "CDS_PATIENT_HASH_KEY": "bench-only-patient-hash-key-of-at-least-32-bytes",
            "CDS_AUTH_MODE": "required",
            "CDS_TRUSTED_ISSUERS": json.dumps({ISSUER: str(jwks_file)}),
            "CDS_PUBLIC_BASE_URL": f"http://{HOST}:{self.port}",
            "CDS_DATABASE_URL": url,
            # Pin the clinical clock to the generator's "now" so the same cards fire every run.
            "CDS_FIXED_NOW": NOW.isoformat(),
            "CDS_LOG_LEVEL": log_level,
        }
        if self.governance:
            env["CDS_SITE_CONFIG"] = str(governance_on(self.workdir, url))
        # `python -m cds.cli serve` is what the `cds serve` console script runs.
        self._spawn([sys.executable, "-m", "cds.cli", "serve"], env)

    def _spawn(self, command: list[str], env: dict[str, str]) -> None:
        log = (self.workdir / "server.log").open("wb")
        self.process = subprocess.Popen(
            command,
            env=env,
            cwd=Path(__file__).resolve().parents[1],
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)

    def worker_pids(self) -> list[int]:
        """The processes answering requests: the server itself, or uvicorn's spawned workers."""
        if self.workers == 1:
            return [self.pid]
        return [p for p in descendants(self.pid) if "spawn_main" in _cmdline(p)]

    def cpu_seconds(self) -> float:
        """CPU used so far by the server and everything it started."""
        return sum(cpu_seconds(p) for p in (self.pid, *descendants(self.pid)))

    def worker_memory_mib(self) -> dict[str, float]:
        """RSS now and at peak of the largest worker (the memory target is per worker)."""
        per_worker = [memory_mib(p) for p in self.worker_pids()]
        return {k: max(m[k] for m in per_worker) for k in ("rss", "peak")}

    def event_loop_and_parser(self) -> list[str]:
        """Which of uvloop and httptools the workers have loaded (from their memory maps)."""
        maps = "".join(Path(f"/proc/{p}/maps").read_text() for p in self.worker_pids())
        return [name for name in ("uvloop", "httptools") if name in maps]


@contextmanager
def serving(
    signer: Signer,
    *,
    workers: int,
    floor: bool,
    log_level: str,
    database_url: str | None,
    governance: bool = False,
    kind: type[Server] = Server,
) -> Iterator[Server]:
    """The server under test, started in a temp dir that holds the signer's JWKS, and stopped.

    Its log holds only the synthetic patient's hook calls: it is kept in bench/results, and its
    tail printed when the run fails, to explain errors.
    """
    with tempfile.TemporaryDirectory(prefix="footpath-bench-") as tmp:
        workdir = Path(tmp)
        jwks_file = workdir / "jwks.json"
        jwks_file.write_text(json.dumps(signer.jwks()))
        log = workdir / "server.log"
        server = kind(free_port(), workdir, workers=workers, floor=floor, governance=governance)
        server.start(jwks_file, log_level, database_url)
        try:
            yield server
        except BaseException:
            print(log.read_text()[-3000:] if log.is_file() else "(no server log)", file=sys.stderr)
            raise
        finally:
            server.stop()
            if log.is_file():
                results.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
                (results.RESULTS_DIR / "http-server.log").write_bytes(log.read_bytes())


def target_met(size: str, phase: dict[str, Any]) -> bool:
    """Whether one size's phase meets the issue's target (throughput for small, else p99)."""
    if size == "small":
        return bool(phase["throughput_rps"] >= TARGET_SMALL_RPS)
    return bool(phase["p99_ms"] < TARGET_P99_MS[size])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
        elif name.strip().lower() == "transfer-encoding":
            raise RuntimeError("chunked responses are not expected from this server")
    body = await reader.readexactly(length) if length else b""
    return status, body


async def wait_ready(server: Server, within: float = 60.0) -> None:
    port = server.port
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if server.process is not None and server.process.poll() is not None:
            raise RuntimeError(f"the server exited with status {server.process.returncode}")
        try:
            reader, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            await asyncio.sleep(0.2)
            continue
        writer.write(f"GET /readyz HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode())
        await writer.drain()
        status, _ = await _read_response(reader)
        writer.close()
        if status == 200:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the server did not become ready within {within:.0f} s")


@dataclass
class Window:
    """What one bounded burst of requests measured."""

    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    elapsed: float = 0.0
    cards: int | None = None
    server_cpu: float = 0.0

    def summary(self) -> dict[str, Any]:
        ok = self.statuses.get(200, 0)
        return {
            "requests": len(self.latencies),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "seconds": round(self.elapsed, 3),
            "throughput_rps": round(len(self.latencies) / self.elapsed, 1) if self.elapsed else 0,
            "p50_ms": round(results.percentile(self.latencies, 50) * 1000, 2),
            "p99_ms": round(results.percentile(self.latencies, 99) * 1000, 2),
            "median_ms": round(median(self.latencies) * 1000, 2) if self.latencies else None,
            "max_ms": round(max(self.latencies, default=0.0) * 1000, 2),
            # CPU the server spent per request: robust to other load on the machine, and
            # 1000 / this is the throughput one fully available core could sustain.
            "server_cpu_ms_per_request": round(self.server_cpu / len(self.latencies) * 1000, 2)
            if self.latencies
            else None,
            "ok": ok,
            "cards": self.cards,
        }


async def burst(
    server: Server,
    body: bytes,
    tokens: Sequence[str],
    seconds: float,
    concurrency: int = CONCURRENCY,
) -> Window:
    """Send one request per token over ``concurrency`` keep-alive connections, within ``seconds``.

    Stops by itself when the tokens run out or the time is up, whichever comes first.
    """
    port = server.port
    head = (
        f"POST /cds-services/{SERVICE_ID} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    ).encode()
    window = Window()
    queue = iter(tokens)
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            for token in queue:
                if time.monotonic() > deadline:
                    return
                request = head + f"Authorization: Bearer {token}\r\n\r\n".encode() + body
                started = time.perf_counter()
                writer.write(request)
                await writer.drain()
                status, answer = await _read_response(reader)
                window.latencies.append(time.perf_counter() - started)
                window.statuses[status] = window.statuses.get(status, 0) + 1
                if status == 200 and window.cards is None:
                    window.cards = len(orjson.loads(answer).get("cards", []))
        finally:
            writer.close()

    started, cpu_before = time.perf_counter(), server.cpu_seconds()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    window.elapsed = time.perf_counter() - started
    window.server_cpu = server.cpu_seconds() - cpu_before
    return window


class Profiler:
    """py-spy sampling the server while one phase runs (optional; ``pip install py-spy``)."""

    def __init__(self, pid: int, enabled: bool, subprocesses: bool = False) -> None:
        self.pid = pid
        self.enabled = enabled
        self.subprocesses = subprocesses
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, phase: str) -> None:
        if not self.enabled:
            return
        results.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        out = results.RESULTS_DIR / f"py-spy-{phase}.txt"
        py_spy = Path(sys.executable).with_name("py-spy")
        self._process = subprocess.Popen(
            [
                str(py_spy),
                *("record", "--pid", str(self.pid), "--rate", "250", "--format", "raw"),
                # Only samples holding the GIL: a thread waiting for it is not spending CPU.
                *("--nonblocking", "--gil", "--output", str(out)),
                *(("--subprocesses",) if self.subprocesses else ()),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.send_signal(signal.SIGINT)
        self._process.wait(timeout=30)
        self._process = None


def verdict(met: bool) -> str:
    """How a target's outcome reads in the printed tables."""
    return "yes" if met else "NO"


async def run(
    server: Server, signer: Signer, scale: float, profile: bool, concurrency: int = CONCURRENCY
) -> dict[str, Any]:
    audience = server.audience
    bodies = {size: orjson.dumps(make_request(size)) for size in ("small", "typical", "heavy")}
    await wait_ready(server)
    payload: dict[str, Any] = {
        "benchmark": "http",
        "machine": results.machine(),
        "server": {
            "command": server.command,
            "workers": server.workers,
            "loaded": server.event_loop_and_parser(),
            "concurrency": concurrency,
            "alg": signer.alg,
            "governance": server.governance,
            "auth": f"JWT {signer.alg} required, replay protection on",
            "rss_after_start_mib": server.worker_memory_mib(),
        },
        "body_bytes": {size: len(body) for size, body in bodies.items()},
        "phases": {},
    }
    window_size = max(WARMUP + 100, int(MEMORY_WINDOW * scale))
    print(f"warm-up and first {window_size} small requests", flush=True)
    await burst(server, bodies["small"], signer.tokens(audience, WARMUP), 60.0, concurrency)
    first = await burst(
        server,
        bodies["small"],
        signer.tokens(audience, window_size - WARMUP),
        MEMORY_WINDOW_SECONDS,
        concurrency,
    )
    after_first = server.worker_memory_mib()
    print(f"next {window_size} small requests", flush=True)
    profiler = Profiler(server.pid, profile, subprocesses=server.workers > 1)
    tokens = signer.tokens(audience, window_size)
    profiler.start("small")
    second = await burst(server, bodies["small"], tokens, MEMORY_WINDOW_SECONDS, concurrency)
    profiler.stop()
    after_second = server.worker_memory_mib()
    payload["phases"]["small"] = {**second.summary(), "first_window": first.summary()}
    payload["memory"] = {
        "requests": [
            WARMUP + len(first.latencies),
            WARMUP + len(first.latencies) + len(second.latencies),
        ],
        "after_first_window_mib": after_first,
        "after_second_window_mib": after_second,
        "growth_mib": round(after_second["rss"] - after_first["rss"], 1),
    }
    for size, (count, seconds) in PHASES.items():
        print(f"{size}: {int(count * scale)} requests", flush=True)
        tokens = signer.tokens(audience, max(20, int(count * scale)))
        await burst(server, bodies[size], signer.tokens(audience, 10), 30.0, concurrency)
        profiler.start(size)
        window = await burst(server, bodies[size], tokens, seconds, concurrency)
        payload["phases"][size] = window.summary()
        profiler.stop()
    payload["memory"]["after_all_mib"] = server.worker_memory_mib()
    payload["machine"]["load_average_at_end"] = results.load_average()
    small = payload["phases"]["small"]
    memory = payload["memory"]
    payload["targets"] = {
        "rss_mib < 150": memory["after_second_window_mib"]["rss"] < TARGET_RSS_MIB,
        "no_growth_5k_to_10k": memory["growth_mib"] <= GROWTH_TOLERANCE_MIB,
    }
    if concurrency == CONCURRENCY:  # the latency and throughput targets are set at 8
        payload["targets"] |= {
            "small_throughput_rps >= 800": target_met("small", small),
            "typical_p99_ms < 20": target_met("typical", payload["phases"]["typical"]),
            "heavy_p99_ms < 150": target_met("heavy", payload["phases"]["heavy"]),
        }
    return payload


# --against-floor: (requests, seconds at most) per round and size; each round sends them to the
# floor, then to the service, so both see the same background load. Issue #18's targets: the
# service's CPU per request at most this many times the floor's, same run, one worker.
ROUNDS: Final = 2
SHAPES: Final[dict[str, tuple[int, float]]] = {
    "small": (1_500, 30.0),
    "typical": (600, 30.0),
    "heavy": (60, 60.0),
    "heavy-unfiltered": (60, 60.0),
}
TARGET_RATIO: Final[dict[str, float]] = {
    "small": 2.5,
    "typical": 1.8,
    "heavy": 1.2,
    "heavy-unfiltered": 1.5,
}
TARGET_UNQUEUED_P99_MS: Final[dict[str, float]] = {"typical": 5.0}


def shape_body(shape: str) -> bytes:
    """The request of a ``SHAPES`` entry: a size, or ``<size>-unfiltered``."""
    size, _, kind = shape.partition("-")
    return orjson.dumps(make_request(size, unfiltered=kind == "unfiltered"))


async def against_floor(
    floor: Server,
    service: Server,
    signer: Signer,
    *,
    scale: float,
    concurrency: int,
    shapes: Sequence[str],
) -> dict[str, Any]:
    """Each shape sent to the floor and to the service in alternating rounds: CPU per request
    of each (summed over the rounds), their ratio, and each one's latency."""
    await asyncio.gather(wait_ready(floor), wait_ready(service))
    payload: dict[str, Any] = {
        "benchmark": "http-against-floor",
        "machine": results.machine(),
        "server": {"workers": service.workers, "concurrency": concurrency, "alg": signer.alg},
        "shapes": {},
    }
    for shape in shapes:
        body = shape_body(shape)
        count, seconds = SHAPES[shape]
        count = max(20, int(count * scale))
        windows: dict[str, list[Window]] = {"floor": [], "service": []}
        for server in (floor, service):  # warm-up: the service's memos, both servers' code
            warm = max(10, count // 10)
            await burst(server, body, signer.tokens(server.audience, warm), seconds, concurrency)
        for _ in range(ROUNDS):
            for name, server in (("floor", floor), ("service", service)):
                tokens = signer.tokens(server.audience, count)
                windows[name].append(await burst(server, body, tokens, seconds, concurrency))
        row: dict[str, Any] = {"body_bytes": len(body)}
        for name, done in windows.items():
            merged = Window(
                latencies=[x for w in done for x in w.latencies],
                elapsed=sum(w.elapsed for w in done),
                server_cpu=sum(w.server_cpu for w in done),
                cards=done[0].cards,
            )
            for w in done:
                for status, n in w.statuses.items():
                    merged.statuses[status] = merged.statuses.get(status, 0) + n
            row[name] = merged.summary()
        ratio = (
            row["service"]["server_cpu_ms_per_request"] / row["floor"]["server_cpu_ms_per_request"]
        )
        row["cpu_ratio"] = round(ratio, 2)
        row["target_ratio"] = TARGET_RATIO.get(shape)
        print(f"{shape}: service/floor CPU per request {ratio:.2f}x", flush=True)
        payload["shapes"][shape] = row
    payload["machine"]["load_average_at_end"] = results.load_average()
    return payload


def _print_against_floor(payload: dict[str, Any]) -> None:
    concurrency = payload["server"]["concurrency"]
    rows = []
    for shape, row in payload["shapes"].items():
        floor, service = row["floor"], row["service"]
        target = row["target_ratio"]
        p99_target = TARGET_UNQUEUED_P99_MS.get(shape) if concurrency == 1 else None
        rows.append(
            (
                shape,
                row["body_bytes"] // 1024,
                f"{floor['server_cpu_ms_per_request']} / {service['server_cpu_ms_per_request']}",
                f"{row['cpu_ratio']}x",
                f"<= {target}x" if target else "-",
                verdict(row["cpu_ratio"] <= target) if target else "-",
                f"{floor['p50_ms']} / {service['p50_ms']}",
                f"{floor['p99_ms']} / {service['p99_ms']}",
                verdict(service["p99_ms"] < p99_target) if p99_target else "-",
                service["cards"],
                ",".join(f"{k}:{v}" for k, v in service["statuses"].items()),
            )
        )
    server = payload["server"]
    print(
        f"floor / service, {server['workers']} worker(s), JWT {server['alg']}, "
        f"concurrency {concurrency}, {ROUNDS} alternating rounds per shape"
    )
    headers = (
        *("shape", "KiB", "cpu ms/req", "ratio", "target", "met"),
        *("p50 ms", "p99 ms", "p99 < 5 ms", "cards", "service status"),
    )
    print(results.table(headers, rows))


def _print(payload: dict[str, Any]) -> None:
    rows = []
    for size, phase in payload["phases"].items():
        target = (
            f">= {TARGET_SMALL_RPS:.0f} req/s"
            if size == "small"
            else f"p99 < {TARGET_P99_MS[size]:.0f} ms"
        ) + f" at c{CONCURRENCY}"
        met = target_met(size, phase)
        rows.append(
            (
                size,
                payload["server"]["alg"],
                payload["body_bytes"][size] // 1024,
                phase["requests"],
                ",".join(f"{k}:{v}" for k, v in phase["statuses"].items()),
                phase["p50_ms"],
                phase["p99_ms"],
                phase["throughput_rps"],
                phase["server_cpu_ms_per_request"],
                target,
                verdict(met) if payload["server"]["concurrency"] == CONCURRENCY else "-",
            )
        )
    headers = (
        *("size", "alg", "KiB", "requests", "status"),
        *("p50 ms", "p99 ms", "req/s", "cpu ms/req"),
    )
    server = payload["server"]
    print(
        f"server: {server['command']}, {server['workers']} worker(s), JWT {server['alg']}, "
        f"concurrency {server['concurrency']}, governance {'on' if server['governance'] else 'off'}"
    )
    print(results.table((*headers, "target", "met"), rows))
    memory = payload["memory"]
    targets = payload["targets"]
    memory_met = targets["rss_mib < 150"] and targets["no_growth_5k_to_10k"]
    print(
        f"\nRSS after {memory['requests'][0]} small requests: "
        f"{memory['after_first_window_mib']['rss']} MiB; after {memory['requests'][1]}: "
        f"{memory['after_second_window_mib']['rss']} MiB (growth {memory['growth_mib']} MiB, "
        f"target < {TARGET_RSS_MIB:.0f} MiB and <= {GROWTH_TOLERANCE_MIB} MiB growth: "
        f"{verdict(memory_met)}"
        f"); peak {memory['after_all_mib']['peak']} MiB after the heavy phase"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply request counts (memory windows too)"
    )
    parser.add_argument("--log-level", default="INFO", help="the server's CDS_LOG_LEVEL")
    parser.add_argument(
        "--py-spy", action="store_true", help="sample the server with py-spy during each phase"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="uvicorn worker processes (CDS_WORKERS)"
    )
    parser.add_argument(
        "--database-url", help="the server's CDS_DATABASE_URL (default: SQLite in a temp dir)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=CONCURRENCY,
        help="open connections, each sending its next request when answered (the issue: 8)",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="measure bench/floor.py (JWT check and orjson.loads only) instead of cds serve",
    )
    parser.add_argument(
        "--alg",
        choices=ALGORITHMS,
        default="ES384",
        help="the EHR's JWT signing algorithm (RS384 is far cheaper to verify than ES384)",
    )
    parser.add_argument(
        "--against-floor",
        action="store_true",
        help="run the floor and the service side by side, alternating, and print their ratio",
    )
    parser.add_argument(
        "--shapes",
        nargs="+",
        choices=list(SHAPES),
        default=list(SHAPES),
        help="with --against-floor: the charts to send",
    )
    parser.add_argument(
        "--governance",
        action="store_true",
        help="governance on: an empty site file (CDS_SITE_CONFIG) and 100,000 snoozes",
    )
    args = parser.parse_args(argv)
    signer = Signer(args.alg)
    if args.against_floor:
        return _main_against_floor(args, signer)
    with serving(
        signer,
        workers=args.workers,
        floor=args.floor,
        log_level=args.log_level,
        database_url=args.database_url,
        governance=args.governance,
    ) as server:
        payload = asyncio.run(run(server, signer, args.scale, args.py_spy, args.concurrency))
    print()
    _print(payload)
    kind = "http-floor" if args.floor else "http-governance" if args.governance else "http"
    results.save(f"{kind}-w{args.workers}-c{args.concurrency}-{args.alg.lower()}", payload)
    return 0


def _main_against_floor(args: argparse.Namespace, signer: Signer) -> int:
    options = {"workers": args.workers, "log_level": args.log_level}
    with (
        serving(signer, floor=True, database_url=None, **options) as floor,
        serving(
            signer,
            floor=False,
            database_url=args.database_url,
            governance=args.governance,
            **options,
        ) as service,
    ):
        payload = asyncio.run(
            against_floor(
                floor,
                service,
                signer,
                scale=args.scale,
                concurrency=args.concurrency,
                shapes=args.shapes,
            )
        )
    print()
    _print_against_floor(payload)
    results.save(f"http-against-floor-w{args.workers}-c{args.concurrency}", payload)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
