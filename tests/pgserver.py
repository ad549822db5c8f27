"""Pytest plugin: a throwaway PostgreSQL cluster from Debian's binaries for the whole session."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.real_parts import missing
from tests.served import free_port

INSTALL_HINT = (
    "PostgreSQL server binaries not found (looked for /usr/lib/postgresql/*/bin/initdb and "
    "initdb on PATH). Install them with: apt-get update && apt-get install -y postgresql"
)


@dataclass(frozen=True)
class PgServer:
    """A running cluster: trust auth on 127.0.0.1 only, superuser ``cds``, no password."""

    bindir: Path
    host: str
    port: int
    user: str
    run_as: str | None

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """A new, empty database; returns its ``postgresql+asyncpg://`` URL."""
        name = name or f"t_{uuid.uuid4().hex[:16]}"
        _run(
            self.run_as,
            [
                str(self.bindir / "createdb"),
                f"--host={self.host}",
                f"--port={self.port}",
                f"--username={self.user}",
                name,
            ],
        )
        return self.url(name)


def _bindir() -> Path | None:
    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", path.parent.parent.name))

    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=version)
    if candidates:
        return candidates[-1].parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def _run(run_as: str | None, argv: list[str]) -> None:
    # PostgreSQL refuses to run as root, so root hands the binaries to an ordinary account.
    command = ["runuser", "-u", run_as, "--", *argv] if run_as else argv
    subprocess.run(command, check=True, capture_output=True, timeout=120)


def _os_account() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail("running as root needs the 'postgres' account that Debian's package creates")
    return "postgres"


@dataclass(frozen=True)
class PgCluster:
    """A cluster's files and server; ``stop`` and ``start`` it to take the database away."""

    server: PgServer
    data: Path
    log: Path
    options: str

    def _pg_ctl(self, *argv: str) -> None:
        _run(self.server.run_as, [str(self.server.bindir / "pg_ctl"), "-D", str(self.data), *argv])

    def start(self) -> None:
        self._pg_ctl("-l", str(self.log), "-o", self.options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """``fast``: clients are disconnected and the server shuts down cleanly."""
        self._pg_ctl("-m", mode, "-w", "stop")


@contextmanager
def cluster() -> Iterator[PgCluster]:
    """A new cluster in a temporary directory, started; stopped and deleted on exit."""
    bindir = _bindir()
    if bindir is None:
        missing(INSTALL_HINT)
    run_as = _os_account()
    # Not pytest's tmp_path: that is private to root, and the server runs as another account.
    base = Path(tempfile.mkdtemp(prefix="cds-pg-"))
    data, sockets, log = base / "data", base / "sock", base / "server.log"
    sockets.mkdir()
    if run_as:
        account = pwd.getpwnam(run_as)
        for path in (base, sockets):
            os.chown(path, account.pw_uid, account.pw_gid)
    server = PgServer(bindir=bindir, host="127.0.0.1", port=free_port(), user="cds", run_as=run_as)
    options = (
        f"-p {server.port} -k {sockets} -c listen_addresses=127.0.0.1 "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    running = PgCluster(server=server, data=data, log=log, options=options)
    try:
        _run(
            run_as,
            [str(bindir / "initdb"), "-D", str(data), "-U", "cds", "--auth=trust", "-E", "UTF8"],
        )
        running.start()
    except subprocess.CalledProcessError as exc:
        detail = log.read_text() if log.exists() else ""
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start: {exc.stderr!r}\n{detail}")
    try:
        yield running
    finally:
        # Already stopped is fine: a test may have left it down.
        with suppress(subprocess.CalledProcessError):
            running.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PgServer]:
    """One cluster for the whole session, stopped and deleted at the end."""
    with cluster() as running:
        yield running.server


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PgServer) -> str:
    """A ``postgresql+asyncpg://`` URL of a database created once for the session."""
    return postgres_server.create_database("cds_test")
