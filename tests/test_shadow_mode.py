"""Shadow mode: a draft rule is evaluated and audited as "would have fired" but returns no card,
and takes no part in precedence, so the cards shown are exactly those shown without it; the
report counts its would-fire calls per version beside the cards shown, on SQLite and on
PostgreSQL; `cds rules check` refuses a running rule whose `rule:` clause names a retired one."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from cds.app import create_app
from cds.catalogue import Catalogue, check, load_catalogue
from cds.errors import CdsError
from cds.invocation import evaluate_offline
from cds.settings import PROJECT_ROOT, Settings
from cds.store import Store
from cds.store.schema import invocations
from tests.conftest import changed, serving
from tests.test_rule_file_errors import replace
from tests.test_store import DAY, T0, audit, issued, rows

TOPIC = "https://footpath-cds.example.org/CodeSystem/rule"
ADMIN = "admin-secret-for-tests"
CASES = PROJECT_ROOT / "tests" / "cases"


def _tree(root: Path, status: str, *rule_ids: str) -> Path:
    """A copy of the shipped content with the records of ``rule_ids`` set to ``status``."""
    for part in ("rules", "cards"):
        shutil.copytree(PROJECT_ROOT / part, root / part)
    for rule_id in rule_ids:
        record = root / "rules" / "governance" / f"{rule_id}.yaml"
        replace(record, "status: active", f"status: {status}")
    return root


def _catalogue(root: Path) -> Catalogue:
    return load_catalogue(root / "rules", root / "cards", TOPIC)


# Rules that suppress others (MIM-01 and RB-02: RB-01; DM-02: RB-03) or take a kind of
# suggestion from them (DM-02's EDX), and that no `rule:` clause names (so they can retire).
SUPPRESSING = ("MIM-01", "RB-02", "DM-02")


@pytest.fixture(scope="module")
def suppressing_as(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Catalogue]:
    """The shipped catalogue with the suppressing rules in shadow, and retired."""
    return {
        status: _catalogue(_tree(tmp_path_factory.mktemp(status), status, *SUPPRESSING))
        for status in ("draft", "retired")
    }


def _cases() -> list[Any]:
    return [
        pytest.param(path, id=f"{path.parent.name}/{path.stem}")
        for path in sorted(CASES.glob("*/*.json"))
    ]


def _answer(catalogue: Catalogue, case: dict[str, Any]) -> bytes:
    now = datetime.fromisoformat(case["now"].replace("Z", "+00:00"))
    try:
        response = anyio.run(evaluate_offline, catalogue, case["request"], now)
    except CdsError as refused:  # a case that needs the FHIR server: refused alike, or not
        return f"{refused.status_code} {refused}".encode()
    return json.dumps(response, sort_keys=True).encode()


@pytest.mark.parametrize("path", _cases())
def test_a_rule_in_shadow_changes_no_shown_card_it_would_suppress_or_trim(
    path: Path, suppressing_as: dict[str, Catalogue]
) -> None:
    # Byte for byte the answer without those rules: their shadow cards suppress nothing.
    case = json.loads(path.read_text(encoding="utf-8"))
    assert _answer(suppressing_as["draft"], case) == _answer(suppressing_as["retired"], case)


def test_a_draft_rule_that_names_nothing_retired_passes_the_check(tmp_path: Path) -> None:
    # RF-02 raises its indicator on `rule: RF-01`: a draft RF-01 is evaluated, so it may be named.
    root = _tree(tmp_path, "draft", "RF-01")
    assert check(root / "rules", root / "cards", TOPIC) == []


def test_rules_check_refuses_a_running_rule_whose_rule_clause_names_a_retired_rule(
    tmp_path: Path,
) -> None:
    root = _tree(tmp_path, "retired", "RF-01")
    problems = check(root / "rules", root / "cards", TOPIC)
    assert problems
    named = [p for p in problems if "clause names RF-01, which is retired" in p]
    assert named == problems
    (rf02,) = [p for p in problems if p.startswith("rules/governance/RF-02.yaml:")]
    assert rf02.endswith(
        "status: RF-02 is active but its rule: clause names RF-01, which is retired; "
        "retire RF-02 too, or stop naming RF-01"
    )


# --------------------------------------------------------------------------- audit and report


@pytest.mark.anyio
async def test_the_report_counts_would_fire_calls_per_version_beside_the_cards_shown(
    store: Store,
) -> None:
    shown = [issued("card-1", "RB-01")]
    await store.record_invocation(
        audit(shown).model_copy(
            update={"would_fire": ["RB-02"], "rule_versions": {"RB-01": "1.0.0", "RB-02": "2.0.0"}}
        ),
        shown,
    )
    for hook in ("h-2", "h-3"):
        row = audit([], hook=hook).model_copy(
            update={"would_fire": ["RB-02"], "rule_versions": {"RB-02": "2.0.0"}}
        )
        await store.record_invocation(row, [])
    report = await store.rule_report(None, T0 - DAY, T0 + DAY)
    counts = {(s.rule_id, s.rule_version): (s.times_shown, s.would_fire) for s in report.rules}
    assert counts == {("RB-01", "1.0.0"): (1, 0), ("RB-02", "2.0.0"): (0, 3)}


@pytest.mark.anyio
async def test_a_draft_rule_is_audited_as_would_fire_and_absent_from_the_response(
    store_settings: Settings, settings: Settings, tmp_path: Path, rb01_request: dict[str, Any]
) -> None:
    async with serving(create_app(settings)) as shipped:
        before = (await shipped.post("/cds-services/back-to-foot", json=rb01_request)).json()
    assert "RB-01" in [card["source"]["topic"]["code"] for card in before["cards"]]
    root = _tree(tmp_path / "content", "draft", "RB-01")
    app = create_app(
        changed(
            settings,
            database_url=store_settings.database_url,
            rules_dir=root / "rules",
            cards_dir=root / "cards",
            admin_token=ADMIN,
        )
    )
    async with serving(app) as client:
        response = (await client.post("/cds-services/back-to-foot", json=rb01_request)).json()
        await app.state.parts.audit.flush()
        (row,) = await rows(app.state.parts.store, invocations)
        report = await client.get(
            "/admin/report",
            params={"service": "back-to-foot", "since": "2026-01-01T00:00:00Z"},
            headers={"Authorization": f"Bearer {ADMIN}"},
        )
        metrics = (await client.get("/metrics")).text
    # Every other card exactly as the shipped catalogue shows it; RB-01's is not returned.
    rb01 = [c for c in before["cards"] if c["source"]["topic"]["code"] == "RB-01"]
    assert response["cards"] == [c for c in before["cards"] if c not in rb01]
    assert (row.would_fire, row.rule_versions["RB-01"]) == (["RB-01"], "1.0.0")
    assert "RB-01" not in row.rule_ids
    assert row.card_uuids == [c["uuid"] for c in response["cards"]]
    (stats,) = [r for r in report.json()["rules"] if r["rule_id"] == "RB-01"]
    assert (stats["rule_version"], stats["would_fire"], stats["times_shown"]) == ("1.0.0", 1, 0)
    assert 'cds_cards_would_fire_total{rule="RB-01",service="back-to-foot"} 1.0' in metrics
