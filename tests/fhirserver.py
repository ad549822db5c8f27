"""Pytest plugin: a real in-memory FHIR server (Node, @medplum/fhir-router) for the session."""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, NoReturn

import pytest
from fastapi import FastAPI

from cds.app import create_app
from cds.catalogue import Catalogue
from cds.settings import Settings

SERVER_DIR = Path(__file__).resolve().parent / "fhir_server"
_READY = re.compile(r"FHIR server ready at (http://\S+)")
_START_TIMEOUT_SECONDS = 60.0
_NPM_TIMEOUT_SECONDS = 600.0


def _unavailable(reason: str) -> NoReturn:
    # CI must exercise the real server: a missing tool there is a failure, never a skip.
    if os.environ.get("CI") == "true":
        pytest.fail(f"FHIR test server unavailable in CI: {reason}", pytrace=False)
    pytest.skip(f"FHIR test server unavailable: {reason}")


def _node_args(node: str) -> list[str]:
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, check=False, timeout=30
    ).stdout.strip()
    major = int(version.lstrip("v").split(".")[0] or 0) if version else 0
    # Node 20 hides the global WebSocket the Medplum packages touch behind a flag; 22+ has it.
    return [node, "--experimental-websocket"] if major < 22 else [node]


def _install(npm: str) -> None:
    if (SERVER_DIR / "node_modules" / "@medplum" / "fhir-router").is_dir():
        return
    try:
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=SERVER_DIR,
            capture_output=True,
            text=True,
            check=False,
            timeout=_NPM_TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired:
        _unavailable("`npm ci` in tests/fhir_server timed out")
    if result.returncode != 0:
        _unavailable(f"`npm ci` in tests/fhir_server failed:\n{result.stderr[-2000:]}")


def _pump(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    # Reads to the end so a chatty server never blocks on a full pipe; None marks its exit.
    for line in stream:
        lines.put(line)
    lines.put(None)


def _wait_ready(lines: queue.Queue[str | None]) -> str:
    seen: list[str] = []
    deadline = time.monotonic() + _START_TIMEOUT_SECONDS
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        if match := _READY.search(line):
            return match.group(1)
    output = "".join(seen)[-2000:]
    _unavailable(f"the server did not report ready within {_START_TIMEOUT_SECONDS:.0f}s:\n{output}")


@pytest.fixture(scope="session")
def fhir_server_url() -> Iterator[str]:
    """Base URL (``http://127.0.0.1:<port>/fhir``) of a fresh in-memory FHIR R4 server."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _unavailable("node and npm are needed (Node 20+)")
    _install(npm)
    process = subprocess.Popen(
        [*_node_args(node), "server.mjs", "0"],
        cwd=SERVER_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    pump = threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True)
    pump.start()
    try:
        yield _wait_ready(lines)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        # The pipe hits EOF once the server is gone; close it only after the pump stops reading.
        pump.join(timeout=10)
        process.stdout.close()


@asynccontextmanager
async def fetching_app(
    database: Path, catalogue: Catalogue, fixed_now: str
) -> AsyncIterator[FastAPI]:
    """A started app on SQLite at ``database`` that fetches what prefetch lacks from the test
    FHIR server."""
    settings = Settings(
        env="test",
        database_url=f"sqlite+aiosqlite:///{database}",
        fixed_now=fixed_now,
        fhir_allow_http=True,  # the test server listens on plain-http loopback
        request_budget_seconds=30,  # the in-memory server answers tens of searches a second
        fhir_read_timeout=20,
    )
    application = create_app(settings, catalogue=catalogue)
    async with application.router.lifespan_context(application):
        yield application
