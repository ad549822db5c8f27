"""Alembic migrations shipped in the package: ``await upgrade(settings)`` at start or by CLI."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from cds.settings import Settings
from cds.store.engines import create_engine

HEAD = "0007"
# Any constant works; it only has to be the same for every replica that migrates at start.
_PG_LOCK_KEY = 0x0F007_CD5


def alembic_config(database_url: str) -> Config:
    """A Config without an ini file: the scripts are found next to this module."""
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).resolve().parent))
    # ConfigParser interpolates '%', which a URL-encoded password may contain.
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def _upgrade_on(connection: Connection, cfg: Config, revision: str) -> None:
    if connection.dialect.name == "postgresql":
        # Replicas starting together take turns; the later ones find the schema at head.
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


async def upgrade(settings: Settings, revision: str = "head") -> None:
    """Bring the database at ``settings.database_url`` to ``revision`` in one transaction."""
    engine = create_engine(settings.database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade_on, alembic_config(settings.database_url), revision)
    finally:
        await engine.dispose()


def _revision_of(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(settings: Settings) -> str | None:
    """The revision the database is at (None before the first migration)."""
    engine = create_engine(settings.database_url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_revision_of)
    finally:
        await engine.dispose()
