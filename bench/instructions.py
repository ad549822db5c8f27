"""Instructions and cache misses per call, counted by valgrind: the service against the floor.

``bench.http --against-floor`` judges issue #18 by CPU time, and on a shared machine the
floor's own call moves twofold within minutes. Instructions do not move: the same code on the
same bytes executes the same instructions on any load. This counts them for both apps, built
and called as ``bench.asgi`` builds and calls them, under ``valgrind --tool=cachegrind`` with
its cache simulation, so each row also shows the L1 instruction and data cache misses: where
CPU time and instructions part. A service call runs far more distinct Python than the floor's
parse and signature check; its misses, not its instructions, set most of the gap in time.

Each (app, chart) runs in its own process, twice: warm-up calls, then ``LOW`` calls in one run
and ``HIGH`` in the other, with the same tokens signed beforehand by this process. Per call is
the difference over ``HIGH - LOW``: start-up, warm-up and the last audit flush cancel out.
Runs are independent, so ``--jobs`` of them run at once (counts do not depend on it).

    .venv/bin/python -m bench.instructions [--shapes small typical] [--calls 100 400] [--jobs 2]
    .venv/bin/python -m bench.instructions --by-library [--shapes small typical]

``--by-library`` runs the same pairs under callgrind instead of cachegrind's cache simulation
and reports each app's instructions per call by the library that executed them: CPython's
interpreter, orjson, msgspec, OpenSSL, SQLite and the others (``bench/callgrind.py``).

Needs valgrind (``apt-get install valgrind``). Slow: each app starts under valgrind in about a
minute, and runs some 50 times slower; ``small`` and ``typical`` at the default counts take a
few minutes on two cores, all four charts about 25.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson

from bench import callgrind, results
from bench.asgi import AUDIENCE, Lifespan, _environ, _environment, _round
from bench.http import SHAPES, TARGET_RATIO, Signer, shape_body

APPS: Final = ("floor", "service")
WARMUP_CALLS: Final = 30
START_SECONDS: Final = 600.0  # an app starting under valgrind: about a minute
# Heavier charts are counted over fewer calls (each costs more, and so does valgrind's run).
WEIGHT: Final = {"small": 1.0, "typical": 0.5, "heavy": 0.05, "heavy-unfiltered": 0.04}
# cachegrind's events, and the sums this reports of them.
COUNTED: Final = {
    "instructions": ("Ir",),
    "i1_misses": ("I1mr",),
    "d1_misses": ("D1mr", "D1mw"),
}
# The simulated caches, fixed: left to itself cachegrind copies the host's, so two machines
# would count different misses for the same run. 32 KiB, 8-way, 64-byte lines is the L1 of
# most x86 cores of the last decade.
CACHES: Final = ("--I1=32768,8,64", "--D1=32768,8,64", "--LL=33554432,16,64")
# Not counted: last-level misses, which neither app's call makes more than a few of in a
# 32 MiB last level.


@dataclass(frozen=True, slots=True)
class Run:
    """One process under cachegrind: an app, a chart, how many calls it counts."""

    app: str
    shape: str
    calls: int


@dataclass(frozen=True, slots=True)
class Counter:
    """How a run is counted: the valgrind command put before the program, given the file it
    writes, and what is read from that file (sums by name)."""

    command: Callable[[Path], list[str]]
    read: Callable[[str], dict[str, int]]


def summary(cachegrind_out: str) -> dict[str, int]:
    """The program's totals by event, from a cachegrind output file's ``events:`` and
    ``summary:`` lines."""
    events: list[str] | None = None
    totals: list[str] | None = None
    for line in cachegrind_out.splitlines():
        if line.startswith("events:"):
            events = line.split()[1:]
        elif line.startswith("summary:"):
            totals = line.split()[1:]
    if events is None or totals is None or len(events) != len(totals):
        raise ValueError("not a cachegrind output file: no events and summary lines that agree")
    return {event: int(total) for event, total in zip(events, totals, strict=True)}


def per_call(low: Mapping[str, int], high: Mapping[str, int], calls: int) -> dict[str, int]:
    """What one call costs of each counted sum, from a run of ``calls`` more than the other."""
    counted = {name: sum(high[e] - low[e] for e in events) for name, events in COUNTED.items()}
    _refuse_a_pair_that_counted_no_more(
        calls, [name for name, difference in counted.items() if difference <= 0]
    )
    return {name: round(difference / calls) for name, difference in counted.items()}


def _refuse_a_pair_that_counted_no_more(calls: int, fewer: Sequence[str]) -> None:
    """Refuse a pair whose runs do not differ by ``calls`` > 0, or whose longer run counted no
    more of the sums ``fewer``."""
    if calls <= 0:
        raise ValueError("the high run must make more calls than the low one")
    if fewer:
        # Calls cost something; a run with more of them that counts less did other work than
        # its pair, and a ratio of it would be noise.
        raise ValueError(
            f"the run with {calls} more calls counted no more {', '.join(fewer)}: the two runs "
            "did different work besides the calls; count more calls"
        )


def cachegrind(out: Path) -> list[str]:
    """The start of a command that runs a program under cachegrind, its totals to ``out``."""
    return [
        "valgrind",
        "--tool=cachegrind",
        "--cache-sim=yes",
        *CACHES,
        f"--cachegrind-out-file={out}",
    ]


CACHE_SIMULATION: Final = Counter(cachegrind, summary)
LIBRARIES: Final = Counter(callgrind.command, callgrind.instructions_by_object)


def count(
    run: Run, tokens: int, signer: Signer, keys: Path, workdir: Path, *, counter: Counter
) -> dict[str, int]:
    """``run``'s totals under ``counter`` (a child process of this module). The service refuses
    a token issued before it started (no replay can be ruled out), so the child says when it
    has started and waits on its stdin; ``tokens`` tokens are signed then, here, outside the
    count, and both runs of a pair read as many."""
    workdir.mkdir(parents=True)
    ready, out = workdir / "ready", workdir / "valgrind.out"
    command = [
        *counter.command(out),
        sys.executable,
        "-m",
        "bench.instructions",
        "--child",
        run.app,
        run.shape,
        str(run.calls),
        str(ready),
        str(keys),
    ]
    # Hash randomization would change dict and set layouts, and so the count, run to run. A
    # run that compiled a module and wrote its .pyc left the other run of its pair (they run
    # at once) the cheaper start: on CI, a negative count. Neither writes now.
    environment = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
    with (workdir / "output.txt").open("wb") as output:
        child = subprocess.Popen(
            command, env=environment, stdin=subprocess.PIPE, stdout=output, stderr=output
        )
        assert child.stdin is not None
        deadline = time.monotonic() + START_SECONDS
        while not ready.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        running = child.poll() is None
        late = running and not ready.exists()
        if late:
            child.kill()
        elif running:
            child.stdin.write(orjson.dumps(signer.tokens(AUDIENCE, tokens)))
        child.stdin.close()
        code = child.wait()
    if code != 0:
        why = f"did not start within {START_SECONDS:.0f} s" if late else "failed"
        tail = (workdir / "output.txt").read_bytes().decode(errors="replace")[-3000:]
        raise RuntimeError(f"{run.app} {run.shape} x{run.calls} {why} ({code}):\n{tail}")
    return counter.read(out.read_text())


async def _child(app_name: str, shape: str, calls: int, ready: Path, keys: Path) -> None:
    """Start, say so, read the tokens, warm up, then make ``calls`` calls: one counted run."""
    with tempfile.TemporaryDirectory(prefix="bench-instructions-") as tmp:
        workdir = Path(tmp)
        with _environ(_environment(workdir, keys)):
            if app_name == "floor":
                from bench.floor import create_app as create_floor  # noqa: PLC0415

                app = create_floor()
                flush = None
            else:
                from cds.app import create_app  # noqa: PLC0415

                app = create_app()
                flush = app.state.parts.audit.flush
        life = Lifespan(app)
        await life.start()
        body = shape_body(shape)
        tokens = _tokens_once_started(ready)
        try:
            # bench.asgi's rounds (each refuses an answer other than 200, then flushes): its
            # timing and the last answer's cards cost alike in both runs of a pair.
            await _round(app, body, tokens[:WARMUP_CALLS], flush)
            # When the collector next sweeps every object depends on allocations the event
            # loop makes as time passes, so one run of a pair could hold a full collection
            # that the other does not. One here, in both, leaves the next too far off for the
            # counted calls to reach.
            gc.collect()
            await _round(app, body, tokens[WARMUP_CALLS:][:calls], flush)
        finally:
            await life.stop()


def _tokens_once_started(ready: Path) -> list[str]:
    """Say the app has started, then wait for the tokens: blocking on purpose, so that nothing
    runs, and nothing is counted, while they are signed."""
    ready.touch()
    tokens: list[str] = orjson.loads(sys.stdin.buffer.read())
    return tokens


def _count_pairs(
    shapes: Sequence[str], low: int, high: int, jobs: int, counter: Counter
) -> tuple[list[tuple[Run, Run]], dict[Run, dict[str, int]]]:
    """Each app's pair of runs for each chart (fewer calls, more calls) and their totals."""
    signer = Signer("RS384")
    with tempfile.TemporaryDirectory(prefix="bench-instructions-") as tmp:
        root = Path(tmp)
        keys = root / "jwks.json"
        keys.write_bytes(orjson.dumps(signer.jwks()))
        runs: list[tuple[Run, Run]] = []
        for shape in shapes:
            weight = WEIGHT.get(shape, 1.0)
            lower = round(low * weight)
            higher = max(lower + 1, round(high * weight))
            runs += [(Run(app, shape, lower), Run(app, shape, higher)) for app in APPS]
        every = [run for pair in runs for run in pair]
        # Both runs of a pair read as many tokens, so reading them cancels out too.
        signed = {run: WARMUP_CALLS + pair[1].calls for pair in runs for run in pair}
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = [
                pool.submit(count, run, signed[run], signer, keys, root / str(n), counter=counter)
                for n, run in enumerate(every)
            ]
            counted = [future.result() for future in futures]
    return runs, dict(zip(every, counted, strict=True))


def _rows(
    runs: Sequence[tuple[Run, Run]],
    totals: Mapping[Run, Mapping[str, int]],
    per_pair: Callable[[Mapping[str, int], Mapping[str, int], int], dict[str, Any]],
) -> dict[str, dict[str, Any]]:
    """Each chart's row: for each app, ``per_pair`` of its two runs' totals and the difference
    in calls, with the calls each run made."""
    rows: dict[str, dict[str, Any]] = {}
    for fewer, more in runs:
        counted = per_pair(totals[fewer], totals[more], more.calls - fewer.calls)
        rows.setdefault(fewer.shape, {})[fewer.app] = {
            **counted,
            "calls": [fewer.calls, more.calls],
        }
    return rows


def measure(shapes: Sequence[str], low: int, high: int, jobs: int) -> dict[str, Any]:
    """Per call, for each chart: each app's counts and the service's ratio to the floor."""
    runs, totals = _count_pairs(shapes, low, high, jobs, CACHE_SIMULATION)
    rows = _rows(runs, totals, per_call)
    for row in rows.values():
        # per_call refused any count at or below zero, so every floor figure is a divisor.
        row["ratio"] = {
            name: round(row["service"][name] / row["floor"][name], 2) for name in COUNTED
        }
    return {"benchmark": "instructions-against-floor", "shapes": rows}


def per_call_by_library(
    low: Mapping[str, int], high: Mapping[str, int], calls: int
) -> dict[str, int]:
    """What one call executes in each library, from a run of ``calls`` more than the other;
    libraries it executes nothing in are left out. A library may come out below zero by a
    little (a pair's start-ups differ by a few thousand instructions), the whole never."""
    _refuse_a_pair_that_counted_no_more(
        calls, ["instructions"] if sum(high.values()) <= sum(low.values()) else []
    )
    each = {name: round((high.get(name, 0) - low.get(name, 0)) / calls) for name in {*low, *high}}
    return dict(
        sorted(((name, n) for name, n in each.items() if n), key=lambda item: (-item[1], item[0]))
    )


def measure_by_library(shapes: Sequence[str], low: int, high: int, jobs: int) -> dict[str, Any]:
    """Per call, for each chart: each app's instructions by the library that executed them."""
    runs, totals = _count_pairs(shapes, low, high, jobs, LIBRARIES)

    def libraries(low: Mapping[str, int], high: Mapping[str, int], calls: int) -> dict[str, Any]:
        return {"libraries": per_call_by_library(low, high, calls)}

    return {"benchmark": "instructions-by-library", "shapes": _rows(runs, totals, libraries)}


def report(payload: Mapping[str, Any]) -> str:
    rows = []
    for shape, row in payload["shapes"].items():
        floor, service, ratio = row["floor"], row["service"], row["ratio"]
        rows.append(
            [
                shape,
                f"{floor['instructions'] / 1e6:.2f} M / {service['instructions'] / 1e6:.2f} M",
                f"{ratio['instructions']}x",
                f"{TARGET_RATIO.get(shape, '-')}x",
                f"{floor['i1_misses'] / 1e3:.1f} k / {service['i1_misses'] / 1e3:.1f} k",
                f"{ratio['i1_misses']}x",
                f"{floor['d1_misses'] / 1e3:.1f} k / {service['d1_misses'] / 1e3:.1f} k",
                f"{ratio['d1_misses']}x",
            ]
        )
    headers = (
        "shape",
        "instructions floor / service",
        "ratio",
        "target (CPU)",
        "I1 misses",
        "ratio",
        "D1 misses",
        "ratio",
    )
    return results.table(headers, rows)


def report_by_library(payload: Mapping[str, Any], top: int = 8) -> str:
    """Each chart's libraries in thousands of instructions per call: the ``top`` largest of
    each app (those that round to a thousand or more), the service's first, the rest in one
    row, and the totals."""
    tables = []
    for shape, row in payload["shapes"].items():
        apps = (row["floor"]["libraries"], row["service"]["libraries"])
        named: list[str] = []
        for libraries in reversed(apps):
            largest = sorted(libraries.items(), key=lambda item: -item[1])[:top]
            named += [name for name, count in largest if count >= 500]
        named = list(dict.fromkeys(named))
        rows: list[list[object]] = [
            [name, *(f"{libraries.get(name, 0) / 1e3:,.0f}" for libraries in apps)]
            for name in named
        ]
        rest = [sum(n for k, n in libraries.items() if k not in named) for libraries in apps]
        rows.append(["everything else", *(f"{n / 1e3:,.0f}" for n in rest)])
        rows.append(["total", *(f"{sum(libraries.values()) / 1e3:,.0f}" for libraries in apps)])
        headers = (f"{shape}: library", "floor, k instructions a call", "service")
        tables.append(results.table(headers, rows))
    return "\n\n".join(tables)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["small", "typical"], choices=list(SHAPES))
    parser.add_argument(
        "--calls",
        nargs=2,
        type=int,
        default=[100, 400],
        metavar=("LOW", "HIGH"),
        help="calls in the two runs of a small chart (heavier charts: fewer, see WEIGHT)",
    )
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--by-library",
        action="store_true",
        help="count under callgrind, each app's instructions by the library that ran them",
    )
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        app_name, shape, calls, ready, keys = args.child
        asyncio.run(_child(app_name, shape, int(calls), Path(ready), Path(keys)))
        return 0
    if shutil.which("valgrind") is None:
        print("bench.instructions needs valgrind: apt-get install valgrind", file=sys.stderr)
        return 2
    low, high = args.calls
    if not 0 <= low < high:
        parser.error("--calls LOW HIGH needs 0 <= LOW < HIGH")
    run, show = (measure_by_library, report_by_library) if args.by_library else (measure, report)
    try:
        payload = run(args.shapes, low, high, args.jobs)
    except ValueError as error:
        print(f"bench.instructions: {error}", file=sys.stderr)
        return 1
    print(show(payload))
    payload["machine"] = results.machine()
    print(f"results in {results.write(payload['benchmark'], payload, results.RESULTS_DIR)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
