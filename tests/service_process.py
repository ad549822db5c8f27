"""``cds serve`` as a real child process on 127.0.0.1: for what only a process can show (its
peak memory, a restart, a loop shared by every request)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
START_SECONDS = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServiceProcess:
    """One running ``cds serve`` with one worker: the process that answers every request."""

    process: subprocess.Popen[bytes]
    base_url: str
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def peak_rss_mib(self) -> float:
        """The process's peak resident set size so far (VmHWM), in MiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmHWM in /proc/<pid>/status")

    def stop(self) -> None:
        """SIGTERM (a rolling update's stop), then wait for the process to end."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_service(env: Mapping[str, str], workdir: Path, port: int) -> ServiceProcess:
    """``cds serve`` on ``port`` with ``env`` on top of a test environment; ready when returned."""
    log = workdir / f"service-{port}-{time.monotonic_ns()}.log"
    full_env = {
        **os.environ,
        "CDS_ENV": "test",
        "CDS_HOST": "127.0.0.1",
        "CDS_PORT": str(port),
        "CDS_WORKERS": "1",
        "CDS_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'service.db'}",
        "CDS_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "CDS_LOG_LEVEL": "WARNING",
        **env,
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "cds.cli", "serve"],
            env=full_env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    service = ServiceProcess(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"cds serve exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{service.base_url}/healthz", timeout=1.0).status_code == 200:
                return service
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    service.stop()
    raise AssertionError(f"cds serve did not start: {log.read_text()[-2000:]}")


@contextmanager
def running_service(env: Mapping[str, str], workdir: Path) -> Iterator[ServiceProcess]:
    service = start_service(env, workdir, free_port())
    try:
        yield service
    finally:
        service.stop()
