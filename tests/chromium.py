"""Debian's Chromium under Playwright, the one way the browser tests find it, launch it and watch a
page for errors. Never a downloaded browser: ``executable_path`` is the system package's."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import BrowserContext, ConsoleMessage, Page, Route, sync_playwright

from tests.real_parts import missing

CHROMIUM = Path("/usr/bin/chromium")
# Headless in a container: no sandbox or GPU, and nothing that reaches out to Google on its own.
ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
TIMEOUT_MS = 15_000
# Screenshots a person looks at after a run; git-ignored.
ARTEFACTS = Path(__file__).resolve().parent / "artefacts"
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def require_chromium() -> None:
    """Skip with what to install, or fail in CI, where the browser is part of the machine."""
    if not CHROMIUM.exists():
        missing(f"{CHROMIUM} is missing: apt-get install chromium")


@contextmanager
def chromium(profile: Path, **options: Any) -> Iterator[BrowserContext]:
    """A headless Chromium context on its own ``profile`` directory; ``options`` are Playwright's
    context options (``viewport``, ...)."""
    require_chromium()
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, args=list(ARGS), **options
        )
        try:
            yield context
        finally:
            context.close()


def page_errors(page: Page) -> list[str]:
    """A list that fills with ``page``'s console errors (CSP violations and failed loads among
    them) and uncaught exceptions, for the test to assert empty at its end."""
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


def artefact(name: str) -> Path:
    """Where a test saves a file for people to look at after the run (``tests/artefacts/``)."""
    ARTEFACTS.mkdir(exist_ok=True)
    return ARTEFACTS / name


def offline(context: BrowserContext) -> list[str]:
    """Cut ``context`` off from every network beyond this machine, as a hospital network may
    be: a list that fills with the addresses it tried to reach, for the test to assert empty."""
    blocked: list[str] = []

    def route(request_route: Route) -> None:
        if urlsplit(request_route.request.url).hostname in LOOPBACK:
            request_route.continue_()
        else:
            blocked.append(request_route.request.url)
            request_route.abort("internetdisconnected")

    context.route("**/*", route)
    return blocked
