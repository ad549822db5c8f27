"""CPU per call, paired round by round: two apps in two processes, taking turns.

``bench.asgi`` and ``bench.http`` measure each app over a few long stretches. On this 2-core
VM the same app's CPU per call moves by a third between stretches a minute apart (the floor's
typical call alone: 1.3-5.2 ms on 2026-12-08), so a change of 10 % is lost in them. Here each
app lives in its own process, started once and warmed, and the two take turns on short rounds
(a quarter to half a second each), swapping who goes first every pair. Each pair's ratio
compares two rounds a second apart, so what the machine does over minutes cancels out; the
median over many pairs, with the middle half of the ratios and how many pairs went each way,
says how far apart the two apps are and how sure that is.

A side is ``floor`` (``bench/floor.py``), ``service`` (this tree's ``cds.app``, uncommitted
edits included) or ``service@REF``: the service at a commit of this repository, checked out
in a temporary git worktree and run with this environment's packages. Both are built and
called as ``bench.asgi`` builds and calls them (RS384 tokens, SQLite, the audit writer flushed
inside each round), with tokens signed here, between rounds, outside what is counted.

    .venv/bin/python -m bench.paired [--pairs 60] [--shapes small typical]
    .venv/bin/python -m bench.paired --sides service@main service   # this tree against main
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

import orjson

from bench import results

ROOT: Final = Path(__file__).resolve().parents[1]
APPS: Final = ("floor", "service")
PAIRS: Final = 60
# Calls per round for a small chart; heavier charts get fewer (bench.asgi's WEIGHT).
CALLS: Final = 200
# Rounds before the counted ones, per side and chart: 30 calls left the first counted rounds
# of a side that had just started a third dearer than the rest.
WARMUP_CALLS: Final = 100


@dataclass(frozen=True)
class Side:
    """One app to measure: which, and from which commit (None: this tree as it is)."""

    app: str
    ref: str | None = None

    def __str__(self) -> str:
        return self.app if self.ref is None else f"{self.app}@{self.ref}"


def side(text: str) -> Side:
    """``floor``, ``service`` or ``service@REF``, read from the command line."""
    app, at, ref = text.partition("@")
    if app not in APPS or (at and (app != "service" or not ref)):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a side: floor, service or service@REF (a git commit)"
        )
    return Side(app, ref if at else None)


def paired_summary(first: Sequence[float], second: Sequence[float]) -> dict[str, Any]:
    """Each side's median ms per call, and the pairs' ratios (second / first): their median,
    the middle half of them, and in how many pairs the second side cost less."""
    if not first or len(first) != len(second):
        raise ValueError("paired_summary needs as many rounds of each side, at least one")
    ratios = [b / a for a, b in zip(first, second, strict=True)]
    q1, _, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
    return {
        "pairs": len(ratios),
        "first_ms": round(statistics.median(first), 4),
        "second_ms": round(statistics.median(second), 4),
        "ratio": round(statistics.median(ratios), 4),
        "ratio_middle_half": [round(q1, 4), round(q3, 4)],
        "second_cheaper": sum(ratio < 1 for ratio in ratios),
    }


class Worker:
    """One side's app in a process of its own, answering a round of calls at a time.

    The process is this file run with the side's tree first on its path, so a ``service@REF``
    side imports that commit's ``cds`` (and its ``bench.asgi``, which builds and calls it)."""

    def __init__(
        self, chosen: Side, tree: Path, keys: Path, log: Path, commit: str | None = None
    ) -> None:
        self.side = chosen
        self.log = log
        self.cards = 0
        self.commit = commit
        # -P: the script's own folder (bench/, whose http.py would shadow the standard
        # library's) is not put on the path; the side's tree is.
        command = [sys.executable, "-P", str(Path(__file__).resolve()), "--worker"]
        with log.open("wb") as errors:
            self._process = subprocess.Popen(
                [*command, chosen.app, str(keys)],
                cwd=tree,
                env={**os.environ, "PYTHONPATH": str(tree)},
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
            )
        try:
            # The folder its cds was imported from, as the process found it.
            self.source = Path(self._ask(None)["cds"])
        except BaseException:
            self.stop()
            raise

    def round(self, shape: str, tokens: list[str], *, collect: bool = False) -> float:
        """One call per token with ``shape``'s body: this side's CPU ms per call."""
        answer = self._ask({"shape": shape, "tokens": tokens, "collect": collect})
        self.cards = int(answer["cards"])
        return float(answer["ms"])

    def _ask(self, request: Mapping[str, Any] | None) -> dict[str, Any]:
        stdin, stdout = self._process.stdin, self._process.stdout
        assert stdin is not None  # both are pipes
        assert stdout is not None
        try:
            if request is not None:
                stdin.write(orjson.dumps(request) + b"\n")
                stdin.flush()
            line = stdout.readline()
        except BrokenPipeError:
            line = b""
        if not line:
            tail = self.log.read_bytes().decode(errors="replace")[-3000:]
            raise RuntimeError(f"{self.side} stopped ({self._process.wait()}):\n{tail}")
        answer: dict[str, Any] = orjson.loads(line)
        return answer

    def stop(self) -> None:
        """End of input: the worker shuts its app down and exits."""
        if self._process.stdin is not None:
            with suppress(BrokenPipeError):  # a worker that died leaves a request unsent
                self._process.stdin.close()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()


@contextmanager
def _tree(chosen: Side, where: Path) -> Iterator[tuple[Path, str | None]]:
    """The tree a side runs from and the commit it holds: this tree (None: it may hold edits
    not committed), or the side's commit checked out at ``where``."""
    if chosen.ref is None:
        yield ROOT, None
        return
    added = subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(where), chosen.ref],
        capture_output=True,
        text=True,
        check=False,
    )
    if added.returncode != 0:
        raise ValueError(f"cannot check out {chosen.ref!r}: {added.stderr.strip()}")
    commit = subprocess.run(
        ["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        yield where, commit
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(where)],
            capture_output=True,
            check=False,
        )


@contextmanager
def running(chosen: Side, workdir: Path, keys: Path) -> Iterator[Worker]:
    """``chosen``'s worker, started from its tree (checked out in ``workdir`` for a commit),
    and stopped."""
    with _tree(chosen, workdir / "tree") as (tree, commit):
        worker = Worker(chosen, tree, keys, workdir / "worker.log", commit)
        try:
            yield worker
        finally:
            worker.stop()


def measure(
    sides: Sequence[Side], shapes: Sequence[str], pairs: int, calls: int = CALLS
) -> dict[str, Any]:
    """``pairs`` pairs of rounds of each chart, the two sides taking turns."""
    # bench.asgi imports the service's app: only when measuring, not for --help.
    from bench.asgi import AUDIENCE, WEIGHT  # noqa: PLC0415
    from bench.http import Signer  # noqa: PLC0415

    signer = Signer("RS384")
    counts = {shape: max(5, round(calls * WEIGHT.get(shape, 1.0))) for shape in shapes}
    rounds: dict[str, list[tuple[float, float]]] = {shape: [] for shape in shapes}
    with tempfile.TemporaryDirectory(prefix="bench-paired-") as tmp, ExitStack() as stack:
        keys = Path(tmp) / "jwks.json"
        keys.write_bytes(orjson.dumps(signer.jwks()))
        workers = []
        for n, chosen in enumerate(sides):
            (Path(tmp) / str(n)).mkdir()
            workers.append(stack.enter_context(running(chosen, Path(tmp) / str(n), keys)))
        for shape in shapes:
            for worker in workers:
                worker.round(shape, signer.tokens(AUDIENCE, WARMUP_CALLS), collect=True)
        for n in range(pairs):
            for shape in shapes:
                spent: dict[int, float] = {}
                for i in (0, 1) if n % 2 == 0 else (1, 0):
                    tokens = signer.tokens(AUDIENCE, counts[shape])
                    spent[i] = workers[i].round(shape, tokens)
                rounds[shape].append((spent[0], spent[1]))
        cards = {str(worker.side): worker.cards for worker in workers}
        commits = {str(w.side): w.commit for w in workers if w.commit is not None}
    return {
        "benchmark": "paired",
        "sides": [str(chosen) for chosen in sides],
        "commits": commits,
        "calls_per_round": counts,
        "cards": cards,
        "shapes": {
            shape: {
                **paired_summary([a for a, _ in done], [b for _, b in done]),
                "rounds": [[round(a, 4), round(b, 4)] for a, b in done],
            }
            for shape, done in rounds.items()
        },
    }


def report(payload: Mapping[str, Any]) -> str:
    first, second = payload["sides"]
    rows = [
        [
            shape,
            f"{row['first_ms']:.3f}",
            f"{row['second_ms']:.3f}",
            f"{row['ratio']:.3f}x",
            "{:.3f}-{:.3f}x".format(*row["ratio_middle_half"]),
            f"{row['second_cheaper']}/{row['pairs']}",
        ]
        for shape, row in payload["shapes"].items()
    ]
    headers = ("chart", "A ms", "B ms", "B/A", "middle half", "B cheaper")
    title = f"paired rounds: {first} (A) against {second} (B), CPU ms per call"
    return f"{title}\n{results.table(headers, rows)}"


async def _answer_rounds(app_name: str, keys: Path, answers: IO[bytes]) -> None:
    """The worker: build ``app_name``, say so, then one round per request on stdin."""
    from bench.asgi import Lifespan, _environ, _environment, _round  # noqa: PLC0415
    from bench.http import shape_body  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="bench-paired-") as tmp:
        with _environ(_environment(Path(tmp), keys)):
            if app_name == "floor":
                from bench.floor import create_app as create_floor  # noqa: PLC0415

                app, flush = create_floor(), None
            else:
                from cds.app import create_app  # noqa: PLC0415

                app = create_app()
                flush = app.state.parts.audit.flush
        life = Lifespan(app)
        await life.start()
        bodies: dict[str, bytes] = {}
        try:
            cds = Path(sys.modules["cds"].__file__ or "").parent
            answers.write(orjson.dumps({"cds": str(cds)}))
            answers.write(b"\n")
            answers.flush()
            # Blocking reads on purpose: nothing runs between rounds, and each round ends with
            # the audit writer flushed.
            for line in sys.stdin.buffer:
                request = orjson.loads(line)
                shape, tokens = request["shape"], request["tokens"]
                if shape not in bodies:
                    bodies[shape] = shape_body(shape)
                if request["collect"]:
                    gc.collect()
                spent, cards = await _round(app, bodies[shape], tokens, flush)
                answers.write(orjson.dumps({"ms": spent / len(tokens) * 1000, "cards": cards}))
                answers.write(b"\n")
                answers.flush()
        finally:
            await life.stop()


def _worker(app_name: str, keys: Path) -> int:
    # The answers keep stdout to themselves: anything else printed goes to stderr (the log).
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    asyncio.run(_answer_rounds(app_name, keys, answers))
    return 0


def main(argv: list[str] | None = None) -> int:
    from bench.http import SHAPES  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sides",
        nargs=2,
        type=side,
        default=[Side("floor"), Side("service")],
        metavar=("A", "B"),
        help="floor, service (this tree) or service@REF; ratios are B/A",
    )
    parser.add_argument("--shapes", nargs="+", default=["small", "typical"], choices=list(SHAPES))
    parser.add_argument("--pairs", type=int, default=PAIRS)
    parser.add_argument("--calls", type=int, default=CALLS, help="calls per round (small)")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        app_name, keys = args.worker
        return _worker(app_name, Path(keys))
    if args.pairs < 1 or args.calls < 1:
        parser.error("--pairs and --calls need at least 1")
    machine = results.machine()
    try:
        payload = measure(args.sides, args.shapes, args.pairs, args.calls)
    except ValueError as error:
        print(f"bench.paired: {error}", file=sys.stderr)
        return 1
    machine["load_average_at_end"] = results.load_average()
    payload["machine"] = machine
    print(report(payload))
    results.save("paired", payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
