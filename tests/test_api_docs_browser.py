"""``/docs`` in Debian's Chromium with no network beyond this machine, as on a hospital network."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import ConsoleMessage, Route, expect, sync_playwright

from tests.served import Server, cds_serve
from tests.test_playground_browser import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, _require_chromium

pytestmark = pytest.mark.browser

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Server]:
    """``cds serve`` as a development deployment runs it."""
    _require_chromium()
    with cds_serve(
        tmp_path / "cds.log",
        CDS_ENV="development",
        CDS_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'cds.db'}",
    ) as server:
        yield server


def test_the_api_docs_render_every_operation_with_no_network_beyond_this_machine(
    service: Server, tmp_path: Path
) -> None:
    blocked: list[str] = []
    console_errors: list[str] = []

    def offline(route: Route) -> None:
        if urlsplit(route.request.url).hostname in LOOPBACK:
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort("internetdisconnected")

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            console_errors.append(message.text)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1100, "height": 1400},
        )
        try:
            browser.route("**/*", offline)
            page = browser.new_page()
            page.on("console", on_console)
            page.on("pageerror", lambda exc: console_errors.append(str(exc)))
            page.goto(f"{service.url}/docs")

            operations = page.locator(".opblock-summary-path")
            expect(operations.first).to_be_visible(timeout=TIMEOUT_MS)
            expect(page.locator(".opblock-summary-path[data-path='/cds-services']")).to_have_count(
                1
            )
            expect(
                page.locator(".opblock-summary-path[data-path='/cds-services/{service_id}']")
            ).to_have_count(1)
            expect(page.locator(".info .title")).to_contain_text("footpath-cds")
            expect(page.locator(".swagger-ui .errors-wrapper")).to_have_count(0)
            page.screenshot(path=str(tmp_path / "docs.png"), full_page=True)
        finally:
            browser.close()

    assert blocked == []
    assert console_errors == []
