"""The cds command: evaluate a request offline, check the catalogue, migrate, report."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from importlib.metadata import version
from pathlib import Path

import httpx
import pytest

from cds.cli import build_parser, main
from cds.config_errors import unexpected_error
from cds.demo import load_demo
from cds.demo_server import demo_settings
from cds.settings import PROJECT_ROOT
from tests.served import free_port

CASE = (
    PROJECT_ROOT
    / "tests"
    / "cases"
    / "back-to-foot"
    / "rb-01-positive-tingling-with-lumbar-stenosis.json"
)


@pytest.fixture(autouse=True)
def isolated_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDS_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")


def test_evaluate_prints_the_cards_of_a_golden_case(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(CASE)]) == 0
    response = json.loads(capsys.readouterr().out)
    assert "RB-01" in [card["source"]["topic"]["code"] for card in response["cards"]]


def test_evaluate_reads_a_bare_request_with_an_explicit_instant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = json.loads(CASE.read_text())
    request = tmp_path / "request.json"
    request.write_text(json.dumps(case["request"]))
    assert main(["evaluate", str(request), "--now", case["now"]]) == 0
    assert json.loads(capsys.readouterr().out)["cards"]


def test_evaluate_explains_an_invalid_request_as_an_operation_outcome(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"hook": "patient-view", "hookInstance": "x", "context": {}}))
    assert main(["evaluate", str(request)]) == 1
    outcome = json.loads(capsys.readouterr().out)
    assert outcome["resourceType"] == "OperationOutcome"
    assert "context.userId" in outcome["issue"][0]["diagnostics"]


def test_rules_check_accepts_the_shipped_catalogue(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check"]) == 0
    assert "valid" in capsys.readouterr().out


def test_rules_check_names_the_file_and_path_of_every_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(PROJECT_ROOT / "rules", rules)
    service = rules / "back-to-foot.yaml"
    text = service.read_text()
    assert "lspine" in text
    service.write_text(text.replace("lspine", "no-such-valueset", 1))
    monkeypatch.setenv("CDS_RULES_DIR", str(rules))
    assert main(["rules", "check"]) == 1
    problems = capsys.readouterr().err
    assert "back-to-foot.yaml" in problems
    assert "no-such-valueset" in problems


def test_db_upgrade_then_an_empty_report(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "upgrade"]) == 0
    assert main(["report", "--json"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out[out.index("{") :])
    assert report["rules"] == []


@pytest.mark.parametrize("command", [["db", "upgrade"], ["report"]])
def test_a_database_nobody_listens_on_is_one_line_and_exit_status_3(
    command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql+asyncpg://cds:secret-password@127.0.0.1:{port}/cds"
    monkeypatch.setenv("CDS_DATABASE_URL", url)
    assert main(command) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("cds: CDS_DATABASE_URL: the database at postgresql+asyncpg://")
    assert "cannot be reached (refused)" in err
    assert err.endswith("; try again when it is up\n")
    assert "secret-password" not in err


def test_cds_demo_reads_cds_host_and_port_and_its_flags_override_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CDS_HOST", "0.0.0.0")  # noqa: S104 - a value under test, nothing binds
    monkeypatch.setenv("CDS_PORT", "9123")
    monkeypatch.setenv("CDS_FIXED_NOW", "2026-01-01T00:00:00Z")
    from_environment = demo_settings()
    assert (from_environment.host, from_environment.port) == ("0.0.0.0", 9123)  # noqa: S104
    assert from_environment.public_base_url == "http://0.0.0.0:9123"
    # The environment also overrides the demo's own defaults; what it leaves unset keeps them.
    assert from_environment.fixed_now == "2026-01-01T00:00:00Z"
    assert from_environment.playground_enabled is True
    flagged = demo_settings(host="127.0.0.1", port=9200)
    assert (flagged.host, flagged.port) == ("127.0.0.1", 9200)
    assert flagged.public_base_url == "http://127.0.0.1:9200"


def test_evaluate_says_the_instant_it_evaluated_at(capsys: pytest.CaptureFixture[str]) -> None:
    case = json.loads(CASE.read_text())
    assert main(["evaluate", str(CASE)]) == 0
    err = capsys.readouterr().err
    expected = datetime.fromisoformat(case["now"]).isoformat()
    assert f"evaluated as of {expected}" in err


def test_evaluate_on_a_demo_request_suggests_the_demo_clock(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    demo = load_demo()
    request = demo.hook_request(
        "demo-s06", "patient-view", {}, fhir_server=None, with_prefetch=False
    )
    path = tmp_path / "s06.json"
    path.write_text(json.dumps(request))
    main(["evaluate", str(path)])
    err = capsys.readouterr().err
    assert "evaluated as of" in err
    assert f"--now {demo.demo_now}" in err


def test_evaluate_with_an_explicit_instant_suggests_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    request = load_demo().hook_request(
        "demo-s06", "patient-view", {}, fhir_server=None, with_prefetch=False
    )
    path = tmp_path / "s06.json"
    path.write_text(json.dumps(request))
    main(["evaluate", str(path), "--now", "2026-06-01T12:00:00Z"])
    err = capsys.readouterr().err
    assert "evaluated as of 2026-06-01T12:00:00+00:00" in err
    assert "--now" not in err


def test_the_report_help_gives_the_bound_format_and_the_default_window(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "2026-05-01T08:00:00Z" in text
    assert "a date (2026-05-01, UTC)" in text
    assert "last 30 days" in text


def test_the_report_takes_a_plain_date_and_refuses_a_malformed_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["db", "upgrade"]) == 0
    assert main(["report", "--since", "2026-05-01", "--until", "2026-05-31", "--json"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out[out.index("{") :])
    assert (report["start"], report["end"]) == ("2026-05-01T00:00:00Z", "2026-06-01T00:00:00Z")
    with pytest.raises(SystemExit) as exit_info:
        main(["report", "--since", "last week"])
    assert exit_info.value.code == 2
    assert "--since: not a date" in capsys.readouterr().err


def test_cds_demo_prints_the_playground_url(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CDS_")},
        "CDS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}",
    }
    with subprocess.Popen(
        [sys.executable, "-m", "cds.cli", "demo", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=PROJECT_ROOT,
    ) as demo:
        try:
            assert demo.stdout is not None
            line = demo.stdout.readline()
            url = f"http://127.0.0.1:{port}/playground"
            assert f"open {url} " in line
            deadline = time.monotonic() + 60
            while True:
                try:
                    assert httpx.get(url).status_code == 200
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "the demo never answered"
                    time.sleep(0.2)
        finally:
            demo.terminate()
            demo.wait(timeout=30)


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"cds {version('footpath-cds')}\n"


def _commands(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*prefix, name))


COMMANDS = [names for names, _ in _commands(build_parser())]


def test_every_command_is_listed() -> None:
    assert COMMANDS == [
        (),
        ("serve",),
        ("demo",),
        ("evaluate",),
        ("rules",),
        ("rules", "check"),
        ("rules", "schema"),
        ("rules", "export"),
        ("db",),
        ("db", "upgrade"),
        ("report",),
    ]


@pytest.mark.parametrize("names", COMMANDS, ids=lambda names: " ".join(("cds", *names)))
def test_each_command_describes_itself_and_every_option_in_its_help(
    names: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    parser = dict(_commands(build_parser()))[names]
    assert parser.description
    for action in parser._actions:
        # A group of sub-commands is described by each sub-command's own line.
        described = getattr(action, "_choices_actions", [action])
        assert all(a.help for a in described), f"{names}: {action.option_strings or action.dest}"
    with pytest.raises(SystemExit) as exit_info:
        main([*names, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: {' '.join(('cds', *names))}")
    # No reStructuredText or Markdown markup: the help is read in a terminal.
    assert "``" not in text
    assert ":func:" not in text
    assert ":class:" not in text


def test_the_top_help_lists_every_command_and_the_exit_statuses(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for name in ("serve", "demo", "evaluate", "rules", "db", "report"):
        assert f"\n    {name} " in text
    assert "exit status: 0 done" in text


def test_the_listen_options_state_their_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: CDS_HOST, else 127.0.0.1)" in text
    assert "(default: CDS_PORT, else 8080)" in text


def _cds(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cds.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "--since", "last week"], "cds report: argument --since: not a date"),
        (["rules"], "cds rules: the following arguments are required: COMMAND"),
        (["frobnicate"], "cds: argument COMMAND: invalid choice: 'frobnicate'"),
    ],
)
def test_a_usage_mistake_is_one_line_pointing_at_the_help_and_exit_status_2(
    args: list[str], message: str
) -> None:
    done = _cds(*args)
    assert done.returncode == 2
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith(message)
    assert line.endswith("--help')")


def test_an_unexpected_error_is_one_line_without_a_traceback(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    done = _cds("rules", "schema", str(blocker / "schemas"))
    assert done.returncode == 1
    assert done.stderr == f"cds: {blocker / 'schemas'}: Not a directory\n"


def test_an_unexpected_exception_names_its_type_and_how_to_see_the_traceback() -> None:
    line = unexpected_error(KeyError("limbSymptoms"))
    assert line == (
        "unexpected error (KeyError: 'limbSymptoms'); run 'cds --traceback ...' to see where"
    )
