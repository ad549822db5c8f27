"""A page for every rule: /rules and /rules/{id} show each rule's governance, evidence, data,
value sets and its logic in words generated from its own definition; HTML or JSON."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import AsyncIterator
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import yaml

from cds.app import create_app
from cds.catalogue import Catalogue
from cds.errors import CdsError, ConfigError
from cds.invocation import evaluate_offline
from cds.rules.clauses import CLAUSES
from cds.rules.schema import Node, walk
from cds.settings import PROJECT_ROOT, Settings
from tests.conftest import changed
from tests.wire_rules import empty_values

pytestmark = pytest.mark.anyio

BASE = "https://cds.example.org"
HTML = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
JSON = {"accept": "application/json"}
COMBINATORS = {"all", "any", "not"}
CAUDA_EQUINA = PROJECT_ROOT / "tests" / "cases" / "back-to-foot" / "s06-cauda-equina.json"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return changed(settings, public_base_url=BASE)


@pytest.fixture
async def client(settings: Settings, catalogue: Catalogue) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, catalogue=catalogue)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c,
    ):
        yield c


async def _client_on(settings: Settings, rules: Path, cards: Path) -> httpx.AsyncClient:
    app = create_app(changed(settings, rules_dir=rules, cards_dir=cards))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)


def _copied_content(tmp_path: Path) -> tuple[Path, Path]:
    rules, cards = tmp_path / "rules", tmp_path / "cards"
    shutil.copytree(PROJECT_ROOT / "rules", rules)
    shutil.copytree(PROJECT_ROOT / "cards", cards)
    return rules, cards


class _Outline(HTMLParser):
    """What a reader and a screen reader rely on: the page's language, its headings in order,
    table header cells, and every address the page loads or links to."""

    def __init__(self) -> None:
        super().__init__()
        self.lang: str | None = None
        self.headings: list[int] = []
        self.header_cells = 0
        self.loads: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "html":
            self.lang = found.get("lang")
        if re.fullmatch(r"h[1-6]", tag):
            self.headings.append(int(tag[1]))
        if tag == "th" and found.get("scope") in ("col", "row"):
            self.header_cells += 1
        if tag in ("script", "img", "iframe") or (tag == "link" and found.get("rel") != "icon"):
            self.loads.append(found.get("src") or found.get("href") or tag)
        if tag == "a" and found.get("href"):
            self.links.append(str(found["href"]))


def _outline(html: str) -> _Outline:
    outline = _Outline()
    outline.feed(html)
    return outline


def _clauses(catalogue: Catalogue) -> list[tuple[str, str, Any]]:
    return [
        (rule.key, name, value)
        for rule in catalogue.rules.values()
        for _, tree in rule.trees()
        for node, _ in walk(tree)
        for name, value in [node.branch]
        if name not in COMBINATORS
    ]


def test_every_clause_kind_a_rule_can_hold_has_an_entry_in_the_registry() -> None:
    kinds = {name.rstrip("_") for name in Node.model_fields} - COMBINATORS
    assert kinds == set(CLAUSES)


# One node of each kind, as a rule file writes it: a new kind of clause must add its example,
# and so its words, before this passes.
EXAMPLES = {
    "condition": {"condition": {"valuesets": ["radic"], "within": "P6W", "laterality": "left"}},
    "observation": {"observation": {"valuesets": ["hba1c"], "unit": "%", "gte": 6.5}},
    "done": {"done": {"valuesets": ["emg"], "within": "P12M", "in": ["procedure"]}},
    "medication": {"medication": {"valuesets": ["metformin"]}},
    "draft": {"draft": {"valuesets": ["ncs-full"], "reason": ["radic"]}},
    "patient": {"patient": {"minAge": 16}},
    "fact": {"fact": {"name": "bilateral", "valuesets": ["radic"], "within": "P14D"}},
    "rule": {"rule": "RF-01"},
}


def _undescribed(clauses: list[tuple[str, str, Any]]) -> list[str]:
    undescribed = []
    for where, name, clause in clauses:
        words = CLAUSES[name].describe(clause)
        if not words.strip() or not words.endswith(".") or "None" in words:
            undescribed.append(f"{where}: {name}: {words!r}")
    return undescribed


def test_every_kind_of_clause_describes_itself() -> None:
    assert set(EXAMPLES) == set(CLAUSES)
    nodes = [Node.model_validate(example) for example in EXAMPLES.values()]
    assert _undescribed([("example", *node.branch) for node in nodes]) == []


def test_every_clause_of_every_rule_of_the_catalogue_describes_itself(
    catalogue: Catalogue,
) -> None:
    clauses = _clauses(catalogue)
    assert len(clauses) > 100
    assert _undescribed(clauses) == []


async def test_the_index_lists_every_service_and_links_each_of_its_rules(
    client: httpx.AsyncClient, catalogue: Catalogue
) -> None:
    page = await client.get("/rules", headers=HTML)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    links = _outline(page.text).links
    for service in catalogue.services.values():
        assert service.title in page.text
        for rule in service.rules:
            assert f"{BASE}/rules/{rule.id}" in links
    as_json = (await client.get("/rules", headers=JSON)).json()
    assert [s["id"] for s in as_json["services"]] == list(catalogue.services)
    assert empty_values(as_json) == []
    shown = {r["id"] for s in as_json["services"] for r in s["rules"]}
    assert shown == {rule.id for rule in catalogue.rules.values()}


async def test_every_rule_page_shows_its_governance_evidence_data_and_value_set_codes(
    client: httpx.AsyncClient, catalogue: Catalogue
) -> None:
    for rule_id, record in catalogue.governance.records.items():
        page = await client.get(f"/rules/{rule_id}", headers=HTML)
        assert page.status_code == 200, rule_id
        text = page.text
        outline = _outline(text)
        for shown in (
            record.version,
            record.status,
            record.last_reviewed.isoformat(),
            record.next_review.isoformat(),
            *record.reads,
        ):
            assert shown in text, f"{rule_id} lacks {shown}"
        for written in (record.owner, record.intended_use, *record.cautions):
            assert _escaped(written) in text, f"{rule_id} lacks {written}"
        assert {c.url for c in record.evidence} <= set(outline.links)
        for rule in (r for r in catalogue.rules.values() if r.id == rule_id):
            assert _escaped(rule.name) in text
        page_json = (await client.get(f"/rules/{rule_id}", headers=JSON)).json()
        for vs in page_json["valueSets"]:
            for code in catalogue.valuesets[vs["id"]].file.codes:  # type: ignore[union-attr]
                assert f"<code>{code.code}</code>" in text, f"{rule_id}: {vs['id']} {code.code}"
        assert len(page_json["sourceAttributes"]) == 13


def _escaped(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


async def test_a_rule_page_is_accessible_printable_and_loads_nothing_from_elsewhere(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/rules/RF-03", headers=HTML)
    outline = _outline(page.text)
    assert outline.lang == "en"
    assert outline.headings[0] == 1
    assert outline.headings.count(1) == 1
    # No heading level is skipped on the way down.
    assert all(b - a <= 1 for a, b in zip(outline.headings, outline.headings[1:], strict=False))
    assert outline.header_cells > 20
    assert outline.loads == [f"{BASE}/rules/rule-pages.css"]
    assert "script-src" not in page.headers["content-security-policy"]
    assert "default-src 'none'" in page.headers["content-security-policy"]
    style = await client.get("/rules/rule-pages.css")
    assert style.status_code == 200
    assert "@media print" in style.text


async def test_the_variants_of_a_rule_share_one_page(
    client: httpx.AsyncClient, catalogue: Catalogue
) -> None:
    page = (await client.get("/rules/OS-02", headers=JSON)).json()
    keys = [variant["logic"]["key"] for variant in page["variants"]]
    assert keys == [key for key, rule in catalogue.rules.items() if rule.id == "OS-02"]
    assert len(keys) == 3
    html = (await client.get("/rules/OS-02", headers=HTML)).text
    assert all(key in html for key in keys)


async def test_the_logic_is_the_rules_own_tree_in_words(
    client: httpx.AsyncClient, catalogue: Catalogue
) -> None:
    page = (await client.get("/rules/OS-02", headers=JSON)).json()
    no_emg = page["variants"][0]["logic"]["firesWhen"]
    assert no_emg["text"] == "All of these hold:"
    draft = catalogue.rules["OS-02/no-emg"].when.all_[0].draft  # type: ignore[index]
    assert no_emg["children"][0] == {
        "text": CLAUSES["draft"].describe(draft),
        "valuesets": ["ncs-full"],
    }
    assert no_emg["children"][1]["text"] == "This does not hold:"
    assert empty_values(page) == []


async def test_changing_a_rule_changes_its_page_and_nothing_is_written_by_hand(
    settings: Settings, tmp_path: Path
) -> None:
    rules, cards = _copied_content(tmp_path)
    service = rules / "back-to-foot-order-sign.yaml"
    text = service.read_text(encoding="utf-8")
    assert "olderThan: P42D" in text
    service.write_text(text.replace("olderThan: P42D", "olderThan: P70D"), encoding="utf-8")
    async with await _client_on(settings, rules, cards) as c:
        page = (await c.get("/rules/OS-01", headers=HTML)).text
    assert "dated more than 70 days ago" in page
    assert "42 days" not in page


async def test_every_text_from_the_yaml_files_is_escaped(
    settings: Settings, tmp_path: Path
) -> None:
    rules, cards = _copied_content(tmp_path)
    record = rules / "governance" / "RB-01.yaml"
    data = yaml.safe_load(record.read_text(encoding="utf-8"))
    data["cautions"].append('<script>alert("x")</script> & <b>bold</b>')
    data["owner"] = "Spine <team> & co"
    record.write_text(yaml.safe_dump(data), encoding="utf-8")
    async with await _client_on(settings, rules, cards) as c:
        page = (await c.get("/rules/RB-01", headers=HTML)).text
    for raw in ("<script>", "<b>", "<team>"):
        assert raw not in page
    assert '&lt;script&gt;alert("x")&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;' in page
    assert "Spine &lt;team&gt; &amp; co" in page


async def test_an_unknown_rule_is_a_404_page_or_an_operation_outcome(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/rules/<XX-99>", headers=HTML)
    assert page.status_code == 404
    assert "&lt;XX-99&gt;" in page.text
    assert "<XX-99>" not in page.text
    outcome = await client.get("/rules/XX-99", headers=JSON)
    assert outcome.status_code == 404
    assert outcome.json()["resourceType"] == "OperationOutcome"


async def test_a_rule_past_its_review_date_is_shown_overdue(
    settings: Settings, catalogue: Catalogue
) -> None:
    record = catalogue.governance.records["RF-01"]
    later = f"{record.next_review.replace(year=record.next_review.year + 1).isoformat()}T12:00:00Z"
    app = create_app(changed(settings, fixed_now=later), catalogue=catalogue)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        page = (await c.get("/rules/RF-01", headers=JSON)).json()
        html = (await c.get("/rules/RF-01", headers=HTML)).text
    assert page["reviewOverdue"] is True
    assert "overdue" in html


async def test_a_page_is_the_same_before_and_after_a_patient_fires_the_rule(
    settings: Settings, catalogue: Catalogue
) -> None:
    """Built from the catalogue alone: no call leaves patient data on a page."""
    case = json.loads(CAUDA_EQUINA.read_text(encoding="utf-8"))
    app = create_app(changed(settings, fixed_now=case["now"]), catalogue=catalogue)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client,
    ):
        before = (await client.get("/rules/RF-01", headers=HTML)).text
        answer = await client.post("/cds-services/back-to-foot", json=case["request"])
        fired = [card["source"]["topic"]["code"] for card in answer.json()["cards"]]
        after = (await client.get("/rules/RF-01", headers=HTML)).text
    assert "RF-01" in fired
    assert after == before
    assert case["request"]["context"]["patientId"] not in after


async def test_the_pages_need_no_token_even_when_the_hooks_do(
    settings: Settings, catalogue: Catalogue
) -> None:
    secured = changed(settings, auth_mode="required")
    app = create_app(secured, catalogue=catalogue)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        assert (await c.get("/cds-services")).status_code == 401
        assert (await c.get("/rules")).status_code == 200
        assert (await c.get("/rules/RF-01")).status_code == 200
        assert (await c.get("/fhir/ValueSet/radic")).status_code == 200


@pytest.mark.parametrize(
    ("accept", "json"),
    [
        (None, False),
        ("*/*", False),
        ("text/html", False),
        ("application/json", True),
        ("application/json, text/html;q=0.5", True),
        ("text/html, application/json;q=0.9", False),
        ("application/json;q=0", False),
    ],
)
async def test_json_is_answered_only_when_preferred_to_html(
    client: httpx.AsyncClient, accept: str | None, json: bool
) -> None:
    headers = {"accept": accept} if accept is not None else {}
    page = await client.get("/rules/RF-01", headers=headers)
    assert page.headers["content-type"].startswith("application/json" if json else "text/html")
    assert "Accept" in page.headers["vary"]


# What HTI-1 asks about besides the date of birth, all on the Patient: each rule page says
# the service does not use it, and no golden case's cards change when it is there.
DEMOGRAPHICS: dict[str, Any] = {
    "gender": "other",
    "extension": [
        {
            "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
            "extension": [{"url": "text", "valueString": "Asian"}],
        },
        {
            "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity",
            "extension": [{"url": "text", "valueString": "Hispanic or Latino"}],
        },
        {
            "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-genderIdentity",
            "valueCodeableConcept": {"text": "Non-binary"},
        },
        {
            "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-sex",
            "valueCode": "248152002",
        },
    ],
    "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "es"}]}}],
}


def _with_demographics(request: dict[str, Any]) -> dict[str, Any]:
    changed_request: dict[str, Any] = json.loads(json.dumps(request))
    patient = changed_request.get("prefetch", {}).get("patient")
    if isinstance(patient, dict) and patient.get("resourceType") == "Patient":
        patient.update(DEMOGRAPHICS)
    return changed_request


def test_race_ethnicity_language_sex_and_gender_change_no_card(catalogue: Catalogue) -> None:
    cases = sorted((PROJECT_ROOT / "tests" / "cases").glob("*/*.json"))
    compared = 0
    for path in cases:
        case = json.loads(path.read_text(encoding="utf-8"))
        now = datetime.fromisoformat(case["now"].replace("Z", "+00:00"))
        request = {**case["request"], "serviceId": path.parent.name}
        try:
            plain = anyio.run(evaluate_offline, catalogue, request, now)
        except CdsError:
            continue
        with_them = anyio.run(evaluate_offline, catalogue, _with_demographics(request), now)
        assert with_them == plain, path.name
        compared += bool(plain["cards"])
    assert compared > 50


async def test_without_the_source_attributes_file_the_pages_say_what_is_not_stated(
    settings: Settings, tmp_path: Path
) -> None:
    rules, cards = _copied_content(tmp_path)
    (rules / "transparency" / "source-attributes.yaml").unlink()
    async with await _client_on(settings, rules, cards) as c:
        page = (await c.get("/rules/RF-01", headers=JSON)).json()
    stated = {a["name"]: a["value"] for a in page["sourceAttributes"]}
    assert stated["Developer"].startswith("Not stated: the catalogue has no rules/transparency/")


def test_a_source_attributes_file_naming_an_unknown_value_set_stops_the_start(
    settings: Settings, tmp_path: Path
) -> None:
    rules, cards = _copied_content(tmp_path)
    path = rules / "transparency" / "source-attributes.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace("  pregnancy:", "  pregnant:"), encoding="utf-8"
    )
    with pytest.raises(ConfigError) as raised:
        create_app(changed(settings, rules_dir=rules, cards_dir=cards))
    assert raised.value.problems == [
        "rules/transparency/source-attributes.yaml: healthStatusAssessments.pregnant: "
        "unknown value set 'pregnant'"
    ]


SITE = """\
rules:
  RF-03:
    params:
      weightLossPercent: 7
  MIM-03:
    mode: shadow
valuesets:
  b12-result:
    add:
      - system: https://lab.example-hospital.org/CodeSystem/orderables
        code: B12S
        display: Vitamin B12 <serum>
        note: Mapped by the laboratory informatics lead, 2026-11-20
"""


async def test_the_site_settings_that_change_a_rule_are_on_its_page(
    settings: Settings, tmp_path: Path
) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(SITE, encoding="utf-8")
    app = create_app(changed(settings, site_config=site))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        rf03 = (await c.get("/rules/RF-03", headers=JSON)).json()
        rf03_html = (await c.get("/rules/RF-03", headers=HTML)).text
        mim03 = (await c.get("/rules/MIM-03", headers=JSON)).json()
        b12 = (await c.get("/rules/B12-01", headers=JSON)).json()
        b12_html = (await c.get("/rules/B12-01", headers=HTML)).text
        rb01 = (await c.get("/rules/RB-01", headers=JSON)).json()
    assert rf03["params"] == [
        {
            "name": "weightLossPercent",
            "value": "7",
            "default": "5",
            "bounds": "4..10",
            "description": rf03["params"][0]["description"],
            "tuned": True,
        }
    ]
    assert rf03["siteChanges"][0].startswith("weightLossPercent 7 by the site")
    # The logic in words is the tuned rule's: the engine runs 7 %, the page says 7 %.
    assert "weight loss of at least 7 %" in rf03_html
    assert "7 (set by the site)" in rf03_html
    assert mim03["mode"] == "shadow"
    assert "mode shadow by the site" in mim03["siteChanges"][0]
    local = [code for vs in b12["valueSets"] for code in vs["codes"] if code.get("local")]
    assert local == [
        {
            "system": "https://lab.example-hospital.org/CodeSystem/orderables",
            "code": "B12S",
            "display": "Vitamin B12 <serum>",
            "match": "exact",
            "local": True,
            "note": "Mapped by the laboratory informatics lead, 2026-11-20",
        }
    ]
    assert "Vitamin B12 &lt;serum&gt;" in b12_html
    assert "local (site): Mapped by the laboratory informatics lead" in b12_html
    # A rule the site leaves alone says so, and lists what it could tune at its defaults.
    assert "siteChanges" not in rb01
    assert [(p["name"], p["value"], "tuned" in p) for p in rb01["params"]] == [
        ("minAge", "16", False)
    ]
