"""Site settings (CDS_SITE_CONFIG): an empty file changes no answer; a file that sets each kind of
setting (a rule off, a rule in shadow, a tuned parameter, a local code, a snooze period) changes
exactly what it sets; every mistake in the file is named with its line, column and path, at
startup and by `cds rules check --site`, which also lists the effective values; the file's
digest is in every audit row and in /readyz."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from cds.app import create_app
from cds.catalogue import Catalogue, check, load_catalogue
from cds.cli import main
from cds.errors import CdsError, ConfigError
from cds.invocation import evaluate_offline
from cds.settings import PROJECT_ROOT, Settings
from cds.store.schema import invocations
from tests.conftest import changed, serving
from tests.test_rule_file_errors import replace
from tests.test_store import rows

TOPIC = "https://footpath-cds.example.org/CodeSystem/rule"
RULES, CARDS = PROJECT_ROOT / "rules", PROJECT_ROOT / "cards"
CASES = sorted((PROJECT_ROOT / "tests" / "cases").glob("*/*.json"))
LAB = "https://lab.example.org/CodeSystem/orderables"

# One setting of each kind, on rules whose cards do not take part in each other's precedence.
EVERY_KIND = f"""\
rules:
  MIM-03:
    mode: off
  OS-04:
    mode: shadow
  RF-03:
    params:
      weightLossPercent: 10
  DM-01:
    snooze: P7D
valuesets:
  b12-result:
    add:
      - system: {LAB}
        code: B12S
        display: Vitamin B12, serum
        note: The laboratory's own orderable, mapped by its informatics lead
"""

# What EVERY_KIND changes in the golden cases, and nothing else: (cards gone, cards added).
EXPECTED_CHANGES = {
    # MIM-03 off: its card is gone.
    "s13-varicose-veins": ({"MIM-03"}, set()),
    # OS-04 in shadow: its card is gone (audited as would-fire, below).
    "os-04-gabapentinoid-for-sciatica": ({"OS-04"}, set()),
    "os-04-sandbox-rx-sign-single-category": ({"OS-04"}, set()),
    "os-04-sandbox-rx-view-single-category": ({"OS-04"}, set()),
    "os-04-sciatica-only-indication": ({"OS-04"}, set()),
    # RF-03 at 10 %: these losses (5 to 10 %) no longer raise the red flag ...
    "rf-03-positive-1000-noisy-weights": ({"RF-03"}, set()),
    "rf-03-positive-loss-hidden-in-noisy-weights": ({"RF-03"}, set()),
    "rf-03-positive-measured-weight-loss": ({"RF-03"}, set()),
    "rf-03-weight-loss-shows-weights-and-percent": ({"RF-03"}, set()),
    # ... so OS-01, which holds back while RF-03's criteria hold, now questions the MRI.
    "os-01-negative-measured-weight-loss": (set(), {"OS-01"}),
}


def _site(tmp_path: Path, text: str, name: str = "site.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _with_site(path: Path | None) -> Catalogue:
    return load_catalogue(RULES, CARDS, TOPIC, site=path)


def _problems(tmp_path: Path, text: str) -> list[str]:
    return check(RULES, CARDS, TOPIC, site=_site(tmp_path, text))


def _answer(catalogue: Catalogue, case: dict[str, Any]) -> dict[str, Any] | str:
    now = datetime.fromisoformat(case["now"].replace("Z", "+00:00"))
    try:
        response: dict[str, Any] = anyio.run(evaluate_offline, catalogue, case["request"], now)
    except CdsError as refused:  # a case that needs the FHIR server: refused alike, or not
        return f"{refused.status_code} {refused}"
    return response


def _cards(answer: dict[str, Any] | str) -> dict[str, Any]:
    assert not isinstance(answer, str)
    return {card["source"]["topic"]["code"]: card for card in answer["cards"]}


@pytest.fixture(scope="module")
def every_kind(tmp_path_factory: pytest.TempPathFactory) -> Catalogue:
    return _with_site(_site(tmp_path_factory.mktemp("site"), EVERY_KIND))


# --------------------------------------------------------------------------- golden cases


def test_an_empty_site_file_changes_no_answer_of_any_golden_case(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    empty = _with_site(_site(tmp_path, ""))
    assert empty.site.digest == hashlib.sha256(b"").hexdigest()
    differing = [
        path.stem
        for path in CASES
        for case in [json.loads(path.read_text(encoding="utf-8"))]
        if json.dumps(_answer(empty, case)) != json.dumps(_answer(catalogue, case))
    ]
    assert differing == []


def test_a_site_file_changes_exactly_what_it_sets_in_the_golden_cases(
    every_kind: Catalogue, catalogue: Catalogue
) -> None:
    changes = {}
    for path in CASES:
        case = json.loads(path.read_text(encoding="utf-8"))
        shipped, sited = _answer(catalogue, case), _answer(every_kind, case)
        if shipped == sited:
            continue
        before, after = _cards(shipped), _cards(sited)
        # A card shown both ways is shown byte for byte the same.
        assert [before[r] for r in before.keys() & after] == [
            after[r] for r in before.keys() & after
        ]
        changes[path.stem] = (before.keys() - after.keys(), after.keys() - before.keys())
    assert changes == EXPECTED_CHANGES


def test_a_local_code_counts_as_a_member_of_its_value_set(
    every_kind: Catalogue, catalogue: Catalogue
) -> None:
    # A B12 result coded only with the laboratory's own code: B12-01 fires without the local
    # code (no B12 on record, as far as it can tell), and not with it.
    path = PROJECT_ROOT / "tests/cases/back-to-foot/b12-01-negative-recent-b12-by-text.json"
    case = json.loads(path.read_text(encoding="utf-8"))
    for entry in case["request"]["prefetch"]["labs"]["entry"]:
        if entry["resource"].get("code", {}).get("text") == "Vitamin B12 serum":
            entry["resource"]["code"] = {"coding": [{"system": LAB, "code": "B12S"}]}
    assert "B12-01" in _cards(_answer(catalogue, case))
    assert "B12-01" not in _cards(_answer(every_kind, case))
    b12 = every_kind.valuesets["b12-result"]
    assert b12.is_local(LAB, "B12S")
    assert b12.local[(LAB, "B12S")].note.startswith("The laboratory's own orderable")
    assert not catalogue.valuesets["b12-result"].is_local(LAB, "B12S")


def test_the_snooze_period_is_the_sites_for_the_rule_it_names_only(
    every_kind: Catalogue, catalogue: Catalogue
) -> None:
    assert every_kind.governance.snooze_period("DM-01") == timedelta(days=7)
    assert catalogue.governance.snooze_period("DM-01") == timedelta(days=30)
    others = sorted(set(catalogue.rule_ids()) - {"DM-01"})
    assert [every_kind.governance.snooze_period(r) for r in others] == [
        catalogue.governance.snooze_period(r) for r in others
    ]


def test_a_tuned_parameter_is_in_the_effective_rule_and_nowhere_else(
    every_kind: Catalogue, catalogue: Catalogue
) -> None:
    def percent(c: Catalogue) -> Any:
        return c.rules["RF-03"].when.all_[1].any_[2].fact.percent  # type: ignore[index,union-attr]

    assert (percent(catalogue), percent(every_kind)) == (5.0, 10.0)
    untouched = sorted(set(catalogue.rules) - {"RF-03"})
    assert [every_kind.rules[k] for k in untouched] == [catalogue.rules[k] for k in untouched]


def test_with_no_site_file_the_rules_are_the_ones_written_with_the_defaults_in_place() -> None:
    # RB-03's tunable persistence defaults to 12 weeks: exactly the clause as it was written.
    clause = load_catalogue(RULES, CARDS, TOPIC).rules["RB-03"].when.all_[1].any_[1].all_[0]  # type: ignore[index]
    assert clause.condition is not None
    assert clause.condition.older_than == "P12W"


def test_each_change_is_described_in_plain_words_for_the_rule_pages(
    every_kind: Catalogue, catalogue: Catalogue
) -> None:
    site = every_kind.site
    assert site.changes_for("MIM-03") == (
        "mode off by the site (not evaluated, no card); its record says active",
    )
    assert site.changes_for("OS-04") == (
        "mode shadow by the site (evaluated and audited as would-fire, no card); its record "
        "says active",
    )
    (tuned,) = site.changes_for("RF-03")
    assert tuned.startswith("weightLossPercent 10 by the site (default 5, bounds 4..10): ")
    assert site.changes_for("DM-01") == ("snooze P7D by the site (default P30D, maximum P90D)",)
    assert site.changes_for("RB-01") == ()
    assert site.changes_for_valueset("b12-result") == (
        f"local code {LAB}|B12S 'Vitamin B12, serum' added by the site: The laboratory's own "
        "orderable, mapped by its informatics lead",
    )
    assert catalogue.site.changes_for("MIM-03") == ()


def test_the_shipped_example_file_is_valid_and_does_what_its_comments_say() -> None:
    example = _with_site(PROJECT_ROOT / "deploy" / "site.example.yaml")
    day = datetime(2026, 12, 1).date()
    assert example.governance.mode("MIM-03", day) == "shadow"
    assert example.governance.mode("B12-01", day) == "off"
    assert example.rules["RB-01"].min_age == 18
    assert example.governance.snooze_period("DM-01") == timedelta(days=7)
    assert example.valuesets["b12-result"].is_local(
        "https://lab.example-hospital.org/CodeSystem/orderables", "B12S"
    )


# --------------------------------------------------------------------------- mistakes


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param(
            "rule:\n  RB-01: {mode: off}\n",
            "site.yaml:1:1: rule: unknown key 'rule'; did you mean 'rules'?",
            id="unknown-key",
        ),
        pytest.param(
            "rules:\n  RB-01:\n    modes: off\n",
            "site.yaml:3:5: rules.RB-01.modes: unknown key 'modes'; did you mean 'mode'?",
            id="unknown-key-in-a-rule",
        ),
        pytest.param(
            "rules:\n  RB-01:\n    mode: silent\n",
            "site.yaml:3:11: rules.RB-01.mode: Input should be 'on', 'shadow' or 'off'",
            id="unknown-mode",
        ),
        pytest.param(
            "rules:\n  RB-09: {mode: off}\n",
            "site.yaml:2:3: rules.RB-09: no rule 'RB-09'; did you mean 'RB-04'?",
            id="unknown-rule",
        ),
        pytest.param(
            "rules:\n  RB-02:\n    params:\n      painWindow: P14D\n",
            "site.yaml:4:7: rules.RB-02.params.painWindow: RB-02 declares no parameter "
            "'painWindow' (its tunable parameters: minAge)",
            id="undeclared-param",
        ),
        pytest.param(
            "rules:\n  RB-03:\n    params:\n      persistence: P30W\n",
            "site.yaml:4:20: rules.RB-03.params.persistence: P30W is outside the bounds the "
            "rule declares for persistence: P6W..P26W",
            id="param-out-of-bounds",
        ),
        pytest.param(
            "rules:\n  RB-01:\n    params:\n      minAge: 15\n",
            "site.yaml:4:15: rules.RB-01.params.minAge: 15 is outside the bounds the rule "
            "declares for minAge: 16..18",
            id="age-below-the-bound",
        ),
        pytest.param(
            "rules:\n  RB-01:\n    params:\n      minAge: P18Y\n",
            "site.yaml:4:15: rules.RB-01.params.minAge: minAge takes a whole number, not 'P18Y'",
            id="param-of-the-wrong-kind",
        ),
        pytest.param(
            "rules:\n  RB-03:\n    params:\n      persistence: 12 weeks\n",
            "site.yaml:4:20: rules.RB-03.params.persistence: persistence takes an ISO 8601 "
            "duration such as P6W, not '12 weeks'",
            id="param-bad-duration",
        ),
        pytest.param(
            "rules:\n  DM-01:\n    snooze: 30 days\n",
            "site.yaml:3:13: rules.DM-01.snooze: '30 days' is not an ISO 8601 duration in weeks, "
            "days, hours, minutes or seconds (e.g. P30D, PT24H, P1DT12H)",
            id="snooze-bad-duration",
        ),
        pytest.param(
            "rules:\n  RF-01:\n    snooze: P2D\n",
            "site.yaml:3:13: rules.RF-01.snooze: P2D is longer than the longest snooze RF-01's "
            "governance record allows, P1D",
            id="snooze-over-the-maximum",
        ),
        pytest.param(
            f"valuesets:\n  b12-results:\n    add:\n      - {{system: {LAB}, code: X, "
            "display: X, note: X}\n",
            "site.yaml:2:3: valuesets.b12-results: no value set 'b12-results' is shipped; did "
            "you mean 'b12-result'?",
            id="unknown-value-set",
        ),
        pytest.param(
            f"valuesets:\n  radic:\n    add: [{{system: {LAB}, code: R, display: R, note: n}}]\n"
            "    remove:\n      - {system: http://hl7.org/fhir/sid/icd-10-cm, code: M54.16}\n",
            "site.yaml:4:5: valuesets.radic.remove: unknown key 'remove'; the keys here are add",
            id="removing-a-code",
        ),
        pytest.param(
            "valuesets:\n  radic:\n    add:\n      - system: http://hl7.org/fhir/sid/icd-10-cm\n"
            "        code: m5416\n        display: Radiculopathy, lumbar region\n"
            "        note: copied\n",
            "site.yaml:5:15: valuesets.radic.add[0].code: http://hl7.org/fhir/sid/icd-10-cm|m5416 "
            "is already a verified code of value set 'radic'",
            id="duplicating-a-verified-code",
        ),
        pytest.param(
            f"valuesets:\n  b12-result:\n    add:\n      - {{system: {LAB}, code: B12S, "
            "display: B12}\n",
            "site.yaml:4:9: valuesets.b12-result.add[0].note: the key 'note' is missing",
            id="local-code-without-provenance",
        ),
        pytest.param(
            f"valuesets:\n  b12-result:\n    add:\n      - {{system: {LAB}, code: B, display: B"
            f", note: n}}\n      - {{system: {LAB}, code: B, display: B, note: n}}\n",
            f"site.yaml:5:71: valuesets.b12-result.add[1].code: {LAB}|B is added twice",
            id="local-code-added-twice",
        ),
        pytest.param(
            "rules: [RB-01]\n",
            "site.yaml:1:8: rules: Input should be a valid dictionary",
            id="not-a-mapping",
        ),
    ],
)
def test_each_mistake_is_named_with_its_line_column_and_path(
    tmp_path: Path, text: str, problem: str
) -> None:
    assert [p.removeprefix(f"{tmp_path}/") for p in _problems(tmp_path, text)] == [problem]


def _content(root: Path, status: str, rule_id: str) -> Path:
    for part in ("rules", "cards"):
        shutil.copytree(PROJECT_ROOT / part, root / part)
    replace(
        root / "rules" / "governance" / f"{rule_id}.yaml", "status: active", f"status: {status}"
    )
    return root


@pytest.mark.parametrize(
    ("status", "mode", "why"),
    [
        (
            "draft",
            "on",
            "RB-04 is draft in its governance record; a site cannot switch on a rule its owners "
            "have not made active (use shadow or off, or leave mode out)",
        ),
        ("retired", "on", "RB-04 is retired in its governance record; a site cannot switch on"),
        ("retired", "shadow", "RB-04 is retired in its governance record and is never evaluated"),
    ],
)
def test_a_site_cannot_run_a_rule_its_owners_have_not_made_active(
    tmp_path: Path, status: str, mode: str, why: str
) -> None:
    root = _content(tmp_path / "content", status, "RB-04")
    site = _site(tmp_path, f"rules:\n  RB-04:\n    mode: {mode}\n")
    (problem,) = check(root / "rules", root / "cards", TOPIC, site=site)
    assert problem.startswith(f"{site}:3:11: rules.RB-04.mode: {why}")


def test_a_draft_rule_may_be_kept_off_by_the_site(tmp_path: Path) -> None:
    root = _content(tmp_path / "content", "draft", "RB-04")
    site = _site(tmp_path, "rules:\n  RB-04:\n    mode: off\n")
    sited = load_catalogue(root / "rules", root / "cards", TOPIC, site=site)
    assert sited.governance.mode("RB-04", datetime(2026, 12, 1).date()) == "off"


def test_a_site_file_that_is_not_yaml_or_not_there_is_named(tmp_path: Path) -> None:
    assert _problems(tmp_path, "rules: [\n") == [
        f"{tmp_path}/site.yaml:2:1: not valid YAML: did not find expected node content "
        "(while parsing a flow node, started at line 2, column 1)"
    ]
    missing = check(RULES, CARDS, TOPIC, site=tmp_path / "absent.yaml")
    assert len(missing) == 1
    assert missing[0].startswith(
        f"{tmp_path}/absent.yaml: the site settings file (CDS_SITE_CONFIG) cannot be read"
    )


# --------------------------------------------------------------------------- rule files


RB03 = "rules/back-to-foot.yaml: rules[5]"
PERSISTENCE = f"{RB03}.when.all[1].any[1].all[0].condition"


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        pytest.param(
            "olderThan: $persistence}",
            "olderThan: $persistance}",
            [
                f"{PERSISTENCE}.olderThan: '$persistance' names no parameter in this rule's params",
                f"{RB03}.params.persistence: no clause of the rule names $persistence",
            ],
            id="unknown-reference",
        ),
        pytest.param(
            "olderThan: $persistence}",
            "olderThan: P12W}",
            [f"{RB03}.params.persistence: no clause of the rule names $persistence"],
            id="unused-declaration",
        ),
        pytest.param(
            "default: P12W\n        min: P6W",
            "default: P5W\n        min: P6W",
            [f"{RB03}.params.persistence: default P5W is outside P6W..P26W"],
            id="default-out-of-bounds",
        ),
        pytest.param(
            "min: P6W\n        max: P26W",
            "min: 6\n        max: P26W",
            [
                f"{RB03}.params.persistence: min must be an ISO 8601 duration such as P6W, as "
                "the default is"
            ],
            id="bounds-of-another-kind",
        ),
        pytest.param(
            "olderThan: $persistence}",
            "olderThan: P12W, unit: $persistence}",
            [
                f"{PERSISTENCE}.unit: '$persistence': a parameter may set only baselineFrom, "
                "baselineTo, current, gt, gte, latestWithin, lt, lte, minAge, olderThan, "
                "percent, priorBy, within",
                f"{RB03}.params.persistence: no clause of the rule names $persistence",
            ],
            id="not-a-tunable-key",
        ),
    ],
)
def test_a_rule_files_parameter_mistakes_are_named(
    tmp_path: Path, old: str, new: str, problem: list[str]
) -> None:
    root = _content(tmp_path, "active", "RB-04")
    replace(root / "rules" / "back-to-foot.yaml", old, new)
    *problems, unchecked = check(root / "rules", root / "cards", TOPIC)
    assert [re.sub(r":\d+:\d+:", ":", p) for p in problems] == problem
    assert unchecked.startswith("references between files are not checked until")


# --------------------------------------------------------------------------- startup and CLI


def test_the_service_refuses_to_start_naming_every_problem_of_the_site_file(
    tmp_path: Path, settings: Settings
) -> None:
    site = _site(tmp_path, "rules:\n  RB-09: {mode: off}\n  RB-01: {params: {minAge: 21}}\n")
    with pytest.raises(ConfigError) as refused:
        create_app(changed(settings, site_config=site))
    assert refused.value.problems == [
        f"{site}:2:3: rules.RB-09: no rule 'RB-09'; did you mean 'RB-04'?",
        f"{site}:3:28: rules.RB-01.params.minAge: 21 is outside the bounds the rule declares "
        "for minAge: 16..18",
    ]


def test_cds_serve_refuses_a_wrong_site_file_before_serving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    site = _site(tmp_path, "rules:\n  RB-01: {mode: loud}\n")
    monkeypatch.setenv("CDS_SITE_CONFIG", str(site))
    monkeypatch.setenv("CDS_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cds.db'}")
    assert main(["serve"]) != 0
    assert f"{site}:2:17: rules.RB-01.mode: Input should be" in capsys.readouterr().err


def test_rules_check_with_a_site_file_lists_the_effective_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = _site(tmp_path, EVERY_KIND)
    assert main(["rules", "check", "--site", str(site)]) == 0
    out = capsys.readouterr().out.splitlines()
    digest = hashlib.sha256(EVERY_KIND.encode()).hexdigest()
    assert out[:4] == [
        "rules, cards and value sets are valid",
        "site settings are valid",
        f"site settings: {site} (sha256 {digest})",
        "rules:",
    ]
    assert "  MIM-03 1.0.0: off (site)" in out
    assert "  OS-04 1.0.0: shadow (site)" in out
    assert "  RB-01 1.0.0: on" in out
    rf03 = out.index("  RF-03 1.0.0: on")
    assert out[rf03 + 1 : rf03 + 3] == [
        "    snooze: PT8H  [maximum P1D]",
        "    weightLossPercent: 5 -> 10 (site)  [bounds 4..10]",
    ]
    dm01 = out.index("  DM-01 1.0.0: on")
    assert out[dm01 + 1] == "    snooze: P30D -> P7D (site)  [maximum P90D]"
    assert out[-2:] == [
        "value sets:",
        f"  b12-result: + {LAB}|B12S 'Vitamin B12, serum' (local: The laboratory's own "
        "orderable, mapped by its informatics lead)",
    ]


def test_rules_check_warns_of_a_local_code_no_prefetch_query_would_return(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Procedures are fetched by a list of codes; Conditions are fetched whole.
    site = _site(
        tmp_path,
        "valuesets:\n"
        "  ncs-full:\n"
        f"    add: [{{system: {LAB}, code: NCS1, display: Local NCS, note: local}}]\n"
        "  radic:\n"
        f"    add: [{{system: {LAB}, code: SCI, display: Local sciatica, note: local}}]\n",
    )
    assert main(["rules", "check", "--site", str(site)]) == 0
    warnings = capsys.readouterr().err.splitlines()
    # A Condition with the local sciatica code arrives; a finding Observation with it would not.
    assert not [w for w in warnings if f"{LAB}|SCI" in w and "from Observation" not in w]
    assert (
        f"warning: {site}: valuesets.ncs-full.add[0]: local code {LAB}|NCS1 is read by "
        "back-to-foot from Procedure, but its prefetch.procedures code filter does not list it, "
        "so the query never returns it (from the EHR or the FHIR server); the template is the "
        "repository's to change"
    ) in warnings
    assert {w.split(" is read by ")[1].split(",")[0] for w in warnings if f"{LAB}|NCS1" in w} == {
        f"{service} from {resource_type}"
        for service in ("back-to-foot", "back-to-foot-order-sign", "back-to-foot-order-select")
        for resource_type in ("Procedure", "DiagnosticReport")
    }


def test_rules_check_with_a_wrong_site_file_names_the_problem_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = _site(tmp_path, "rules:\n  RF-02: {snooze: P3D}\n")
    assert main(["rules", "check", "--site", str(site)]) == 1
    assert capsys.readouterr().err == (
        f"{site}:2:19: rules.RF-02.snooze: P3D is longer than the longest snooze RF-02's "
        "governance record allows, P1D\n"
    )


# --------------------------------------------------------------------------- audit and readiness


@pytest.mark.anyio
async def test_the_site_files_digest_is_in_every_audit_row_and_in_readyz(
    tmp_path: Path, settings: Settings, rb01_request: dict[str, Any]
) -> None:
    text = "rules:\n  RB-01:\n    mode: shadow\n"
    site = _site(tmp_path, text)
    digest = hashlib.sha256(text.encode()).hexdigest()
    app = create_app(changed(settings, site_config=site))
    async with serving(app) as client:
        response = (await client.post("/cds-services/back-to-foot", json=rb01_request)).json()
        ready = (await client.get("/readyz")).json()
        await app.state.parts.audit.flush()
        (row,) = await rows(app.state.parts.store, invocations)
    assert ready["siteDigest"] == digest
    assert (row.site_digest, row.would_fire, row.rule_versions) == (
        digest,
        ["RB-01"],
        {"RB-01": "1.0.0"},
    )
    assert "RB-01" not in [card["source"]["topic"]["code"] for card in response["cards"]]


@pytest.mark.anyio
async def test_without_a_site_file_audit_rows_and_readyz_say_none(
    settings: Settings, catalogue: Catalogue, rb01_request: dict[str, Any]
) -> None:
    app = create_app(settings, catalogue=catalogue)
    async with serving(app) as client:
        await client.post("/cds-services/back-to-foot", json=rb01_request)
        ready = (await client.get("/readyz")).json()
        await app.state.parts.audit.flush()
        (row,) = await rows(app.state.parts.store, invocations)
    assert (ready["siteDigest"], row.site_digest) == ("none", "none")
