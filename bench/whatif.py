"""Bench-only patches previewing proposed server changes, to measure each gain before it is made."""

# `python -m bench.whatif PATCH[,PATCH...]` runs `cds serve` with the named patches applied;
# `bench.http --what-if` starts the server this way. Nothing here ships or runs in CI.

from __future__ import annotations

import gc
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

import cds.app
from cds.api import routes
from cds.cli import main as cds_main
from cds.record import build
from cds.security import JwtVerifier, MemoryReplayCache
from cds.store import database

EMPTY: frozenset[str] = frozenset()


def gc_freeze() -> None:
    """Proposal: ``gc.freeze()`` once the app is built (cds/app.py create_app, end).

    Startup leaves ~1M long-lived objects (fhir.resources models, pydantic schemas, the
    catalogue); every full collection triggered by a big request body walks them all.
    """
    original = cds.app.create_app

    def create_app(*args: Any, **kwargs: Any) -> Any:
        app = original(*args, **kwargs)
        gc.collect()
        gc.freeze()
        return app

    cds.app.create_app = create_app


def gc_pause_parse() -> None:
    """Proposal: pause the cyclic GC around ``orjson.loads`` in cds/wire.py read_json.

    Parsed JSON holds no reference cycles, so the collector can find nothing in it, yet a 3 MiB
    body's ~150k new containers trigger full passes over every live object, other requests'
    bodies included. (This preview pauses it for the whole read, body streaming included.)
    """
    original = routes.read_json  # type: ignore[attr-defined]  # re-exported from cds.wire

    async def read_json(request: Any, limit: int) -> Any:
        enabled = gc.isenabled()
        gc.disable()
        try:
            return await original(request, limit)
        finally:
            if enabled:
                gc.enable()

    routes.read_json = read_json  # type: ignore[attr-defined]  # bench-only preview


def sqlite_one_connection() -> None:
    """Proposal: one SQLite connection, WAL with synchronous=NORMAL (cds/store/database.py).

    Eight pooled connections contend for SQLite's single write lock and sleep in its busy
    handler (up to 100 ms a try), which is where the multi-second p99 comes from.
    """

    original = database.create_engine

    def create_engine(database_url: str) -> AsyncEngine:
        url = make_url(database_url)
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return original(database_url)
        engine = create_async_engine(url, pool_size=1, max_overflow=0)

        def pragmas(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA busy_timeout = 5000")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.close()

        sa.event.listen(engine.sync_engine, "connect", pragmas)
        return engine

    database.create_engine = create_engine


def memory_replay() -> None:
    """Proposal: with one worker, keep the jti replay cache in memory (cds/app.py build_runtime)."""

    def verifier(settings: Any, _store: Any, client: Any) -> JwtVerifier:
        return JwtVerifier(settings, MemoryReplayCache(), client)

    cds.app.JwtVerifier = verifier  # type: ignore[attr-defined,assignment]  # bench-only preview


def fast_matching() -> None:
    """Proposal: cheaper value-set matching in cds/record/build.py RecordBuilder.

    ``_sets`` memoizes (system, code) -> value-set ids; ``_text_sets`` reads only the text sets
    that apply to the resource type, through one compiled pattern per type.
    """

    memo: dict[tuple[object, object], frozenset[str]] = {}
    patterns: dict[int, Mapping[str, tuple[re.Pattern[str], tuple[Any, ...]]]] = {}

    def compiled(valuesets: Any) -> Mapping[str, tuple[re.Pattern[str], tuple[Any, ...]]]:
        found = patterns.get(id(valuesets))
        if found is None:
            by_type: dict[str, list[Any]] = {}
            for vs in valuesets.text_sets:
                for resource_type in vs.text_on:
                    by_type.setdefault(resource_type, []).append(vs)
            found = {
                t: (re.compile("|".join(re.escape(w) for vs in sets for w in vs.text)), tuple(sets))
                for t, sets in by_type.items()
            }
            patterns[id(valuesets)] = found
        return found

    def text_sets(self: Any, raw: Any, resource_type: str) -> frozenset[str]:
        entry = compiled(self.valuesets).get(resource_type)
        if entry is None:
            return EMPTY
        pattern, sets = entry
        fields = build.CODE_FIELDS.get(resource_type, ())
        texts = [t for f in fields for t in build._texts(raw.get(f))]
        if pattern.search("\n".join(texts).lower()) is None:
            return EMPTY
        return frozenset(vs.id for vs in sets if any(vs.matches_text(t) for t in texts))

    def sets(self: Any, raw: Any, *fields: str) -> frozenset[str]:
        found = EMPTY
        for name in fields:
            value = raw.get(name)
            for concept in value if isinstance(value, list) else (value,):
                if not isinstance(concept, dict):
                    continue
                for coding in concept.get("coding") or ():
                    if not isinstance(coding, dict):
                        continue
                    key = (coding.get("system"), coding.get("code"))
                    ids = memo.get(key)
                    if ids is None:
                        system, code = key
                        ids = (
                            self.valuesets.ids_for(system, code)
                            if isinstance(system, str) and isinstance(code, str)
                            else EMPTY
                        )
                        if len(memo) < 100_000:
                            memo[key] = ids
                    if ids:
                        found = found | ids
        return found

    build.RecordBuilder._text_sets = text_sets  # type: ignore[method-assign]
    build.RecordBuilder._sets = sets  # type: ignore[method-assign]


def no_validation() -> None:
    """Upper bound, not a proposal as such: what full fhir.resources validation costs."""

    def validated(self: Any, raw: Any) -> bool:
        self.record.models_built += 1
        return True

    build.RecordBuilder._validated = validated  # type: ignore[method-assign]


PATCHES: Mapping[str, Callable[[], None]] = {
    "gc-freeze": gc_freeze,
    "gc-pause-parse": gc_pause_parse,
    "sqlite-one-connection": sqlite_one_connection,
    "memory-replay": memory_replay,
    "fast-matching": fast_matching,
    "no-validation": no_validation,
}


def apply(names: str) -> list[str]:
    """Apply the comma-separated patches; returns their names."""
    chosen = [n for n in names.split(",") if n]
    unknown = [n for n in chosen if n not in PATCHES]
    if unknown:
        raise SystemExit(f"unknown what-if patch(es): {', '.join(unknown)}; know {sorted(PATCHES)}")
    for name in chosen:
        PATCHES[name]()
    return chosen


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    apply(args[0] if args else "")
    return cds_main(["serve"])


if __name__ == "__main__":
    raise SystemExit(main())
