"""Shared fixtures: settings on a throwaway SQLite file, the app, and an HTTP client to it."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from cds.app import create_app
from cds.catalogue import Catalogue, load_catalogue
from cds.migrations import upgrade
from cds.settings import Settings, load_settings
from cds.store import AuditWriter, Store
from tests.hook_calls import HookCalls, hook_calls
from tests.requests import ICD10, condition, patient, searchset

pytest_plugins = ["tests.fhirserver", "tests.pgserver"]

ROOT = Path(__file__).resolve().parents[1]
FIXED_NOW = "2026-06-01T12:00:00+00:00"


def changed(settings: Settings, **changes: Any) -> Settings:
    """``settings`` with ``changes`` applied and validated (model_copy would skip validation)."""
    return Settings.model_validate({**settings.model_dump(), **changes})


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    """The shipped rules, cards and value sets, loaded once for the session: apps of tests that
    do not change them share it (a test that does builds its own from its own directories)."""
    shipped = Settings(env="test")
    return load_catalogue(shipped.rules_dir, shipped.cards_dir, shipped.topic_system)


@pytest.fixture
def content_tree(tmp_path: Path) -> Path:
    """A copy of the shipped rules and cards, for a test to change."""
    for part in ("rules", "cards"):
        shutil.copytree(ROOT / part, tmp_path / part)
    return tmp_path


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        env="test",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'cds.db'}",
        fixed_now=FIXED_NOW,
        public_base_url="https://cds.example.org",
    )


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings on a new SQLite file, then on a new database of the session's PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    else:
        url = request.getfixturevalue("postgres_server").create_database()
    return load_settings(database_url=url, patient_hash_key=SecretStr("test-key"))


@pytest.fixture
async def store(store_settings: Settings) -> AsyncIterator[Store]:
    """A migrated store; every test that takes it runs on SQLite and on PostgreSQL."""
    await upgrade(store_settings)
    async with Store.from_settings(store_settings) as opened:
        yield opened


@pytest.fixture
def app(settings: Settings, catalogue: Catalogue) -> FastAPI:
    return create_app(settings, catalogue=catalogue)


def holding_audit_app(settings: Settings, catalogue: Catalogue | None = None) -> FastAPI:
    """An app whose audit writer holds every call for an hour: written only when flushed
    (feedback, the report) or when the app stops."""
    app = create_app(settings, catalogue=catalogue)
    parts = app.state.parts
    parts.audit = AuditWriter(parts.store, parts.metrics, batch_seconds=3600)
    return app


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client to ``app`` with its lifespan (migrations, shutdown) running around it.

    ASGITransport sends no lifespan events, so the app's lifespan is entered here.
    """
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://cds.example.org") as c:
            yield c


@pytest.fixture(scope="module")
async def calls(
    catalogue: Catalogue, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[HookCalls]:
    """One app per module on the session's catalogue, evaluating as of ``hook_calls.NOW``;
    the module sets ``anyio_backend`` to module scope."""
    async with hook_calls(catalogue, tmp_path_factory.mktemp("calls")) as made:
        yield made


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(app) as c:
        yield c


@pytest.fixture
async def app_settings_small_body(
    settings: Settings, catalogue: Catalogue
) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(
        create_app(changed(settings, max_body_bytes=2048), catalogue=catalogue)
    ) as c:
        yield c


@pytest.fixture
def rb01_request() -> dict[str, Any]:
    """RB-01's classic patient: lumbar stenosis for a year, new tingling in the left foot."""
    return {
        "hook": "patient-view",
        "hookInstance": "5d0b6a1c-41f4-4b7e-8d2a-7c3f0e9a1b22",
        "context": {"userId": "Practitioner/example", "patientId": "p1"},
        "prefetch": {
            "patient": patient(birth_date="1965-02-11"),
            "conditions": searchset(
                condition(
                    "stenosis",
                    ICD10,
                    "M48.062",
                    "Spinal stenosis, lumbar region with neurogenic claudication",
                    "2025-06-01",
                ),
                condition("tingling", ICD10, "R20.2", "Paresthesia of skin", "2026-05-11"),
            ),
        },
    }
