"""The ``cds`` command: serve, evaluate a request file, check rules, migrate, report.

Every command, option and default is described in its ``--help``; a mistake ends in one line
on stderr and a non-zero exit status, never a traceback (``--traceback`` shows one).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import orjson


def _serve(args: argparse.Namespace) -> int:
    from cds.logs import configure_logging
    from cds.serving import serve
    from cds.settings import Settings
    from cds.startup import preflight

    settings = Settings()
    configure_logging(settings.log_level)
    preflight(settings)
    serve(settings, host=args.host or settings.host, port=args.port or settings.port)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from cds.demo_server import serve_demo

    serve_demo(args.host, args.port)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from cds.catalogue import load_catalogue
    from cds.clock import clock_for
    from cds.demo import demo_instant
    from cds.errors import CdsError, operation_outcome
    from cds.invocation import evaluate_offline
    from cds.settings import Settings

    settings = Settings()
    catalogue = load_catalogue(
        settings.rules_dir, settings.cards_dir, settings.topic_system, site=settings.site_config
    )
    body = _request_file(Path(args.file))
    fixed = args.now or settings.fixed_now
    if isinstance(body, dict) and isinstance(body.get("request"), dict):
        # A golden case file: its request, evaluated as of its own "now" unless --now is given.
        fixed = fixed or body.get("now")
        body = body["request"]
    now = clock_for(fixed)()
    # On stderr, so the response on stdout stays valid JSON for a pipe.
    sys.stderr.write(f"cds evaluate: evaluated as of {now.isoformat()}\n")
    demo_now = None if fixed else demo_instant(body, settings.demo_dir)
    if demo_now is not None:
        sys.stderr.write(
            f"cds evaluate: this is a demo request, whose patients are dated for {demo_now}; "
            f"add --now {demo_now} to see the cards the demo shows\n"
        )
    try:
        response = asyncio.run(evaluate_offline(catalogue, body, now, settings.public_base_url))
    except CdsError as exc:
        sys.stdout.write(orjson.dumps(operation_outcome(exc), option=orjson.OPT_INDENT_2).decode())
        sys.stdout.write("\n")
        return 1
    sys.stdout.write(orjson.dumps(response, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def _request_file(path: Path) -> object:
    from cds.errors import ConfigError

    try:
        return orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"]) from None
    except IsADirectoryError:
        raise ConfigError([f"{path}: is a directory, not a request JSON file"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot be read ({exc.strerror})"]) from None
    except orjson.JSONDecodeError as exc:
        # orjson's message gives line and column; the content itself may be a patient's chart.
        raise ConfigError([f"{path}: not valid JSON: {exc.args[0]}"]) from None


def _rules_check(args: argparse.Namespace) -> int:
    from cds.catalogue import load_catalogue
    from cds.clock import clock_for
    from cds.errors import ConfigError
    from cds.settings import Settings
    from cds.site_settings import effective_values
    from cds.yaml_files import locate

    settings = Settings()
    site = args.site or settings.site_config
    try:
        catalogue = load_catalogue(
            settings.rules_dir, settings.cards_dir, settings.topic_system, site=site
        )
    except ConfigError as exc:
        for problem in exc.problems:
            sys.stderr.write(problem + "\n")
        return 1
    # Past its review date a rule still runs: a warning, not a problem (exit status 0).
    today = clock_for(settings.fixed_now)().date()
    overdue = catalogue.governance.overdue_warnings(today)
    for warning in locate(overdue, (settings.rules_dir, settings.cards_dir)):
        sys.stderr.write(f"warning: {warning}\n")
    sys.stdout.write("rules, cards and value sets are valid\n")
    if site is not None:
        from cds.site_settings.reach import unreachable_local_codes

        sys.stdout.write("site settings are valid\n")
        for line in effective_values(catalogue.site, catalogue.rules, catalogue.governance, today):
            sys.stdout.write(line + "\n")
        services = catalogue.services.values()
        for warning in unreachable_local_codes(catalogue.site.document, services, catalogue.rules):
            sys.stderr.write(f"warning: {catalogue.site.label}: {warning}\n")
    return 0


def _rules_schema(args: argparse.Namespace) -> int:
    from cds.json_schemas import write_schemas

    for path in write_schemas(args.directory):
        sys.stdout.write(f"wrote {path}\n")
    return 0


def _rules_export(args: argparse.Namespace) -> int:
    from cds.catalogue import load_catalogue
    from cds.settings import Settings
    from cds.transparency.value_set_resources import export_value_sets

    settings = Settings()
    catalogue = load_catalogue(settings.rules_dir, settings.cards_dir, settings.topic_system)
    written = export_value_sets(
        catalogue.valuesets, args.fhir, settings.public_base_url, datetime.now(UTC)
    )
    sys.stdout.write(f"wrote {len(written)} FHIR ValueSet files to {args.fhir}\n")
    return 0


def _db_upgrade(_: argparse.Namespace) -> int:
    from cds.settings import Settings
    from cds.startup import migrate_or_explain

    asyncio.run(migrate_or_explain(Settings()))
    sys.stdout.write("database schema is up to date\n")
    return 0


def _report(args: argparse.Namespace) -> int:
    from cds.report import check_weekly, render_json, render_table, report_window
    from cds.settings import Settings
    from cds.startup import database_explained
    from cds.store import RuleReport, Store

    settings = Settings()
    since, until = report_window(args.since, args.until, datetime.now(UTC))
    if args.by == "week":
        try:
            check_weekly(since, until)
        except ValueError as exc:
            sys.stderr.write(f"cds report: error: {exc}\n")
            return 2

    async def fetch() -> str:
        store = Store(settings)
        report: RuleReport
        try:
            with _quiet("cds.store"), database_explained(settings):
                if args.by == "week":
                    report = await store.weekly_rule_report(args.service, since, until)
                else:
                    report = await store.rule_report(args.service, since, until)
        finally:
            await store.close()
        return render_json(report) if args.json else render_table(report)

    sys.stdout.write(asyncio.run(fetch()) + "\n")
    return 0


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    """``name``'s log records dropped for a while: the store's outage notice ("answering 503
    to calls") speaks to a server's log, and this command names the database itself."""
    logger = logging.getLogger(name)
    previous = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = previous


def _bound(*, end: bool) -> Callable[[str], datetime]:
    from cds.report import BOUND_FORMAT, parse_bound

    def parse(value: str) -> datetime:
        try:
            return parse_bound(value, end=end)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {BOUND_FORMAT}: {value!r}") from None

    return parse


def _instant_text(value: str) -> str:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 instant: {value!r} (e.g. 2026-06-01T12:00:00Z)"
        ) from None
    return value


DESCRIPTION = """\
footpath-cds, a CDS Hooks 2.0 service: back-to-foot referral rules.

Settings come from CDS_* environment variables (see the README); the flags below
override the few that have one."""

EPILOG = """\
exit status: 0 done; 1 problems found (rules check) or an error response
(evaluate); 2 a mistake in the command, a setting or a file; 3 the database
cannot be reached.

Run 'cds COMMAND --help' for a command's options, e.g. 'cds report --help'."""


class _Parser(argparse.ArgumentParser):
    """argparse whose mistakes are one line, pointing at the help, instead of the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def _commands(parser: argparse.ArgumentParser, dest: str) -> argparse._SubParsersAction[Any]:
    return parser.add_subparsers(dest=dest, required=True, metavar="COMMAND", title="commands")


def _listen_options(command: argparse.ArgumentParser) -> None:
    from cds.settings import Settings

    fields = Settings.model_fields
    command.add_argument(
        "--host",
        help=f"address to listen on (default: CDS_HOST, else {fields['host'].default})",
    )
    command.add_argument(
        "--port",
        type=int,
        help=f"port to listen on (default: CDS_PORT, else {fields['port'].default})",
    )


def build_parser() -> argparse.ArgumentParser:
    from cds import __version__

    parser = _Parser(
        prog="cds",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--traceback",
        action="store_true",
        help="on an unexpected error, print the whole traceback instead of one line",
    )
    commands = _commands(parser, "command")

    serve = commands.add_parser(
        "serve",
        help="serve the CDS Hooks API",
        description="Serve the CDS Hooks API with uvicorn. The settings, the rule files and "
        "the database are checked first, and the database migrated (unless "
        "CDS_MIGRATE_ON_START=false).",
    )
    _listen_options(serve)
    serve.set_defaults(handler=_serve)

    demo = commands.add_parser(
        "demo",
        help="serve the API, the playground and a demo FHIR server with synthetic patients",
        description="Serve the API with the playground and a read-only demo FHIR server over "
        "synthetic patients (CDS_DEMO_DIR), and print the playground's URL.",
    )
    _listen_options(demo)
    demo.set_defaults(handler=_demo)

    evaluate = commands.add_parser(
        "evaluate",
        help="print the response to a request JSON file (no server, no network)",
        description="Evaluate one CDS Hooks request offline and print the response JSON on "
        "stdout (an OperationOutcome for an invalid request, exit status 1). The data must be "
        "in the request's prefetch: nothing is fetched.",
    )
    evaluate.add_argument(
        "file",
        metavar="FILE",
        help="a CDS Hooks request JSON file, or a golden case file holding 'request' and 'now'",
    )
    evaluate.add_argument(
        "--now",
        type=_instant_text,
        help="evaluation instant, ISO 8601 (2026-06-01T12:00:00Z); default: the case file's "
        "own now, else CDS_FIXED_NOW, else the real clock",
    )
    evaluate.set_defaults(handler=_evaluate)

    rules = commands.add_parser(
        "rules",
        help="check the rule, card and value-set files; write their JSON Schemas",
        description="Tools for the rule files (CDS_RULES_DIR) and card files (CDS_CARDS_DIR).",
    )
    rules_commands = _commands(rules, "rules_command")
    check = rules_commands.add_parser(
        "check",
        help="validate every rule, card and value set (and a site settings file)",
        description="Validate every rule, card and value-set file and the references between "
        "them; print each problem as FILE:LINE:COLUMN: PATH: MESSAGE and exit 1 if any. With "
        "--site, validate that site settings file too and list the effective values.",
    )
    check.add_argument(
        "--site",
        metavar="FILE",
        type=Path,
        help="a site settings file (what CDS_SITE_CONFIG names): validate it against the rules "
        "and list every rule's mode, each tunable parameter (default -> site value, bounds) "
        "and the local codes added; default: CDS_SITE_CONFIG, if set",
    )
    check.set_defaults(handler=_rules_check)
    schema = rules_commands.add_parser(
        "schema",
        help="write the JSON Schemas of the rule, card and value-set files",
        description="Write the JSON Schemas of the service (rules), card, value-set and "
        "link-hosts files, generated from the models the service validates them with, for an "
        "editor to check files as they are typed (docs/rule-authoring.md).",
    )
    schema.add_argument(
        "directory",
        metavar="DIR",
        type=Path,
        help="directory to write them into (created if missing); the repository keeps them "
        "in schemas/",
    )
    schema.set_defaults(handler=_rules_schema)
    export = rules_commands.add_parser(
        "export",
        help="write every value set as a FHIR R4 ValueSet JSON file",
        description="Write every value set, with the site's local codes marked, as a FHIR R4 "
        "ValueSet (one <id>.json per value set, the same resources GET /fhir/ValueSet answers; "
        "their url is under CDS_PUBLIC_BASE_URL), for a terminology server to load "
        "(docs/transparency.md).",
    )
    export.add_argument(
        "--fhir",
        metavar="DIR",
        type=Path,
        required=True,
        help="directory to write them into (created if missing)",
    )
    export.set_defaults(handler=_rules_export)

    db = commands.add_parser(
        "db",
        help="database tools",
        description="Tools for the database at CDS_DATABASE_URL.",
    )
    db_commands = _commands(db, "db_command")
    db_commands.add_parser(
        "upgrade",
        help="apply database migrations (also done when the service starts)",
        description="Apply the database migrations to CDS_DATABASE_URL.",
    ).set_defaults(handler=_db_upgrade)

    from cds.report import BOUND_FORMAT, DEFAULT_WINDOW_DAYS

    report = commands.add_parser(
        "report",
        help=f"per-rule feedback report (default: the last {DEFAULT_WINDOW_DAYS} days)",
        description="Per rule and version, for the calls received in [--since, --until): times "
        "its cards were shown, times it would have fired in shadow (a draft rule), distinct "
        "cards, patients, cards without feedback, accepted and overridden, "
        "with rates over the feedback received. Default window: the last "
        f"{DEFAULT_WINDOW_DAYS} days up to now.",
    )
    report.add_argument("--service", metavar="ID", help="one service id (default: every service)")
    report.add_argument(
        "--since",
        metavar="WHEN",
        type=_bound(end=False),
        help=f"start, inclusive: {BOUND_FORMAT}; default: {DEFAULT_WINDOW_DAYS} days before "
        "--until",
    )
    report.add_argument(
        "--until",
        metavar="WHEN",
        type=_bound(end=True),
        help=f"end, exclusive: {BOUND_FORMAT}; a date includes that whole day; default: now",
    )
    report.add_argument(
        "--by",
        choices=["week"],
        help="also break the counts down per ISO week (UTC; what /admin/dashboard charts): a "
        "card and its feedback count in the week it was first shown",
    )
    report.add_argument("--json", action="store_true", help="JSON instead of a table")
    report.set_defaults(handler=_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from cds.config_errors import exit_status, problems_of, render, unexpected_error

    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        problems = problems_of(exc)
        if problems is not None:
            sys.stderr.write(render(problems))
            return exit_status(exc)
        if args.traceback:
            raise
        sys.stderr.write(render([unexpected_error(exc)]))
        return 1
    return code


if __name__ == "__main__":
    raise SystemExit(main())
