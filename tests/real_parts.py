"""What a test does when a real part it needs (a browser, a database server, valgrind) is not
on the machine: in CI, where .ci/run installs every one, that is a failure; elsewhere a skip
that says what to install."""

from __future__ import annotations

import os
import shutil
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
