"""What must hold before the service takes calls, checked once where a failure can be read.

``cds serve`` runs ``preflight`` before uvicorn starts its workers: a worker that fails while
building the app shows a traceback and is restarted, so each mistake is found here first and
reported as one line per problem.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Final

import sqlalchemy.exc

from cds.config_errors import DatabaseUnreachable, database_lines
from cds.errors import ConfigError, StoreUnavailable
from cds.settings import Settings
from cds.store.outage import unreachable_cause

# What a database that is down, unreachable or refusing our credentials raises: SQLAlchemy
# wraps the driver's errors, but a refused connection arrives as the OSError it is.
DATABASE_FAILURES: Final[tuple[type[BaseException], ...]] = (
    OSError,
    TimeoutError,
    sqlalchemy.exc.SQLAlchemyError,
    StoreUnavailable,
)
# PostgreSQL SQLSTATEs that mean the URL is wrong (a setting to fix), not an outage or a bug:
# class 28 refused credentials, 3D000 no such database.
_SETTING_SQLSTATE_CLASSES = ("28",)
_SETTING_SQLSTATES = frozenset({"3D000"})


def _sqlstate(exc: BaseException) -> str | None:
    for error in (exc, getattr(exc, "orig", None), getattr(exc, "__cause__", None)):
        state = getattr(error, "sqlstate", None)
        if isinstance(state, str):
            return state
    return None


def _names_a_wrong_url(exc: BaseException) -> bool:
    state = _sqlstate(exc)
    return state is not None and (
        state in _SETTING_SQLSTATES or state.startswith(_SETTING_SQLSTATE_CLASSES)
    )


@contextlib.contextmanager
def database_explained(settings: Settings) -> Iterator[None]:
    """An unreachable database or a URL it refuses becomes one line naming CDS_DATABASE_URL.

    ``DatabaseUnreachable`` (an outage: try again later) or ``ConfigError`` (credentials or
    database name); any other error, a failed migration for one, goes through unchanged.
    """
    try:
        yield
    except DATABASE_FAILURES as exc:
        # The store's 503 is for callers; the operator wants the driver's error behind it.
        found = exc.__cause__ if isinstance(exc, StoreUnavailable) and exc.__cause__ else exc
        cause = unreachable_cause(found)
        if cause is not None:
            lines = database_lines(found, settings.database_url, str(cause))
            raise DatabaseUnreachable(lines) from exc
        if _names_a_wrong_url(found):
            raise ConfigError(database_lines(found, settings.database_url)) from exc
        raise


async def migrate_or_explain(settings: Settings) -> None:
    """Migrations to head; a database that cannot be used is a ``ConfigError`` naming it."""
    from cds.migrations import upgrade  # noqa: PLC0415 - alembic only when migrating

    with database_explained(settings):
        await upgrade(settings)


async def _preflight(settings: Settings) -> None:
    from cds.app import build_parts  # noqa: PLC0415 - the web stack, for serving only
    from cds.security import check_replay_cache  # noqa: PLC0415

    # Here, before the workers start: each would refuse, and uvicorn would restart them.
    check_replay_cache(settings)
    parts = build_parts(settings)
    try:
        if settings.migrate_on_start:
            await migrate_or_explain(settings)
    finally:
        await parts.aclose()


def preflight(settings: Settings) -> None:
    """Settings, content, key sources and the database, as ``create_app`` will need them.

    Raises ``ConfigError`` with one line per problem.
    """
    asyncio.run(_preflight(settings))
