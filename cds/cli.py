"""The ``cds`` command: serve, evaluate a request file, check rules, migrate, report."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from cds.errors import ConfigError
    from cds.logs import configure_logging
    from cds.security import check_replay_cache
    from cds.serving import uvicorn_options
    from cds.settings import Settings

    settings = Settings()
    configure_logging(settings.log_level)
    try:
        # Here, before the workers start: each would refuse, and uvicorn would restart them.
        check_replay_cache(settings)
    except ConfigError as exc:
        sys.stderr.write("\n".join(exc.problems) + "\n")
        return 2
    uvicorn.run(
        "cds.app:create_app",
        factory=True,
        host=args.host or settings.host,
        port=args.port or settings.port,
        **uvicorn_options(settings),
    )
    return 0


def _demo(args: argparse.Namespace) -> int:
    from cds.demo_server import serve_demo

    serve_demo(args.host, args.port)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from cds.catalogue import load_catalogue
    from cds.clock import clock_for
    from cds.errors import CdsError
    from cds.invocation import evaluate_offline
    from cds.settings import Settings
    from cds.wire import operation_outcome

    settings = Settings()
    catalogue = load_catalogue(settings.rules_dir, settings.cards_dir, settings.topic_system)
    body = orjson.loads(Path(args.file).read_bytes())
    fixed = args.now or settings.fixed_now
    if isinstance(body, dict) and isinstance(body.get("request"), dict):
        # A golden case file: its request, evaluated as of its own "now" unless --now is given.
        fixed = fixed or body.get("now")
        body = body["request"]
    now = clock_for(fixed)()
    try:
        response = asyncio.run(evaluate_offline(catalogue, body, now))
    except CdsError as exc:
        sys.stdout.write(orjson.dumps(operation_outcome(exc), option=orjson.OPT_INDENT_2).decode())
        sys.stdout.write("\n")
        return 1
    sys.stdout.write(orjson.dumps(response, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def _rules_check(_: argparse.Namespace) -> int:
    from cds.catalogue import check
    from cds.settings import Settings

    settings = Settings()
    problems = check(settings.rules_dir, settings.cards_dir, settings.topic_system)
    for problem in problems:
        sys.stderr.write(problem + "\n")
    if not problems:
        sys.stdout.write("rules, cards and value sets are valid\n")
    return 1 if problems else 0


def _unreachable(exc: Exception) -> int:
    """Exit status 3 and one line for an unreachable database; anything else is re-raised."""
    from cds.errors import StoreUnavailable
    from cds.store.outage import unreachable_cause

    # The store has already told the outage from a bug; its cause is the driver's error.
    found = exc.__cause__ if isinstance(exc, StoreUnavailable) else exc
    cause = unreachable_cause(found) if found is not None else None
    if cause is None:
        raise exc
    # The cause only: a driver's message may quote the URL, password included.
    sys.stderr.write(f"the database cannot be reached ({cause}); try again when it is up\n")
    return 3


def _db_upgrade(_: argparse.Namespace) -> int:
    from cds.migrations import upgrade_sync
    from cds.settings import Settings

    try:
        upgrade_sync(Settings())
    except Exception as exc:  # _unreachable re-raises all but an outage
        return _unreachable(exc)
    sys.stdout.write("database schema is up to date\n")
    return 0


def _report(args: argparse.Namespace) -> int:
    from cds.report import render_json, render_table
    from cds.settings import Settings
    from cds.store import Store

    settings = Settings()
    until = args.until or datetime.now(UTC)
    since = args.since or until - timedelta(days=30)

    async def fetch() -> str:
        store = Store(settings)
        try:
            report = await store.rule_report(args.service, since, until)
        finally:
            await store.close()
        return render_json(report) if args.json else render_table(report)

    try:
        text = asyncio.run(fetch())
    except Exception as exc:  # _unreachable re-raises all but an outage
        return _unreachable(exc)
    sys.stdout.write(text + "\n")
    return 0


def _date(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cds", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the CDS Hooks API (CDS_HOST, CDS_PORT)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(handler=_serve)

    demo = commands.add_parser(
        "demo",
        help="serve the playground and a demo FHIR server with synthetic patients "
        "(CDS_HOST, CDS_PORT)",
    )
    demo.add_argument("--host")
    demo.add_argument("--port", type=int)
    demo.set_defaults(handler=_demo)

    evaluate = commands.add_parser(
        "evaluate", help="print the response to a request JSON file (or a golden case file)"
    )
    evaluate.add_argument("file")
    evaluate.add_argument("--now", help="evaluation instant (ISO 8601); default: now")
    evaluate.set_defaults(handler=_evaluate)

    rules = commands.add_parser("rules", help="rule catalogue tools")
    rules_commands = rules.add_subparsers(dest="rules_command", required=True)
    rules_commands.add_parser("check", help="validate rules, cards and value sets").set_defaults(
        handler=_rules_check
    )

    db = commands.add_parser("db", help="database tools")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("upgrade", help="apply migrations").set_defaults(handler=_db_upgrade)

    report = commands.add_parser("report", help="per-rule feedback report")
    report.add_argument("--service")
    report.add_argument("--since", type=_date)
    report.add_argument("--until", type=_date)
    report.add_argument("--json", action="store_true")
    report.set_defaults(handler=_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
