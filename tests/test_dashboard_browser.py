"""/admin/dashboard in Debian's Chromium, from a real `cds serve` with no network beyond this
machine: the charts draw, the numbers behind one open, another period is chosen, the page
prints with its numbers, and nothing is logged as an error (a blocked style would be)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from cds.dashboard.figures import SERIES
from cds.migrations import upgrade
from cds.settings import load_settings
from cds.store import Store
from tests import feedback_weeks as fw
from tests.chromium import TIMEOUT_MS, artefact, chromium, offline, page_errors, require_chromium
from tests.served import Server, cds_serve

pytestmark = pytest.mark.browser

ADMIN = "admin-secret-for-browser-tests"
RB01 = "#back-to-foot--RB-01--v1\\.0\\.0"


async def _fill(database_url: str) -> None:
    settings = load_settings(database_url=database_url)
    await upgrade(settings)
    async with Store.from_settings(settings) as store:
        await fw.fill(store)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Server]:
    """`cds serve` with an admin token, on a store holding three weeks of known feedback."""
    require_chromium()
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'cds.db'}"
    asyncio.run(_fill(database_url))
    with cds_serve(
        tmp_path / "cds.log",
        CDS_ENV="development",
        CDS_DATABASE_URL=database_url,
        CDS_ADMIN_TOKEN=ADMIN,
    ) as server:
        yield server


def _bars(page: Page, scope: str = "") -> int:
    return page.locator(f"{scope} svg[data-chart=columns] rect.bar").count()


def test_the_dashboard_draws_its_charts_opens_their_numbers_and_prints_them(
    service: Server, tmp_path: Path
) -> None:
    series = len(SERIES)
    with chromium(
        tmp_path / "chromium-profile",
        viewport={"width": 1100, "height": 1400},
        extra_http_headers={"Authorization": f"Bearer {ADMIN}"},
    ) as ctx:
        blocked = offline(ctx)
        page = ctx.new_page()
        console_errors = page_errors(page)
        page.goto(f"{service.url}/admin/dashboard?since={fw.SINCE}&until={fw.UNTIL}")

        weekly = page.get_by_role("img", name="RB-01 1.0.0: counts per ISO week")
        expect(weekly).to_be_visible(timeout=TIMEOUT_MS)
        assert (weekly.bounding_box() or {"width": 0})["width"] > 600
        # One weekly chart per rule and version, a bar per week and count in each.
        expect(page.locator("svg[data-chart=columns]")).to_have_count(len(fw.PERIOD))
        assert _bars(page) == len(fw.PERIOD) * len(fw.WEEKS) * series
        assert _bars(page, RB01) == len(fw.WEEKS) * series
        # RB-01 1.1.0 had answers in W11 and W12: two points on its acceptance chart.
        rate = page.get_by_role("img", name="RB-01 1.1.0: acceptance rate per ISO week")
        expect(rate.locator("circle.point")).to_have_count(2)
        expect(rate.locator("text.value")).to_contain_text(["0 % of 1", "100 % of 1"])
        shown = weekly.locator("rect.bar[data-series=times_shown]")
        assert [shown.nth(i).bounding_box()["height"] > 0 for i in range(3)] == [True, True, False]  # type: ignore[index]
        page.screenshot(path=str(artefact("dashboard.png")), full_page=True)

        numbers = page.locator(f"{RB01} figure").first.locator("details")
        table = numbers.locator("table")
        expect(table).to_be_hidden()
        numbers.get_by_text("Numbers behind this chart").click()
        expect(table).to_be_visible()
        w11 = table.locator("tr[data-week='2026-W11']")
        expect(w11.locator("td[data-key=times_shown]")).to_have_text("1")
        expect(w11.locator("td[data-key=cards]")).to_have_text("0")
        numbers.screenshot(path=str(artefact("dashboard-numbers.png")))

        page.emulate_media(media="print")
        expect(page.locator("form")).to_be_hidden()
        # Printed, every chart's numbers show, opened or not.
        for details in page.locator("details").all():
            expect(details.locator("table")).to_be_visible()
        page.screenshot(path=str(artefact("dashboard-print.png")), full_page=True)
        page.emulate_media(media="screen")

        # Another period: the first week alone, chosen in the page's own form.
        page.get_by_label("To (a date: that whole day)").fill("2026-03-08")
        page.get_by_role("button", name="Show").click()
        expect(page).to_have_url(
            f"{service.url}/admin/dashboard?since={fw.SINCE}&until=2026-03-08&service="
        )
        expect(page.locator("svg[data-chart=columns]")).to_have_count(len(fw.WEEKLY["2026-W10"]))
        assert _bars(page) == len(fw.WEEKLY["2026-W10"]) * series

    assert blocked == []
    assert console_errors == []
