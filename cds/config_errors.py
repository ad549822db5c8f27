"""Configuration and content mistakes as short lines: the variable or file, what is wrong, the fix.

An operator who mistypes a setting or a rule file needs one line per problem, not a traceback.
Nothing here ever prints the value a setting holds: a validation error quotes its input, and
that input may be the admin token, the patient-hash key or a database password.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from pydantic import ValidationError
from pydantic_settings import SettingsError

from cds.errors import ConfigError

ENV_PREFIX = "CDS_"
# Exit statuses: a mistake to fix (argparse uses 2 too), or an outage to wait out, so that a
# migration Job or a cron job can tell the two apart.
CONFIG_FAILURE = 2
DATABASE_UNREACHABLE = 3
# Settings whose values are secrets, besides the password inside CDS_DATABASE_URL.
_SECRET_NAME = re.compile(r"TOKEN|KEY|SECRET|PASSWORD", re.IGNORECASE)
_FIELD_IN_SETTINGS_ERROR = re.compile(r'field "(\w+)"')
_URL_PASSWORD = re.compile(r"://[^:/@\s]*:([^@\s]+)@")
_MIN_SECRET_CHARS = 4


def variable(field: str) -> str:
    """The environment variable behind a settings field (``port`` -> ``CDS_PORT``)."""
    return ENV_PREFIX + field.upper()


def _settings_validation_lines(exc: ValidationError) -> list[str]:
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        loc = [str(part) for part in error["loc"]]
        message = str(error["msg"]).removeprefix("Value error, ").replace("Input should", "should")
        if not loc:
            # A check across settings (production's guardrails): the message names them.
            lines += [line for line in message.splitlines() if line]
            continue
        where = variable(loc[0]) + (f" ({'.'.join(loc[1:])})" if len(loc) > 1 else "")
        lines.append(f"{where}: {message}")
    return lines


def _settings_error_lines(exc: SettingsError) -> list[str]:
    found = _FIELD_IN_SETTINGS_ERROR.search(str(exc))
    name = variable(found.group(1)) if found else "a CDS_ setting"
    cause = exc.__cause__
    if isinstance(cause, ValueError) and type(cause).__name__ == "JSONDecodeError":
        # The decoder's message gives the position only, never the text around it.
        return [f"{name}: not valid JSON ({cause}); {_JSON_SHAPES.get(name, 'write it as JSON')}"]
    return [f"{name}: cannot be read ({type(cause or exc).__name__})"]


_JSON_SHAPES = {
    "CDS_TRUSTED_ISSUERS": (
        'write a JSON object of issuer to JWKS URL (or to {"jwks": ..., "fhirServers": [...]}), '
        'e.g. {"https://ehr.example.org": "https://ehr.example.org/jwks.json"}'
    ),
    "CDS_TRUSTED_TENANTS": 'write a JSON list of strings, e.g. ["tenant-a"]',
    "CDS_CORS_ORIGINS": 'write a JSON list of origins, e.g. ["https://ehr.example.org"]',
}


def database_url_problem(url: str) -> str | None:
    """What is wrong with a ``CDS_DATABASE_URL`` (the driver the service needs), or None."""
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    dialect, _, driver = scheme.partition("+")
    if dialect in {"postgres", "postgresql"} and driver != "asyncpg":
        return (
            f"the scheme '{scheme}://' is not supported: write postgresql+asyncpg://USER:"
            "PASSWORD@HOST:PORT/DATABASE (the service talks to PostgreSQL through asyncpg)"
        )
    if dialect == "sqlite" and driver != "aiosqlite":
        return f"the scheme '{scheme}://' is not supported: write sqlite+aiosqlite:///PATH"
    if dialect not in {"postgresql", "sqlite"}:
        return "must start with postgresql+asyncpg:// (PostgreSQL) or sqlite+aiosqlite:/// (SQLite)"
    return None


class DatabaseUnreachable(ConfigError):
    """The database is down or unreachable: nothing to fix in the settings, try again later."""


def database_lines(exc: BaseException, url: str, cause: str | None = None) -> list[str]:
    """Why the database at ``url`` could not be used (``cause``: why it cannot be reached).

    Passwords are hidden in the whole line: a driver's message may quote the URL.
    """
    what = _driver_error(exc)
    if cause is None:
        return [hide_password(f"CDS_DATABASE_URL: cannot use the database at {url}: {what}")]
    return [
        hide_password(
            f"CDS_DATABASE_URL: the database at {url} cannot be reached ({cause}): {what}; "
            "try again when it is up"
        )
    ]


def _driver_error(exc: BaseException) -> str:
    """The driver's own error under SQLAlchemy's wrapping, type and first line."""
    error = getattr(exc, "orig", None) or exc
    # asyncpg's error sits under SQLAlchemy's adapter, as its cause.
    if error.__cause__ is not None and type(error).__module__.startswith("sqlalchemy"):
        error = error.__cause__
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def exit_status(exc: BaseException) -> int:
    return DATABASE_UNREACHABLE if isinstance(exc, DatabaseUnreachable) else CONFIG_FAILURE


def hide_password(url: str) -> str:
    return _URL_PASSWORD.sub("://***:***@", url)


def problems_of(exc: BaseException) -> list[str] | None:
    """One line per configuration problem ``exc`` stands for; None if it is not one."""
    if isinstance(exc, ConfigError):
        return list(exc.problems)
    if isinstance(exc, SettingsError):
        return _settings_error_lines(exc)
    if isinstance(exc, ValidationError) and exc.title == "Settings":
        return _settings_validation_lines(exc)
    return None


def unexpected_error(exc: BaseException) -> str:
    """One line for an error that is no configuration mistake: what failed, and how to see
    where (the message's first line only: a driver's or parser's later lines quote data)."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror}"
    lines = str(exc).strip().splitlines()
    what = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return f"unexpected error ({what}); run 'cds --traceback ...' to see where"


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Every secret the environment holds: values of secret-named settings and URL passwords."""
    env = os.environ if environ is None else environ
    found = []
    for name, value in env.items():
        if not name.upper().startswith(ENV_PREFIX):
            continue
        if _SECRET_NAME.search(name.removeprefix(ENV_PREFIX)):
            found.append(value)
        found += _URL_PASSWORD.findall(value)
    # Longest first, so a secret containing another is replaced whole.
    return sorted({s for s in found if len(s) >= _MIN_SECRET_CHARS}, key=len, reverse=True)


def scrub(text: str, environ: Mapping[str, str] | None = None) -> str:
    """``text`` with every secret setting's value replaced: the last guard before printing."""
    for secret in secret_values(environ):
        text = text.replace(secret, "***")
    return text


def render(problems: list[str], command: str = "cds") -> str:
    """The lines an operator reads on stderr, secrets scrubbed, one problem per line."""
    lines = [f"{command}: {scrub(problem)}" for problem in problems]
    return "\n".join(lines) + "\n"
