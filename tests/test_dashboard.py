"""/admin/dashboard: behind the admin token as the report is, its numbers are the report's (the
page's tables, its JSON and `cds report --json --by week` agree with each other and with counts
made by hand), its charts are accessible inline SVG that load nothing, and it shows no patient."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, ClassVar

import httpx
import pytest
from fastapi import FastAPI

from cds.app import create_app
from cds.catalogue import Catalogue
from cds.dashboard.figures import SERIES
from cds.migrations import upgrade
from cds.settings import Settings
from cds.store import Store
from tests import feedback_weeks as fw
from tests.conftest import changed, serving
from tests.test_dashboard_report import cds_report_json
from tests.test_openapi import conforms, statuses

pytestmark = pytest.mark.anyio

ADMIN = "admin-secret-for-tests"
AS_ADMIN = {"Authorization": f"Bearer {ADMIN}"}
PERIOD = {"since": fw.SINCE, "until": fw.UNTIL}
COUNTS = list(fw.PERIOD["RB-02", "2.0.0"])


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    children: list[Element] = field(default_factory=list)
    text: str = ""

    def all(self, tag: str, **attrs: str) -> list[Element]:
        """Every element below this one named ``tag`` whose attributes include ``attrs``."""
        found = []
        for child in self.children:
            if child.tag == tag and all(
                child.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items()
            ):
                found.append(child)
            found += child.all(tag, **attrs)
        return found

    def content(self) -> str:
        return self.text + "".join(child.content() for child in self.children)


class _Tree(HTMLParser):
    VOID: ClassVar[set[str]] = {"meta", "input", "br", "img", "link"}

    def __init__(self) -> None:
        super().__init__()
        self.root = Element("document", {})
        self.open = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.open[-1].children.append(element)
        if tag not in self.VOID:
            self.open.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.open[-1].children.append(Element(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        assert self.open[-1].tag == tag, f"</{tag}> closes <{self.open[-1].tag}>"
        self.open.pop()

    def handle_data(self, data: str) -> None:
        self.open[-1].children.append(Element("#text", {}, text=data))


def parse(page: str) -> Element:
    tree = _Tree()
    tree.feed(page)
    tree.close()
    assert tree.open == [tree.root], "unclosed elements"
    return tree.root


def _numbers(row: Element) -> dict[str, Any]:
    """A table row's cells by their data-key, as numbers (a rate as a float, none as None)."""
    cells: dict[str, Any] = {}
    for cell in row.all("td"):
        key, value = cell.attrs.get("data-key"), cell.attrs.get("data-value")
        if key is None or value is None:
            continue
        cells[key] = (float(value) if "." in value else int(value)) if value else None
    return cells


def period_table(page: Element) -> dict[tuple[str, str], dict[str, Any]]:
    (table,) = page.all("table", data_table="period")
    return {
        (r.attrs["data-rule"], r.attrs["data-version"]): _numbers(r)
        for r in table.all("tr")
        if "data-rule" in r.attrs
    }


def weekly_tables(page: Element) -> dict[str, dict[tuple[str, str], dict[str, Any]]]:
    """week -> (rule, version) -> that week's numbers, as the page's weekly tables hold them."""
    weeks: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
    for table in page.all("table", data_table="weekly"):
        for row in table.all("tr"):
            if "data-week" in row.attrs:
                weeks.setdefault(row.attrs["data-week"], {})[
                    table.attrs["data-rule"], table.attrs["data-version"]
                ] = _numbers(row)
    return weeks


def _expected_row(counts: dict[str, int], rate: float | None) -> dict[str, Any]:
    return {**counts, "acceptance_rate": rate}


def _report_rows(rules: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    keys = [*COUNTS, "acceptance_rate"]
    return {(r["rule_id"], r["rule_version"]): {k: r[k] for k in keys} for r in rules}


@pytest.fixture
async def filled(store_settings: Settings) -> Settings:
    await upgrade(store_settings)
    async with Store.from_settings(store_settings) as store:
        await fw.fill(store)
    return store_settings


@pytest.fixture
def admin_app(settings: Settings, catalogue: Catalogue, filled: Settings) -> FastAPI:
    return create_app(
        changed(settings, database_url=filled.database_url, admin_token=ADMIN), catalogue=catalogue
    )


@pytest.fixture
async def client(admin_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(admin_app) as c:
        yield c


async def _page(client: httpx.AsyncClient, **params: str) -> tuple[httpx.Response, Element]:
    response = await client.get("/admin/dashboard", params=params, headers=AS_ADMIN)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    return response, parse(response.text)


async def test_the_dashboard_s_numbers_are_the_report_s_and_the_counts_made_by_hand(
    client: httpx.AsyncClient, filled: Settings
) -> None:
    _, page = await _page(client, **PERIOD)
    printed = cds_report_json(filled, "--by", "week", "--since", fw.SINCE, "--until", fw.UNTIL)

    by_hand = {key: _expected_row(counts, fw.ACCEPTANCE[key]) for key, counts in fw.PERIOD.items()}
    assert period_table(page) == by_hand == _report_rows(printed["rules"])

    weekly = weekly_tables(page)
    assert sorted(weekly) == fw.WEEKS
    for w, week in enumerate(printed["weeks"]):
        on_page = weekly[week["week"]]
        # The page has every rule in every week; a week whose calls never named it counts zero.
        absent = {key: _expected_row(dict.fromkeys(COUNTS, 0), None) for key in fw.PERIOD}
        hand = {
            key: _expected_row(
                c,
                c["accepted"] / (c["accepted"] + c["overridden"])
                if c["accepted"] + c["overridden"]
                else None,
            )
            for key, c in fw.WEEKLY[fw.WEEKS[w]].items()
        }
        assert on_page == absent | hand == absent | _report_rows(week["rules"])


async def test_the_dashboard_s_override_reasons_are_the_report_s(
    client: httpx.AsyncClient, filled: Settings
) -> None:
    _, page = await _page(client, **PERIOD)
    printed = cds_report_json(filled, "--by", "week", "--since", fw.SINCE, "--until", fw.UNTIL)
    on_page = {}
    for section in page.all("section", **{"class": "rule"}):
        rows = [
            {c.attrs["data-key"]: c.content() for c in row.all("td")}
            for table in section.all("table", data_table="reasons")
            for row in table.all("tr")[1:]
        ]
        on_page[section.attrs["data-rule"], section.attrs["data-version"]] = [
            (r["code"], r["display"], int(r["count"])) for r in rows
        ]
    reported = {
        (r["rule_id"], r["rule_version"]): [
            (o["code"], o["display"], o["count"]) for o in r["top_override_reasons"]
        ]
        for r in printed["rules"]
    }
    assert on_page == fw.REASONS == reported


async def test_asked_for_json_the_dashboard_answers_the_weekly_report_cds_report_prints(
    client: httpx.AsyncClient, filled: Settings
) -> None:
    response = await client.get(
        "/admin/dashboard", params=PERIOD, headers={**AS_ADMIN, "Accept": "application/json"}
    )
    assert response.headers["content-type"] == "application/json"
    printed = cds_report_json(filled, "--by", "week", "--since", fw.SINCE, "--until", fw.UNTIL)
    assert response.json() == printed
    report = await client.get("/admin/report", params={**PERIOD, "by": "week"}, headers=AS_ADMIN)
    assert report.json() == printed


async def test_each_week_chart_has_a_bar_per_week_and_count_and_a_point_per_week_with_answers(
    client: httpx.AsyncClient,
) -> None:
    _, page = await _page(client, **PERIOD)
    series = [s.key for s in SERIES]
    for section in page.all("section", **{"class": "rule"}):
        key = (section.attrs["data-rule"], section.attrs["data-version"])
        (columns,) = section.all("svg", data_chart="columns")
        bars = columns.all("rect", **{"class": "bar"})
        assert [(b.attrs["data-category"], b.attrs["data-series"]) for b in bars] == [
            (week, s) for week in fw.WEEKS for s in series
        ]
        shown = [
            int(b.attrs["data-value"]) for b in bars if b.attrs["data-series"] == "times_shown"
        ]
        assert shown == [fw.WEEKLY[w].get(key, {}).get("times_shown", 0) for w in fw.WEEKS]
        (rate,) = section.all("svg", data_chart="rate")
        answered = [
            w for w in fw.WEEKS if (c := fw.WEEKLY[w].get(key)) and c["accepted"] + c["overridden"]
        ]
        assert [
            p.attrs["data-category"] for p in rate.all("circle", **{"class": "point"})
        ] == answered


async def test_every_chart_is_an_image_named_by_its_title_and_described_with_its_numbers(
    client: httpx.AsyncClient,
) -> None:
    _, page = await _page(client, **PERIOD)
    charts = page.all("svg")
    # The overview, then per rule a weekly and a rate chart, and a reasons chart if overridden.
    assert len(charts) == 1 + 2 * len(fw.PERIOD) + sum(1 for r in fw.REASONS.values() if r)
    for chart in charts:
        chart_id = chart.attrs["id"]
        assert chart.attrs["role"] == "img"
        assert chart.attrs["aria-labelledby"] == f"{chart_id}-title {chart_id}-desc"
        (title,) = chart.all("title", id=f"{chart_id}-title")
        (desc,) = chart.all("desc", id=f"{chart_id}-desc")
        assert title.content()
        assert desc.content()
        figure = next(f for f in page.all("figure") if chart in f.all("svg"))
        (details,) = figure.all("details")
        assert details.all("summary")[0].content() == "Numbers behind this chart"
        assert details.all("table")
    (rb01,) = page.all("svg", id="back-to-foot--RB-01--v1.0.0-weekly")
    assert (
        "week 2026-W11: shown 1, would fire (shadow) 0, snoozed 1, accepted 0, overridden 0"
        in rb01.all("desc")[0].content()
    )


async def test_the_page_loads_nothing_and_runs_nothing(client: httpx.AsyncClient) -> None:
    response, page = await _page(client, **PERIOD)
    assert [e.tag for t in ("script", "link", "img", "iframe") for e in page.all(t)] == []
    assert not re.search(r"\ssrc=|url\((?!#)", response.text)
    (style,) = page.all("style")
    digest = base64.b64encode(hashlib.sha256(style.content().encode()).digest()).decode()
    csp = response.headers["content-security-policy"]
    assert csp.startswith(f"default-src 'none'; style-src 'sha256-{digest}';")
    assert "form-action 'self'" in csp


async def test_the_page_shows_no_patient_and_no_clinician_s_comment(
    client: httpx.AsyncClient,
) -> None:
    response, _ = await _page(client, **PERIOD)
    for private in fw.PRIVATE:
        assert private not in response.text


async def test_each_rule_links_to_its_rule_page(client: httpx.AsyncClient) -> None:
    _, page = await _page(client, **PERIOD)
    links = [
        a.attrs["href"]
        for s in page.all("section", **{"class": "rule"})
        for a in s.all("h2")[0].all("a")
    ]
    assert links == [f"https://cds.example.org/rules/{rule}" for rule, _ in sorted(fw.PERIOD)]


async def test_the_period_form_shows_back_what_was_asked(client: httpx.AsyncClient) -> None:
    _, page = await _page(client, **PERIOD, service="back-to-foot")
    (form,) = page.all("form")
    assert form.attrs["method"] == "get"
    assert "action" not in form.attrs  # the form goes to the page's own URL
    values = {i.attrs["name"]: i.attrs["value"] for i in form.all("input")}
    assert values == {"since": fw.SINCE, "until": fw.UNTIL}
    (chosen,) = [o for o in form.all("option") if "selected" in o.attrs]
    assert chosen.attrs["value"] == "back-to-foot"
    assert "2026-03-02T00:00:00+00:00" in [t.attrs["datetime"] for t in page.all("time")]


async def test_the_form_s_empty_fields_mean_the_default_period_and_every_service(
    client: httpx.AsyncClient,
) -> None:
    _, page = await _page(client, since="", until="", service="")
    assert [o for o in page.all("option") if "selected" in o.attrs] == []
    assert "No cards were shown and no rule would have fired in this period." in page.content()


async def test_the_snoozed_count_is_charted_and_tabled_beside_the_others(
    client: httpx.AsyncClient,
) -> None:
    _, page = await _page(client, **PERIOD)
    headings = [th.content() for th in page.all("table", data_table="period")[0].all("th")]
    assert headings[3:6] == ["Shown", "Would fire", "Snoozed"]
    (rb01,) = page.all("svg", id="back-to-foot--RB-01--v1.0.0-weekly")
    legend = [g.attrs["data-series"] for g in rb01.all("g", **{"class": "legend-item"})]
    assert legend == ["times_shown", "would_fire", "snoozed", "accepted", "overridden"]
    snoozed = [b.attrs["data-value"] for b in rb01.all("rect", data_series="snoozed")]
    assert snoozed == ["0", "1", "0"]


async def test_the_dashboard_needs_the_admin_token_as_the_report_does(
    client: httpx.AsyncClient,
) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {ADMIN}"}):
        page = await client.get("/admin/dashboard", headers=headers)
        report = await client.get("/admin/report", headers=headers)
        assert page.status_code == report.status_code == 401
        assert page.json() == report.json()
        assert page.headers["www-authenticate"] == report.headers["www-authenticate"] == "Bearer"


async def test_without_an_admin_token_there_is_no_dashboard(
    settings: Settings, catalogue: Catalogue
) -> None:
    async with serving(create_app(settings, catalogue=catalogue)) as plain:
        page = await plain.get("/admin/dashboard", headers=AS_ADMIN)
        assert page.status_code == 404
        assert page.json() == (await plain.get("/admin/report", headers=AS_ADMIN)).json()


async def test_bad_period_bounds_and_services_are_refused_as_the_report_refuses_them(
    client: httpx.AsyncClient,
) -> None:
    for params in ({"since": "yesterday"}, {"until": "2026-13-01"}, {"service": "nope"}):
        page = await client.get("/admin/dashboard", params=params, headers=AS_ADMIN)
        report = await client.get("/admin/report", params=params, headers=AS_ADMIN)
        assert page.status_code == report.status_code
        assert page.json() == report.json()
        assert page.json()["resourceType"] == "OperationOutcome"


async def test_a_period_too_long_to_chart_by_week_is_a_400(client: httpx.AsyncClient) -> None:
    params = {"since": "2024-01-01", "until": "2025-12-31"}
    page = await client.get("/admin/dashboard", params=params, headers=AS_ADMIN)
    assert page.status_code == 400
    (issue,) = page.json()["issue"]
    assert "at most 53 ISO weeks" in issue["diagnostics"]
    report = await client.get("/admin/report", params={**params, "by": "week"}, headers=AS_ADMIN)
    assert report.json() == page.json()


async def test_the_dashboard_and_its_json_are_documented_as_answered(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()
    assert statuses(document, "get", "/admin/dashboard") == {200, 400, 401, 404, 503}
    answers = document["paths"]["/admin/dashboard"]["get"]["responses"]["200"]["content"]
    assert set(answers) == {"text/html", "application/json"}
    weekly = await client.get(
        "/admin/dashboard", params=PERIOD, headers={**AS_ADMIN, "Accept": "application/json"}
    )
    assert conforms(document, "WeeklyReport", weekly.json()) == []
    report = await client.get("/admin/report", params={**PERIOD, "by": "week"}, headers=AS_ADMIN)
    assert conforms(document, "WeeklyReport", report.json()) == []
