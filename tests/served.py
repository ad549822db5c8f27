"""``cds serve`` as a real process for tests: start it, wait for it, kill it, start it again."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
# Two workers spawning and migrating on a loaded two-core CI machine take a while.
START_SECONDS = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
    return port


@dataclass
class Server:
    """One ``cds serve`` process group on a free port, its output in ``log``."""

    env: dict[str, str]
    log: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        """Start ``cds serve`` and return once every worker has started and ``/healthz``
        answers (the database may be down).

        One worker answering is not enough: a test that stops the database while another
        worker is still starting would meet that worker's startup check, not the outage."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CDS_")}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        env.update(self.env, CDS_HOST=HOST, CDS_PORT=str(self.port), CDS_PUBLIC_BASE_URL=self.url)
        logged_before = self.log.stat().st_size if self.log.exists() else 0
        workers = int(self.env.get("CDS_WORKERS", "1"))
        with self.log.open("ab") as out:
            # Its own session, so that the whole group (uvicorn's workers too) can be killed.
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cds.cli", "serve"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"cds serve exited early:\n{self.log.read_text()[-4000:]}")
            try:
                answered = httpx.get(self.url + "/healthz", timeout=1.0).status_code == 200
                if answered and self._workers_started(logged_before) >= workers:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"cds serve did not answer in {START_SECONDS} s:\n{self.log_text()}")

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Send ``sig`` to the whole process group and wait for the server to end."""
        if self.process is None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
        self.process.wait(timeout=30)
        if sig is not signal.SIGKILL:
            # Workers left behind by a graceful stop would keep the port.
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process = None

    def _workers_started(self, logged_before: int) -> int:
        with self.log.open("rb") as log:
            log.seek(logged_before)
            return log.read().count(b"Application startup complete.")

    def log_text(self) -> str:
        return self.log.read_text()[-4000:] if self.log.exists() else ""


@contextmanager
def cds_serve(log: Path, **env: str) -> Iterator[Server]:
    """A started ``cds serve`` with ``env`` (``CDS_*`` names), stopped at the end."""
    server = Server(env=env, log=log)
    server.start()
    try:
        yield server
    finally:
        server.kill(signal.SIGTERM)
