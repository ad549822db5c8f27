"""Every configuration or content mistake an operator makes ends in short lines naming the
variable or file, a non-zero exit and no traceback; no output ever holds a secret's value.

Each case runs the real ``cds`` command in a subprocess, as an operator would.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cds.settings import PROJECT_ROOT
from tests.pgserver import PgServer
from tests.served import free_port

# Recognisable secrets: none of them may appear in any output.
ADMIN_TOKEN = "adm1n-T0KEN-must-never-be-printed"
HASH_KEY = "h4sh-KEY-must-never-be-printed-0123456789"
DB_PASSWORD = "pg-PASSW0RD-must-never-be-printed"
SECRETS = (ADMIN_TOKEN, HASH_KEY, DB_PASSWORD)
ISSUERS = '{"https://ehr.example.org": "https://ehr.example.org/jwks.json"}'
MAX_LINE_CHARS = 400
CONFIG_FAILURE = 2


@dataclass
class Outcome:
    status: int
    lines: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture
def base_env(tmp_path: Path) -> dict[str, str]:
    """A clean environment with every secret set, so a leak of any of them would show."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDS_")}
    env.update(
        CDS_ADMIN_TOKEN=ADMIN_TOKEN,
        CDS_PATIENT_HASH_KEY=HASH_KEY,
        CDS_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'cds.db'}",
        CDS_PORT=str(free_port()),
    )
    return env


def run_cds(env: dict[str, str], *args: str, **changes: str) -> Outcome:
    completed = subprocess.run(
        [sys.executable, "-m", "cds.cli", *args],
        env={**env, **changes},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
        check=False,
    )
    output = completed.stdout + completed.stderr
    return Outcome(completed.returncode, [line for line in output.splitlines() if line])


def assert_short_and_clean(
    outcome: Outcome, *names: str, max_lines: int = 3, status: int = CONFIG_FAILURE
) -> None:
    """Exit 2, a few short lines, each name mentioned, no traceback, no secret."""
    assert outcome.status == status, outcome.text
    assert "Traceback" not in outcome.text
    assert 1 <= len(outcome.lines) <= max_lines, outcome.text
    assert all(len(line) <= MAX_LINE_CHARS for line in outcome.lines), outcome.text
    for name in names:
        assert name in outcome.text, outcome.text
    for secret in SECRETS:
        assert secret not in outcome.text


def test_invalid_json_in_trusted_issuers_names_the_variable(base_env: dict[str, str]) -> None:
    outcome = run_cds(base_env, "serve", CDS_TRUSTED_ISSUERS="{https://ehr: jwks}")
    assert_short_and_clean(outcome, "CDS_TRUSTED_ISSUERS", "not valid JSON", max_lines=1)


def test_a_port_that_is_no_number_names_the_variable_not_the_field(
    base_env: dict[str, str],
) -> None:
    outcome = run_cds(base_env, "serve", CDS_PORT="abc")
    assert_short_and_clean(outcome, "CDS_PORT", "integer", max_lines=1)


def test_a_misspelt_auth_mode_names_the_variable_and_the_choices(
    base_env: dict[str, str],
) -> None:
    outcome = run_cds(base_env, "serve", CDS_AUTH_MODE="requird")
    assert_short_and_clean(outcome, "CDS_AUTH_MODE", "'required' or 'off'", max_lines=1)


def test_a_postgres_url_gets_the_asyncpg_hint_and_hides_the_password(
    base_env: dict[str, str],
) -> None:
    url = f"postgres://cds:{DB_PASSWORD}@db.example.org:5432/cds"
    outcome = run_cds(base_env, "serve", CDS_DATABASE_URL=url)
    assert_short_and_clean(outcome, "CDS_DATABASE_URL", "postgresql+asyncpg://", max_lines=1)


def test_production_without_keys_lists_each_missing_key_on_its_own_line(
    base_env: dict[str, str],
) -> None:
    env = {k: v for k, v in base_env.items() if k != "CDS_PATIENT_HASH_KEY"}
    outcome = run_cds(env, "serve", CDS_ENV="production")
    assert_short_and_clean(outcome, "CDS_PATIENT_HASH_KEY", "CDS_TRUSTED_ISSUERS", max_lines=2)


def test_a_refused_production_start_never_echoes_the_secret_settings(
    base_env: dict[str, str],
) -> None:
    outcome = run_cds(base_env, "serve", CDS_ENV="production", CDS_AUTH_MODE="off")
    assert_short_and_clean(outcome, "CDS_AUTH_MODE=off", max_lines=1)


def test_production_refuses_a_patient_hash_key_under_32_bytes(base_env: dict[str, str]) -> None:
    outcome = run_cds(
        base_env,
        "serve",
        CDS_ENV="production",
        CDS_TRUSTED_ISSUERS=ISSUERS,
        CDS_PATIENT_HASH_KEY="abc",
    )
    assert_short_and_clean(outcome, "CDS_PATIENT_HASH_KEY", "32 bytes", max_lines=1)


def test_production_refuses_to_start_without_a_trusted_issuer(base_env: dict[str, str]) -> None:
    outcome = run_cds(base_env, "serve", CDS_ENV="production")
    assert_short_and_clean(outcome, "CDS_TRUSTED_ISSUERS is empty", max_lines=1)


def _rules_with(tmp_path: Path, old: str, new: str) -> Path:
    rules = tmp_path / "rules"
    shutil.copytree(PROJECT_ROOT / "rules", rules)
    service = rules / "back-to-foot.yaml"
    text = service.read_text()
    assert old in text
    service.write_text(text.replace(old, new, 1))
    return rules


def test_a_rule_file_typo_stops_serve_with_the_file_and_path_and_no_traceback(
    base_env: dict[str, str], tmp_path: Path
) -> None:
    rules = _rules_with(tmp_path, "valuesets: [lspine-compressive]", "valuesets: [lspien]")
    outcome = run_cds(base_env, "serve", CDS_RULES_DIR=str(rules))
    assert_short_and_clean(outcome, "rules/back-to-foot.yaml:", ": rules[", "'lspien'", max_lines=1)
    assert outcome.lines[0].startswith("cds: ")


def test_broken_yaml_names_the_file_and_the_line(base_env: dict[str, str], tmp_path: Path) -> None:
    rules = _rules_with(tmp_path, "hooks: [patient-view]", "hooks: [patient-view")
    outcome = run_cds(base_env, "serve", CDS_RULES_DIR=str(rules))
    # The other services share its rules; what they miss is not listed, the stop is said once.
    assert_short_and_clean(outcome, "rules/back-to-foot.yaml:", "not valid YAML", max_lines=2)
    assert re.match(r"cds: rules/back-to-foot\.yaml:\d+:\d+: not valid YAML", outcome.lines[0])
    assert outcome.lines[1] == (
        "cds: references between files are not checked until rules/back-to-foot.yaml loads"
    )
    assert "<unicode string>" not in outcome.text


def test_evaluate_on_a_missing_file_says_so(base_env: dict[str, str], tmp_path: Path) -> None:
    missing = tmp_path / "no-such-request.json"
    outcome = run_cds(base_env, "evaluate", str(missing))
    assert_short_and_clean(outcome, f"{missing}: no such file", max_lines=1)


def test_evaluate_on_bad_json_names_the_file_and_the_place(
    base_env: dict[str, str], tmp_path: Path
) -> None:
    broken = tmp_path / "request.json"
    broken.write_text('{"hook": "patient-view",\n  "context": }\n')
    outcome = run_cds(base_env, "evaluate", str(broken))
    assert_short_and_clean(outcome, str(broken), "not valid JSON", "line 2", max_lines=1)


def _unreachable_postgres() -> str:
    # A port nothing listens on: the server is down, or the URL names the wrong one.
    return f"postgresql+asyncpg://cds:{DB_PASSWORD}@127.0.0.1:{free_port()}/cds"


@pytest.mark.parametrize("command", [["serve"], ["db", "upgrade"], ["report"]])
def test_an_unreachable_postgresql_is_one_line_with_the_cause_and_no_password(
    base_env: dict[str, str], command: list[str]
) -> None:
    outcome = run_cds(base_env, *command, CDS_DATABASE_URL=_unreachable_postgres())
    # An outage, not a mistake: exit status 3, so a Job can tell it from a bad setting.
    assert_short_and_clean(
        outcome, "CDS_DATABASE_URL", "cannot be reached (refused)", max_lines=1, status=3
    )
    assert "127.0.0.1" in outcome.text
    assert "ConnectionRefusedError" in outcome.text


def test_a_failed_app_startup_logs_the_cause_whole_without_a_traceback(
    base_env: dict[str, str],
) -> None:
    """Point 2: under any ASGI server (here uvicorn's own CLI), not only ``cds serve``."""
    env = {**base_env, "CDS_DATABASE_URL": _unreachable_postgres()}
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "cds.app:create_app",
            "--port",
            env["CDS_PORT"],
            "--log-level",
            "info",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
        check=False,
    )
    log = completed.stderr
    assert completed.returncode != 0
    startup = [line for line in log.splitlines() if '"startup failed"' in line]
    assert len(startup) == 1, log
    assert "CDS_DATABASE_URL" in startup[0]
    # The type and the message whole: "[Errno 111] Connect call failed" or "Connection refused".
    assert "ConnectionRefusedError: [Errno 111]" in startup[0]
    assert "Traceback (most recent call last)" not in log
    for secret in SECRETS:
        assert secret not in log


@pytest.mark.postgres
def test_a_database_name_the_server_does_not_have_is_a_setting_to_fix(
    base_env: dict[str, str], postgres_server: PgServer
) -> None:
    url = postgres_server.url("no_such_database").replace("://cds@", f"://cds:{DB_PASSWORD}@")
    outcome = run_cds(base_env, "db", "upgrade", CDS_DATABASE_URL=url)
    assert_short_and_clean(outcome, "CDS_DATABASE_URL", "no_such_database", max_lines=1)
    assert "InvalidCatalogNameError" in outcome.text
