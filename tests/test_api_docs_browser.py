"""``/docs`` in Debian's Chromium with no network beyond this machine, as on a hospital network."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.chromium import TIMEOUT_MS, artefact, chromium, offline, page_errors, require_chromium
from tests.served import Server, cds_serve

pytestmark = pytest.mark.browser


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Server]:
    """``cds serve`` as a development deployment runs it."""
    require_chromium()
    with cds_serve(
        tmp_path / "cds.log",
        CDS_ENV="development",
        CDS_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'cds.db'}",
    ) as server:
        yield server


def test_the_api_docs_render_every_operation_with_no_network_beyond_this_machine(
    service: Server, tmp_path: Path
) -> None:
    with chromium(tmp_path / "chromium-profile", viewport={"width": 1100, "height": 1400}) as ctx:
        blocked = offline(ctx)
        page = ctx.new_page()
        console_errors = page_errors(page)
        page.goto(f"{service.url}/docs")

        operations = page.locator(".opblock-summary-path")
        expect(operations.first).to_be_visible(timeout=TIMEOUT_MS)
        expect(page.locator(".opblock-summary-path[data-path='/cds-services']")).to_have_count(1)
        expect(
            page.locator(".opblock-summary-path[data-path='/cds-services/{service_id}']")
        ).to_have_count(1)
        expect(page.locator(".info .title")).to_contain_text("footpath-cds")
        expect(page.locator(".swagger-ui .errors-wrapper")).to_have_count(0)
        page.screenshot(path=str(artefact("api-docs.png")), full_page=True)

    assert blocked == []
    assert console_errors == []
