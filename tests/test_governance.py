"""Every rule carries its governance record: version, status, owner, review dates, evidence and
the data it reads, checked with the catalogue; retired and draft rules return no card (a draft
one runs in shadow: tests/test_shadow_mode.py); a rule past its review date still runs and is
named by ``cds rules check`` and ``/readyz``."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from cds.app import create_app
from cds.cards.links import link_problem, load_link_hosts
from cds.catalogue import Catalogue, check, load_catalogue
from cds.governance import RuleGovernance
from cds.governance.reads import rule_reads
from cds.invocation import evaluate_offline
from cds.settings import PROJECT_ROOT, Settings
from tests.conftest import FIXED_NOW, changed, serving
from tests.test_rule_file_errors import replace

TOPIC = "https://footpath-cds.example.org/CodeSystem/rule"
NOW = datetime.fromisoformat(FIXED_NOW)
# Today (2026-12-06) and the day after the red flags' next review (2027-05-31).
TODAY = date(2026, 12, 6)
AFTER_RED_FLAG_REVIEW = "2027-06-01T12:00:00+00:00"


def fired(catalogue: Any, body: dict[str, Any]) -> list[str]:
    response = anyio.run(evaluate_offline, catalogue, body, NOW)
    return [card["source"]["topic"]["code"] for card in response["cards"]]


# --------------------------------------------------------------------------- shipped data


def test_every_shipped_rule_has_exactly_one_governance_record(catalogue: Catalogue) -> None:
    assert set(catalogue.governance.records) == {rule.id for rule in catalogue.rules.values()}
    assert len(catalogue.governance.records) == 17


def test_every_shipped_rule_is_active_reviewed_before_today_and_due_after_it(
    catalogue: Catalogue,
) -> None:
    for record in catalogue.governance.records.values():
        assert record.status == "active", record.id
        assert record.effective is None, record.id
        assert record.last_reviewed <= TODAY < record.next_review, record.id
        assert record.owner.endswith("(CDS committee)"), record.id
        assert record.intended_use, record.id
        assert record.cautions, record.id
    assert catalogue.governance.overdue(TODAY) == []


def test_every_evidence_link_is_an_https_page_of_an_allowed_publisher(catalogue: Catalogue) -> None:
    hosts = load_link_hosts(PROJECT_ROOT / "cards", [])
    assert hosts is not None
    for record in catalogue.governance.records.values():
        for citation in record.evidence:
            assert link_problem(citation.url, hosts.names) is None, (record.id, citation.url)
            assert 1900 <= citation.year <= record.last_reviewed.year


def test_every_record_declares_exactly_the_data_its_clauses_read(catalogue: Catalogue) -> None:
    for record in catalogue.governance.records.values():
        assert set(record.reads) == rule_reads(record.id, catalogue.rules), record.id


def test_the_order_rules_read_the_drafts_and_the_red_flags_read_no_medications(
    catalogue: Catalogue,
) -> None:
    reads = {rid: set(r.reads) for rid, r in catalogue.governance.records.items()}
    assert "MedicationRequest" in reads["OS-04"]
    assert "MedicationRequest" not in reads["RF-01"]
    assert "Observation" in reads["RF-03"]  # measured weight loss


def test_every_audit_row_gets_the_version_of_each_rule_it_names(catalogue: Catalogue) -> None:
    assert catalogue.governance.versions(["RF-01", "OS-02"]) == {"RF-01": "1.0.0", "OS-02": "1.0.0"}


# --------------------------------------------------------------------------- bad records


@pytest.mark.parametrize(
    ("old", "new", "at_new", "message"),
    [
        ("version: 1.0.0", "version: 1.0", True, "version: '1.0' is not a semantic version"),
        ("version: 1.0.0", "version: v1.0.0", True, "version: 'v1.0.0' is not a semantic version"),
        ("status: active", "status: live", True, "status: Input should be 'draft', 'active'"),
        (
            'nextReview: "2027-11-30"',
            'nextReview: "2027-13-01"',
            True,
            "nextReview: Input should be a valid date",
        ),
        (
            'nextReview: "2027-11-30"',
            'nextReview: "2026-01-01"',
            True,
            "nextReview: must come after lastReviewed",
        ),
        (
            "url: https://www.nice.org.uk/guidance/ng59/chapter/Recommendations",
            "url: http://www.nice.org.uk/guidance/ng59/chapter/Recommendations",
            False,
            "evidence[0].url: 'http://www.nice.org.uk/guidance/ng59/chapter/Recommendations' "
            "is not https",
        ),
        (
            "url: https://www.nice.org.uk/guidance/ng59/chapter/Recommendations",
            "url: https://www.researchgate.net/ng59",
            False,
            "evidence[0].url: host 'www.researchgate.net' is not on the publisher allow-list "
            "(link-hosts.yaml)",
        ),
        ("year: 2016", "year: 2030", False, "evidence[0].year: 2030 is after lastReviewed"),
        ("reads: [", "reads: [MedicationRequest, ", False, "reads: no clause of the rule reads"),
        ("owner: Clinical", "ownr: Clinical", False, "ownr: unknown key 'ownr'; did you mean"),
    ],
    ids=[
        "short-version",
        "prefixed-version",
        "status",
        "impossible-date",
        "review-before-last",
        "http",
        "host",
        "year",
        "reads",
        "misspelt-key",
    ],
)
def test_a_bad_record_is_a_problem_at_its_file_line_and_column(
    content_tree: Path, old: str, new: str, at_new: bool, message: str
) -> None:
    path = content_tree / "rules" / "governance" / "RB-01.yaml"
    place = replace(path, old, new)
    problems = check(content_tree / "rules", content_tree / "cards", TOPIC)
    assert len(problems) == 1, problems
    (problem,) = problems
    assert problem.startswith("rules/governance/RB-01.yaml:"), problem
    assert message in problem, problem
    _, line, column, _ = problem.split(":", 3)
    assert line.isdigit()
    assert column.isdigit()
    if at_new:  # the field changed is the one reported
        assert line == place.split(":")[0]


def test_the_host_problem_points_at_the_link_itself(content_tree: Path) -> None:
    path = content_tree / "rules" / "governance" / "MIM-03.yaml"
    replace(path, "https://www.nice.org.uk/guidance/cg168", "https://nice.example.org/cg168")
    text = path.read_text(encoding="utf-8").splitlines()
    line = next(i for i, t in enumerate(text, 1) if "nice.example.org" in t)
    column = text[line - 1].index("https") + 1
    (problem,) = check(content_tree / "rules", content_tree / "cards", TOPIC)
    assert problem.startswith(f"rules/governance/MIM-03.yaml:{line}:{column}: evidence[0].url:")


def test_a_rule_without_a_record_cannot_load(content_tree: Path) -> None:
    (content_tree / "rules" / "governance" / "DM-02.yaml").unlink()
    problems = check(content_tree / "rules", content_tree / "cards", TOPIC)
    assert problems == [
        "rules/governance/DM-02.yaml: rule DM-02 has no governance record "
        "(version, status, owner, review dates, evidence)"
    ]


def test_a_record_for_a_rule_that_does_not_exist_is_refused(content_tree: Path) -> None:
    governance = content_tree / "rules" / "governance"
    text = (governance / "DM-02.yaml").read_text(encoding="utf-8")
    (governance / "DM-09.yaml").write_text(text.replace("id: DM-02", "id: DM-09"))
    (problem,) = check(content_tree / "rules", content_tree / "cards", TOPIC)
    assert problem.startswith("rules/governance/DM-09.yaml:")
    assert "id: no rule 'DM-09' is defined in rules/" in problem


def test_an_effective_period_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(ValueError, match="end is before start"):
        RuleGovernance.model_validate(
            {**_record(), "effective": {"start": "2027-01-01", "end": "2026-01-01"}}
        )


# --------------------------------------------------------------------------- what runs


def _record(**changes: Any) -> dict[str, Any]:
    return {
        "id": "RB-01",
        "version": "2.1.0-rc.1",
        "status": "active",
        "owner": "Clinical owner (CDS committee)",
        "lastReviewed": "2026-11-30",
        "nextReview": "2027-11-30",
        "intendedUse": "x",
        "cautions": ["y"],
        "reads": ["Patient"],
        "evidence": [{"label": "NG59", "year": 2016, "url": "https://www.nice.org.uk/x"}],
        "snooze": {"default": "P30D", "maximum": "P90D"},
        **changes,
    }


def mode(**changes: Any) -> str:
    return RuleGovernance.model_validate(_record(**changes)).mode_on(date(2026, 12, 6))


def test_an_active_rule_shows_a_draft_one_runs_in_shadow_inside_their_period_only() -> None:
    assert mode() == "on"
    assert mode(status="draft") == "shadow"
    assert mode(status="retired") == "off"
    assert mode(effective={"start": "2026-12-07"}) == "off"
    assert mode(status="draft", effective={"end": "2026-12-05"}) == "off"
    assert mode(effective={"start": "2026-12-06", "end": "2026-12-06"}) == "on"


def test_a_retired_rule_never_fires_and_the_others_still_do(
    content_tree: Path, rb01_request: dict[str, Any]
) -> None:
    before = load_catalogue(content_tree / "rules", content_tree / "cards", TOPIC)
    assert "RB-01" in fired(before, rb01_request)
    replace(
        content_tree / "rules" / "governance" / "RB-01.yaml", "status: active", "status: retired"
    )
    after = load_catalogue(content_tree / "rules", content_tree / "cards", TOPIC)
    assert "RB-01" not in fired(after, rb01_request)
    assert fired(after, rb01_request) == [c for c in fired(before, rb01_request) if c != "RB-01"]


def test_a_draft_rule_returns_no_card(content_tree: Path, rb01_request: dict[str, Any]) -> None:
    replace(content_tree / "rules" / "governance" / "RB-01.yaml", "status: active", "status: draft")
    catalogue = load_catalogue(content_tree / "rules", content_tree / "cards", TOPIC)
    assert "RB-01" not in fired(catalogue, rb01_request)


def test_a_rule_outside_its_effective_period_does_not_fire(
    content_tree: Path, rb01_request: dict[str, Any]
) -> None:
    replace(
        content_tree / "rules" / "governance" / "RB-01.yaml",
        "status: active",
        'status: active\neffective: {start: "2026-07-01"}',
    )
    catalogue = load_catalogue(content_tree / "rules", content_tree / "cards", TOPIC)
    assert "RB-01" not in fired(catalogue, rb01_request)  # the call is on 2026-06-01


# --------------------------------------------------------------------------- past review


def _rules_check(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cds.cli", "rules", "check"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
        check=False,
        env={**os.environ, **env},
    )


def test_rules_check_names_each_rule_past_its_review_date_and_still_passes() -> None:
    done = _rules_check(CDS_FIXED_NOW=AFTER_RED_FLAG_REVIEW)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "rules, cards and value sets are valid\n"
    assert done.stderr.splitlines() == [
        f"warning: rules/governance/{rid}.yaml:8:13: nextReview: {rid} 1.0.0 was due for "
        "review on 2027-05-31; it still runs"
        for rid in ("RF-01", "RF-02", "RF-03")
    ]


def test_rules_check_names_no_rule_before_any_review_is_due() -> None:
    done = _rules_check(CDS_FIXED_NOW="2026-12-06T12:00:00+00:00")
    assert (done.returncode, done.stderr) == (0, "")


def test_a_rule_past_its_review_date_still_fires(content_tree: Path) -> None:
    catalogue = load_catalogue(content_tree / "rules", content_tree / "cards", TOPIC)
    late = datetime.fromisoformat(AFTER_RED_FLAG_REVIEW)
    assert catalogue.governance.overdue(late.date()) == ["RF-01", "RF-02", "RF-03"]
    assert all(catalogue.governance.mode(rid, late.date()) == "on" for rid in ("RF-01", "RF-02"))


@pytest.mark.anyio
async def test_readyz_names_rules_past_their_review_and_stays_ready(settings: Settings) -> None:
    late = create_app(changed(settings, fixed_now=AFTER_RED_FLAG_REVIEW))
    async with serving(late) as client:
        response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["reviewOverdue"] == ["RF-01", "RF-02", "RF-03"]
    assert response.json()["status"] == "ok"


@pytest.mark.anyio
async def test_readyz_has_no_review_entry_while_every_review_is_in_date(
    settings: Settings,
) -> None:
    async with serving(create_app(settings)) as client:
        body = (await client.get("/readyz")).json()
    assert body == {"status": "ok", "rules": "loaded", "store": True, "siteDigest": "none"}
