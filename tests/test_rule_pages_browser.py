"""The rule pages in Debian's Chromium: from the list of rules to one rule's logic and evidence,
and from a card's "About this rule" link in the playground to its page; printed too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.chromium import TIMEOUT_MS, artefact, chromium, page_errors, require_chromium
from tests.demo_app import browser_demo_settings, demo_served

pytestmark = pytest.mark.browser

WIDE = {"width": 1100, "height": 1400}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    require_chromium()
    with demo_served(browser_demo_settings(tmp_path)) as url:
        yield url


def _expect_the_rf01_page(page: Page) -> None:
    expect(page.get_by_role("heading", level=1)).to_contain_text("RF-01: Suspected cauda equina")
    logic = page.locator("section[aria-labelledby=logic]")
    expect(logic.get_by_role("heading", name="Logic")).to_be_visible()
    expect(logic).to_contain_text("At least one of these holds:")
    expect(logic).to_contain_text("An active condition in value set 'ces-core'")
    evidence = page.locator("ul.evidence a")
    expect(evidence.first).to_be_visible()
    assert evidence.count() >= 3
    for href in (evidence.nth(i).get_attribute("href") for i in range(evidence.count())):
        assert href is not None
        assert href.startswith("https://")
    # A value set named by the logic is one click away, on the same page, with its codes.
    page.locator("ul.logic a[href='#vs-ces-core']").first.click()
    expect(page.locator("#vs-ces-core")).to_be_in_viewport()
    codes = page.get_by_role("table", name="Codes of value set ces-core", exact=True)
    expect(codes).to_contain_text("G83.4")


def test_a_reader_goes_from_the_list_of_rules_to_a_rules_logic_and_evidence(
    server: str, tmp_path: Path
) -> None:
    with chromium(tmp_path / "profile", viewport=WIDE) as browser:
        page = browser.new_page()
        errors = page_errors(page)
        page.goto(f"{server}/rules")
        expect(page.get_by_role("heading", level=1)).to_have_text("Rules of footpath-cds")
        expect(page.get_by_role("heading", name="Back-to-foot referral guidance")).to_be_visible()
        page.screenshot(path=str(artefact("rule-index.png")), full_page=True)
        table = page.get_by_role("table", name="Rules of back-to-foot", exact=True)
        table.get_by_role("link", name="RF-01", exact=True).click()
        _expect_the_rf01_page(page)
        page.screenshot(path=str(artefact("rule-page-rf01.png")), full_page=True)
        # Printed: no navigation, and each evidence link's address is written out.
        page.emulate_media(media="print")
        expect(page.get_by_role("navigation")).to_be_hidden()
        after = page.locator("ul.evidence a").first.evaluate(
            "a => getComputedStyle(a, '::after').content"
        )
        assert "https://" in after
        page.pdf(path=str(artefact("rule-page-rf01.pdf")))
        assert errors == []


def test_the_playground_cards_about_this_rule_link_opens_the_rule_page(
    server: str, tmp_path: Path
) -> None:
    with chromium(tmp_path / "profile", viewport=WIDE) as browser:
        page = browser.new_page()
        errors = page_errors(page)
        page.goto(f"{server}/playground")
        expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=TIMEOUT_MS)
        page.get_by_label("Demo patient").select_option("demo-s06")
        page.get_by_role("button", name="Send to the CDS service").click()
        card = page.locator('[data-rule="RF-01"]')
        expect(card).to_be_visible(timeout=TIMEOUT_MS)
        about = card.get_by_role("link", name="About this rule")
        expect(about).to_have_attribute("href", f"{server}/rules/RF-01")
        card.screenshot(path=str(artefact("playground-about-this-rule.png")))
        with page.expect_popup() as opened:
            about.click()
        rule_page = opened.value
        rule_errors = page_errors(rule_page)
        rule_page.wait_for_load_state()
        _expect_the_rf01_page(rule_page)
        rule_page.screenshot(path=str(artefact("rule-page-from-card.png")), full_page=True)
        assert errors == []
        assert rule_errors == []
