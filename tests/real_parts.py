"""What a test does when a real part it needs (a browser, a database server, valgrind) is not
on the machine: in CI, where .ci/run installs every one, that is a failure; elsewhere a skip
that says what to install."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NoReturn

import pytest


def missing(message: str) -> NoReturn:
    """Fail in CI, skip elsewhere, with ``message`` (what is missing and how to install it)."""
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def require_valgrind() -> None:
    """Go on only where valgrind is installed (the tests of ``bench.instructions``)."""
    if shutil.which("valgrind") is None:
        missing("valgrind is missing: apt-get install valgrind")


def under_valgrind(tool: list[str], out: Path, code: str) -> str:
    """The file ``tool`` (a valgrind command that writes ``out``) wrote for Python running
    ``code`` under it; only where valgrind is installed."""
    require_valgrind()
    subprocess.run([*tool, sys.executable, "-c", code], check=True, capture_output=True)
    return out.read_text()
