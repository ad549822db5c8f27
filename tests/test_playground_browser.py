"""The playground in Debian's Chromium: pick a demo patient, see its cards, accept a suggestion."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI
from playwright.sync_api import Locator, Page, expect, sync_playwright

from cds.demo_server import create_demo_app, demo_settings
from cds.settings import Settings
from cds.store import RuleStats, Store
from cds.store.schema import feedback

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 15_000
COMMENT = "seen in clinic today"


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is missing: apt-get install chromium"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def demo_settings_for_test(tmp_path: Path) -> Settings:
    port = _free_port()
    return demo_settings(
        env="test",
        port=port,
        public_base_url=f"http://127.0.0.1:{port}",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'cds.db'}",
    )


@pytest.fixture
def server(demo_settings_for_test: Settings) -> Iterator[str]:
    """The demo app (service, playground, demo FHIR endpoint) under uvicorn on a free port."""
    _require_chromium()
    settings = demo_settings_for_test
    app = create_demo_app(settings)
    assert isinstance(app, FastAPI)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=settings.port,
        log_level="warning",
        # Only what the test needs: no websockets stack, the pure-Python HTTP parser.
        ws="none",
        http="h11",
        loop="asyncio",
        lifespan="on",
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started:
        assert thread.is_alive(), "uvicorn stopped during startup"
        assert time.monotonic() < deadline, "uvicorn did not start within 20 s"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{settings.port}"
    finally:
        uv.should_exit = True
        thread.join(timeout=10)


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


def _dismiss_with_a_reason_and_a_comment(page: Page, red_flag: Locator) -> None:
    # Dismissing with a reason and a comment sends an "overridden" feedback item with
    # that Coding and the clinician's words as userComment.
    red_flag.get_by_label("Override reason").select_option(index=1)
    red_flag.get_by_label("Comment").fill(COMMENT)
    red_flag.get_by_role("button", name="Dismiss").click()
    answer = page.locator("#feedback-response")
    expect(answer).to_have_attribute("data-status", "200", timeout=TIMEOUT_MS)
    expect(page.locator("#feedback")).to_contain_text('"outcome": "overridden"')
    expect(page.locator("#feedback")).to_contain_text(f'"userComment": "{COMMENT}"')
    expect(red_flag.get_by_role("button", name="Dismiss")).to_be_disabled()


def _accept_one_suggestion_of_an_at_most_one_card(page: Page, card: Locator) -> None:
    # RB-02 says selectionBehavior "at-most-one": one accepted, its others close.
    suggestions = card.locator("button[data-suggestion]")
    suggestions.first.click()
    answer = page.locator("#feedback-response")
    expect(answer).to_have_attribute("data-status", "200", timeout=TIMEOUT_MS)
    expect(suggestions.nth(1)).to_be_disabled()


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
    # The resource the EHR would create on accepting, not only the feedback JSON.
    created = page.get_by_label("Resource the action would create").first
    expect(created).to_contain_text('"resourceType": "ServiceRequest"')
    expect(created).to_contain_text('"intent"')
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


def test_a_clinician_sees_the_expected_cards_and_accepting_a_suggestion_stores_feedback(
    server: str, demo_settings_for_test: Settings, tmp_path: Path
) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1100, "height": 1400},
        )
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{server}/playground")
            expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=TIMEOUT_MS)

            # S06 through the demo FHIR server: no prefetch, the service fetches over HTTP.
            page.get_by_label("Demo patient").select_option("demo-s06")
            page.get_by_label("Let the service fetch it from the demo FHIR server").check()
            expect(page.locator("#request-json")).to_contain_text('"fhirServer"')
            expect(page.locator("#request-json")).not_to_contain_text('"prefetch"')
            page.get_by_role("button", name="Send to the CDS service").click()
            red_flag = page.locator('[data-rule="RF-01"]')
            expect(red_flag).to_have_class("card card--critical", timeout=TIMEOUT_MS)
            _dismiss_with_a_reason_and_a_comment(page, red_flag)
            # S01 with full prefetch: the RB-02 warning card, then accept its first suggestion.
            page.get_by_label("Demo patient").select_option("demo-s01")
            # The previous patient's feedback is gone from the panel.
            expect(page.locator("#feedback")).not_to_contain_text("overridden")
            expect(page.locator("#feedback")).to_contain_text("Accept a suggestion")
            page.get_by_label("Send it as prefetch").check()
            expect(page.locator("#request-json")).to_contain_text('"prefetch"')
            page.get_by_role("button", name="Send to the CDS service").click()
            card = page.locator('[data-rule="RB-02"]')
            expect(card).to_have_class("card card--warning", timeout=TIMEOUT_MS)
            expect(page.locator('[data-rule="RF-01"]')).to_have_count(0)
            expect(card.locator(".card__indicator")).to_have_text("warning")
            expect(card.locator(".card__detail strong").first).to_be_visible()
            # Markdown backslash escapes are rendered as the literal characters.
            expect(card.locator(".card__detail")).to_contain_text("[Score]")
            expect(card.locator(".card__detail")).not_to_contain_text("\\[")
            _accept_one_suggestion_of_an_at_most_one_card(page, card)
            # S04: the DM-01 card says "any", so two of its suggestions can be accepted.
            page.get_by_label("Demo patient").select_option("demo-s04")
            page.get_by_role("button", name="Send to the CDS service").click()
            card = page.locator('[data-rule="DM-01"]')
            expect(card).to_have_class("card card--warning", timeout=TIMEOUT_MS)
            _accept_two_suggestions_of_a_select_any_card(page, card)
            page.screenshot(path=str(tmp_path / "playground.png"), full_page=True)
            assert errors == []
        finally:
            browser.close()

    stats = _rule_stats(demo_settings_for_test, "back-to-foot")
    assert stats["RB-02"].accepted == 1
    assert stats["DM-01"].accepted == 2
    assert _stored_comments(demo_settings_for_test) == [COMMENT]
    assert (stats["RF-01"].times_shown, stats["RF-01"].overridden) == (1, 1)
    reason = stats["RF-01"].top_override_reasons[0]
    assert reason.code == "already-assessed-today"


def test_accepting_an_at_most_one_suggestion_closes_the_card(server: str, tmp_path: Path) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
        )
        try:
            page = browser.new_page()
            page.goto(f"{server}/playground")
            expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=TIMEOUT_MS)
            page.get_by_label("Demo patient").select_option("demo-s14a")
            page.get_by_label("Hook", exact=True).select_option("order-sign")
            expect(page.locator("#request-json")).to_contain_text('"draftOrders"')
            page.get_by_role("button", name="Send to the CDS service").click()
            card = page.locator('[data-rule="OS-01"]')
            expect(card).to_be_visible(timeout=TIMEOUT_MS)
            card.locator("button[data-suggestion]").first.click()
            expect(page.locator("#feedback-response")).to_have_attribute(
                "data-status", "200", timeout=TIMEOUT_MS
            )
            # selectionBehavior "at-most-one": nothing on the card is left to press.
            expect(card).to_have_class("card card--info card--handled")
            for control in card.locator("button, select, input").all():
                expect(control).to_be_disabled()
        finally:
            browser.close()
