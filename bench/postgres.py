"""A throwaway PostgreSQL cluster for the benchmarks, from the server binaries on this machine.

``bench.wrk --postgres`` serves from one, so that the database's own CPU per request can be
read from its processes (the postmaster and its backends, which share the cores with the
workers). The cluster keeps PostgreSQL's default durability (fsync, synchronous commit), as a
deployment would, listens on 127.0.0.1 only, and is deleted afterwards.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from bench.http import HOST, descendants, free_port


@dataclass(frozen=True)
class Cluster:
    """A running cluster: its ``postgresql+asyncpg://`` URL and its data directory."""

    url: str
    data: Path

    def cpu_seconds(self) -> float:
        """CPU used so far by the postmaster and every backend, those already gone included."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        fields = Path(f"/proc/{postmaster}/stat").read_text().rpartition(")")[2].split()
        # utime, stime, and cutime, cstime: the CPU of the backends that exited and were reaped.
        ticks = sum(int(value) for value in fields[11:15])
        for pid in descendants(postmaster):
            with suppress(OSError):  # a backend that ended while we looked is in cutime now
                child = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
                ticks += int(child[11]) + int(child[12])
        return ticks / os.sysconf("SC_CLK_TCK")


def _bindir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return found[-1].parent
    on_path = shutil.which("initdb")
    if on_path is None:
        raise RuntimeError("PostgreSQL server binaries not found: apt-get install -y postgresql")
    return Path(on_path).parent


@contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    """A new cluster in a temporary directory with an empty database ``bench``; gone on exit."""
    bindir = _bindir()
    # PostgreSQL refuses to run as root; Debian's package creates the account it runs as.
    run_as = "postgres" if os.geteuid() == 0 else None

    def run(*argv: str) -> None:
        command = ["runuser", "-u", run_as, "--", *argv] if run_as else list(argv)
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    base = Path(tempfile.mkdtemp(prefix="footpath-bench-pg-"))
    data, sockets = base / "data", base / "sock"
    sockets.mkdir()
    if run_as:
        account = pwd.getpwnam(run_as)
        for path in (base, sockets):
            os.chown(path, account.pw_uid, account.pw_gid)
    port = free_port()
    pg_ctl = str(bindir / "pg_ctl")
    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "cds", "--auth=trust", "-E", "UTF8")
        options = f"-p {port} -k {sockets} -c listen_addresses={HOST}"
        run(pg_ctl, "-D", str(data), "-l", str(base / "server.log"), "-o", options, "-w", "start")
        run(str(bindir / "createdb"), f"--host={HOST}", f"--port={port}", "--username=cds", "bench")
        yield Cluster(url=f"postgresql+asyncpg://cds@{HOST}:{port}/bench", data=data)
    finally:
        with suppress(subprocess.CalledProcessError, FileNotFoundError):
            run(pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)
