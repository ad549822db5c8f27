"""The playground in Debian's Chromium: pick a demo patient and a hook, see its cards as an EHR
shows them (at desktop and EHR-sidebar widths), accept a suggestion or dismiss a card."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from playwright.sync_api import Locator, Page, Route, expect

from cds.settings import Settings
from cds.store import RuleStats, Store
from cds.store.schema import feedback
from tests.chromium import TIMEOUT_MS, artefact, chromium, page_errors, require_chromium
from tests.demo_app import browser_demo_settings, demo_served

pytestmark = pytest.mark.browser

COMMENT = "seen in clinic today"
WIDE = {"width": 1100, "height": 1400}

# Line boxes ended before the text reached the block's edge although the next word would have
# fitted: the ragged breaks of hard-wrapped source shown line for line, as GFM never does.
FORCED_BREAKS = """(root) => {
  const forced = [];
  for (const block of root.querySelectorAll("p, li")) {
    const style = getComputedStyle(block);
    const right = block.getBoundingClientRect().right - parseFloat(style.paddingRight);
    const space = parseFloat(style.fontSize) * 0.4;
    const words = [];
    const walker = document.createTreeWalker(block, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const match of node.data.matchAll(/\\S+/g)) {
        const range = document.createRange();
        range.setStart(node, match.index);
        range.setEnd(node, match.index + match[0].length);
        const rects = range.getClientRects();
        // A word split over two lines (at a hyphen) breaks the chain of neighbours.
        words.push(rects.length === 1 ? { text: match[0], rect: rects[0] } : null);
      }
    }
    for (let i = 1; i < words.length; i++) {
      const before = words[i - 1], word = words[i];
      if (!before || !word || word.rect.top < before.rect.bottom - 1) continue;
      if (before.rect.right + space + word.rect.width < right - 2) {
        forced.push(`${before.text} | ${word.text}`);
      }
    }
  }
  return forced;
}"""

# What a reader at this width cannot see: the document wider than the window, an element
# poking out of it, or text cut off by a box that hides its overflow. A <pre> scrolls on purpose.
LAYOUT_FAULTS = """() => {
  const width = document.documentElement.clientWidth;
  const faults = [];
  if (document.documentElement.scrollWidth > window.innerWidth) {
    faults.push(`document ${document.documentElement.scrollWidth} px wide`);
  }
  for (const el of document.body.querySelectorAll("*")) {
    const rect = el.getBoundingClientRect();
    if (!rect.width && !rect.height) continue;
    const name = `${el.tagName.toLowerCase()}.${el.className} "${el.textContent.slice(0, 30)}"`;
    if (rect.left < -0.5 || rect.right > width + 0.5) {
      faults.push(`${name} spans ${rect.left}-${rect.right} px`);
    }
    const overflow = getComputedStyle(el).overflowX;
    if (el.tagName !== "PRE" && overflow !== "visible" && el.scrollWidth > el.clientWidth + 1) {
      faults.push(`${name} clips ${el.scrollWidth - el.clientWidth} px`);
    }
  }
  return faults;
}"""


@pytest.fixture
def demo_settings_for_test(tmp_path: Path) -> Settings:
    return browser_demo_settings(tmp_path)


@pytest.fixture
def server(demo_settings_for_test: Settings) -> Iterator[str]:
    """The demo app (service, playground, demo FHIR endpoint) under uvicorn on a free port."""
    require_chromium()
    with demo_served(demo_settings_for_test) as url:
        yield url


def _open(page: Page, url: str) -> None:
    page.goto(url)
    expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=TIMEOUT_MS)


def _send(page: Page, patient: str, rule: str, hook: str | None = None) -> Locator:
    page.get_by_label("Demo patient").select_option(patient)
    if hook is not None:
        page.get_by_label("Hook", exact=True).select_option(hook)
    page.get_by_role("button", name="Send to the CDS service").click()
    card = page.locator(f'[data-rule="{rule}"]')
    expect(card).to_be_visible(timeout=TIMEOUT_MS)
    return card


def _rule_stats(settings: Settings, service_id: str) -> dict[str, RuleStats]:
    async def read() -> dict[str, RuleStats]:
        # The store stamps the real time (the demo fixes only the evaluation's "now").
        now = datetime.now(UTC)
        async with Store.from_settings(settings) as store:
            report = await store.rule_report(service_id, now - timedelta(days=1), now)
        return {rule.rule_id: rule for rule in report.rules}

    return asyncio.run(read())


def _stored_comments(settings: Settings) -> list[str]:
    async def read() -> list[str]:
        async with Store.from_settings(settings) as store, store.engine.connect() as conn:
            rows = await conn.execute(sa.select(feedback.c.user_comment))
            return [comment for (comment,) in rows if comment]

    return asyncio.run(read())


def _expect_accepted_with_a_service_request_preview(card: Locator) -> None:
    expect(card).to_have_attribute("data-outcome", "accepted")
    expect(card.locator(".card__outcome-label")).to_have_text("Accepted")
    preview = card.locator('.preview[data-resource-type="ServiceRequest"]').first
    expect(preview).to_be_visible()
    expect(preview.locator(".preview__title")).to_contain_text("Creates ServiceRequest: ")
    expect(preview).to_contain_text("draft · proposal")
    # The FHIR JSON of the resource, one click away.
    created = card.get_by_label("Resource the action would create").first
    expect(created).to_contain_text('"resourceType": "ServiceRequest"')
    expect(created).to_contain_text('"intent"')


def _dismiss_with_a_reason_and_a_comment(page: Page, red_flag: Locator) -> None:
    # Dismissing with a reason and a comment sends an "overridden" feedback item with
    # that Coding and the clinician's words as userComment, and labels the card.
    red_flag.get_by_label("Override reason").select_option(index=1)
    red_flag.get_by_label("Comment").fill(COMMENT)
    red_flag.get_by_role("button", name="Dismiss").click()
    answer = page.locator("#feedback-response")
    expect(answer).to_have_attribute("data-status", "200", timeout=TIMEOUT_MS)
    expect(page.locator("#feedback")).to_contain_text('"outcome": "overridden"')
    expect(page.locator("#feedback")).to_contain_text(f'"userComment": "{COMMENT}"')
    expect(red_flag.get_by_role("button", name="Dismiss")).to_be_disabled()
    expect(red_flag).to_have_attribute("data-outcome", "dismissed")
    expect(red_flag.locator(".card__outcome-label")).to_have_text(
        "Dismissed: Already assessed for cauda equina in this visit"
    )
    expect(red_flag.locator(".card__outcome")).to_contain_text(COMMENT)


def _accept_one_suggestion_of_an_at_most_one_card(page: Page, card: Locator) -> None:
    # RB-02 says selectionBehavior "at-most-one": one accepted, its others close.
    suggestions = card.locator("button[data-suggestion]")
    suggestions.first.click()
    answer = page.locator("#feedback-response")
    expect(answer).to_have_attribute("data-status", "200", timeout=TIMEOUT_MS)
    expect(suggestions.nth(1)).to_be_disabled()
    _expect_accepted_with_a_service_request_preview(card)


def _accept_two_suggestions_of_a_select_any_card(page: Page, card: Locator) -> None:
    answer = page.locator("#feedback-response")
    suggestions = card.locator("button[data-suggestion]")
    suggestion = suggestions.first
    suggestion_uuid = suggestion.get_attribute("data-suggestion")
    assert suggestion_uuid
    suggestion.click()

    expect(page.locator("#feedback")).to_contain_text('"outcome": "accepted"')
    expect(answer).to_have_attribute("data-status", "200", timeout=TIMEOUT_MS)
    expect(answer).to_have_attribute("data-stored", "1")
    expect(page.locator("#feedback")).to_contain_text(suggestion_uuid)
    _expect_accepted_with_a_service_request_preview(card)
    # DM-01 says selectionBehavior "any": its other suggestions stay available.
    expect(suggestion).to_be_disabled()
    expect(suggestion).to_have_attribute("aria-pressed", "true")
    second = suggestions.nth(1)
    expect(second).to_be_enabled()
    expect(card.get_by_role("button", name="Dismiss")).to_be_disabled()
    second_uuid = second.get_attribute("data-suggestion")
    assert second_uuid
    second.click()
    expect(page.locator("#feedback")).to_contain_text(second_uuid, timeout=TIMEOUT_MS)
    expect(answer).to_have_attribute("data-stored", "1")
    expect(second).to_be_disabled()
    # One label, and a preview per accepted suggestion.
    expect(card.locator(".card__outcome-label")).to_have_count(1)
    expect(card.locator(".card__preview")).to_have_count(2)


def test_a_clinician_sees_the_expected_cards_and_accepting_a_suggestion_stores_feedback(
    server: str, demo_settings_for_test: Settings, tmp_path: Path
) -> None:
    with chromium(tmp_path / "chromium-profile", viewport=WIDE) as browser:
        page = browser.new_page()
        errors = page_errors(page)
        _open(page, f"{server}/playground")

        # S06 through the demo FHIR server: no prefetch, the service fetches over HTTP.
        page.get_by_label("Demo patient").select_option("demo-s06")
        page.get_by_label("Let the service fetch it from the demo FHIR server").check()
        expect(page.locator("#request-json")).to_contain_text('"fhirServer"')
        expect(page.locator("#request-json")).not_to_contain_text('"prefetch"')
        red_flag = _send(page, "demo-s06", "RF-01")
        expect(red_flag).to_have_class("card card--critical")
        _dismiss_with_a_reason_and_a_comment(page, red_flag)
        # S01 with full prefetch: the RB-02 warning card, then accept its first suggestion.
        page.get_by_label("Demo patient").select_option("demo-s01")
        # The previous patient's feedback is gone from the panel.
        expect(page.locator("#feedback")).not_to_contain_text("overridden")
        expect(page.locator("#feedback")).to_contain_text("Accept a suggestion")
        page.get_by_label("Send it as prefetch").check()
        expect(page.locator("#request-json")).to_contain_text('"prefetch"')
        card = _send(page, "demo-s01", "RB-02")
        expect(card).to_have_class("card card--warning")
        expect(page.locator('[data-rule="RF-01"]')).to_have_count(0)
        expect(card.locator(".card__indicator")).to_have_text("warning")
        expect(card.locator(".card__detail strong").first).to_be_visible()
        # Markdown backslash escapes are rendered as the literal characters.
        expect(card.locator(".card__detail")).to_contain_text("[Score]")
        expect(card.locator(".card__detail")).not_to_contain_text("\\[")
        _accept_one_suggestion_of_an_at_most_one_card(page, card)
        # S04: the DM-01 card says "any", so two of its suggestions can be accepted.
        card = _send(page, "demo-s04", "DM-01")
        expect(card).to_have_class("card card--warning")
        _accept_two_suggestions_of_a_select_any_card(page, card)
        page.screenshot(path=str(artefact("playground-wide.png")), full_page=True)
        assert errors == []

    stats = _rule_stats(demo_settings_for_test, "back-to-foot")
    assert stats["RB-02"].accepted == 1
    assert stats["DM-01"].accepted == 2
    assert _stored_comments(demo_settings_for_test) == [COMMENT]
    assert (stats["RF-01"].times_shown, stats["RF-01"].overridden) == (1, 1)
    reason = stats["RF-01"].top_override_reasons[0]
    assert reason.code == "already-assessed-today"


@pytest.mark.parametrize("width", [420, 360])
def test_at_ehr_sidebar_widths_cards_reflow_and_nothing_overflows_or_is_clipped(
    server: str, tmp_path: Path, width: int
) -> None:
    with chromium(tmp_path / "chromium-profile", viewport={"width": width, "height": 900}) as ctx:
        page = ctx.new_page()
        errors = page_errors(page)
        _open(page, f"{server}/playground")
        card = _send(page, "demo-s01", "RB-02")
        detail = card.locator(".card__detail")
        # The hard-wrapped YAML paragraph is one reflowed paragraph, as GFM shows it.
        expect(detail.locator("br")).to_have_count(0)
        expect(detail.locator("p").first).to_contain_text(
            "Persistent radicular symptoms. Most radicular pain improves within 6 weeks. "
            "Persistence despite conservative care"
        )
        expect(detail.locator("li")).to_have_count(3)
        assert detail.evaluate(FORCED_BREAKS) == []
        assert page.evaluate(LAYOUT_FAULTS) == []

        card.locator("button[data-suggestion]").first.click()
        _expect_accepted_with_a_service_request_preview(card)
        card.locator(".preview__json summary").first.click()
        page.locator("#feedback-response").scroll_into_view_if_needed()
        assert page.evaluate(LAYOUT_FAULTS) == []
        if width == 420:
            page.screenshot(path=str(artefact("playground-420.png")), full_page=True)
        assert errors == []


def test_the_hook_list_is_what_discovery_lists_and_order_select_fires_the_order_select_service(
    server: str, tmp_path: Path
) -> None:
    discovery = httpx.get(f"{server}/cds-services").json()
    with chromium(tmp_path / "chromium-profile", viewport=WIDE) as browser:
        page = browser.new_page()
        errors = page_errors(page)
        # The demo's bare address leads to the playground.
        _open(page, server)
        assert page.url == f"{server}/playground"
        hooks = page.get_by_label("Hook", exact=True)
        offered = hooks.locator("option").evaluate_all("options => options.map(o => o.value)")
        assert sorted(offered) == sorted(s["hook"] for s in discovery["services"])
        assert "order-select" in offered
        # A patient without a draft order can fire patient-view only.
        page.get_by_label("Demo patient").select_option("demo-s01")
        expect(hooks.locator('option[value="order-select"]')).to_be_disabled()
        expect(hooks).to_have_value("patient-view")

        card = _send(page, "demo-s14a", "OS-01", hook="order-select")
        expect(page.locator("#service-url")).to_have_text("/cds-services/back-to-foot-order-select")
        request = json.loads(page.locator("#request-json").text_content() or "{}")
        assert request["context"]["selections"] == ["ServiceRequest/demo-s14a-draft-mri"]
        # OS-01's first suggestion swaps the draft MRI for physiotherapy: the preview names both.
        card.locator("button[data-suggestion]").first.click()
        expect(card.locator(".card__outcome-label")).to_have_text("Accepted", timeout=TIMEOUT_MS)
        removed = card.locator('.preview[data-action="delete"]')
        expect(removed).to_contain_text("Removes ")
        expect(removed).to_contain_text("ServiceRequest/demo-s14a-draft-mri")
        expect(card.locator('.preview[data-action="create"]')).to_contain_text(
            "Creates ServiceRequest: "
        )
        assert errors == []


def test_accepting_an_at_most_one_suggestion_closes_the_card(server: str, tmp_path: Path) -> None:
    with chromium(tmp_path / "chromium-profile") as browser:
        page = browser.new_page()
        _open(page, f"{server}/playground")
        card = _send(page, "demo-s14a", "OS-01", hook="order-sign")
        expect(page.locator("#request-json")).to_contain_text('"draftOrders"')
        card.locator("button[data-suggestion]").first.click()
        expect(page.locator("#feedback-response")).to_have_attribute(
            "data-status", "200", timeout=TIMEOUT_MS
        )
        # selectionBehavior "at-most-one": nothing on the card is left to press.
        expect(card).to_have_class("card card--info card--handled")
        for control in card.locator("button, select, input").all():
            expect(control).to_be_disabled()


HOSTILE_DETAIL = (
    "<img src=x onerror=\"document.body.dataset.pwned='1'\"> <script>document.body.dataset"
    ".pwned='1'</script>\n\n[click](javascript:document.body.dataset.pwned='1') and "
    "[guideline](https://www.nice.org.uk/guidance/ng59)"
)


def test_card_text_cannot_inject_html_or_script_links(server: str, tmp_path: Path) -> None:
    """A service answering with HTML in card text (ours never does) gets it shown as text."""

    def hostile(route: Route) -> None:
        card: dict[str, Any] = {
            "uuid": "0f9c1a52-3b8e-4d57-9a3e-2f6b7c1d8e90",
            "summary": "<b>summary</b>",
            "detail": HOSTILE_DETAIL,
            "indicator": "info",
            "source": {"label": "Test", "topic": {"code": "HOSTILE"}},
        }
        route.fulfill(json={"cards": [card]})

    with chromium(tmp_path / "chromium-profile") as browser:
        page = browser.new_page()
        errors = page_errors(page)
        _open(page, f"{server}/playground")
        page.route("**/cds-services/back-to-foot", hostile)
        card = _send(page, "demo-s01", "HOSTILE")
        detail = card.locator(".card__detail")
        expect(detail).to_contain_text("<img src=x")
        expect(detail).to_contain_text("<script>")
        expect(card.locator(".card__summary")).to_have_text("<b>summary</b>")
        expect(detail.locator("img, script, [onerror]")).to_have_count(0)
        links = detail.locator("a")
        expect(links).to_have_count(1)
        expect(links).to_have_attribute("href", "https://www.nice.org.uk/guidance/ng59")
        expect(links).to_have_attribute("rel", "noopener noreferrer")
        assert page.locator("body").get_attribute("data-pwned") is None
        assert errors == []
