"""Clinical policy in rules/policy/clinical.yaml, and prefetch code filters against value sets."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from cds.catalogue import check, load_catalogue
from cds.record import Duration
from cds.rules.code_filters import code_filter
from cds.rules.policy import load_policy
from cds.rules.schema import WeightLossWindows
from cds.settings import PROJECT_ROOT
from tests.problem_lines import unplaced

TOPIC = "https://footpath-cds.example.org/CodeSystem/rule"
POLICY = Path("policy") / "clinical.yaml"
CPT = "http://www.ama-assn.org/go/cpt"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    shutil.copytree(PROJECT_ROOT / "rules", tmp_path / "rules")
    shutil.copytree(PROJECT_ROOT / "cards", tmp_path / "cards")
    return tmp_path


def edit(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def problems(tree: Path) -> list[str]:
    return unplaced(check(tree / "rules", tree / "cards", TOPIC))


def test_the_shipped_policy_keeps_the_values_the_python_constants_had() -> None:
    policy = load_policy(PROJECT_ROOT / "rules")
    assert policy.condition_windows.undated_active == Duration(months=12)
    assert policy.condition_windows.encounter_diagnosis == Duration(months=12)
    # Rules.md 3.7 after the CDS Hooks indicator->priority ConceptMap.
    assert policy.indicator_priority == {"info": "routine", "warning": "urgent", "critical": "stat"}
    assert policy.required_prefetch == ["patient"]


def test_every_service_carries_the_one_policy() -> None:
    catalogue = load_catalogue(PROJECT_ROOT / "rules", PROJECT_ROOT / "cards", TOPIC)
    assert len(catalogue.services) == 3
    assert len({id(s.policy) for s in catalogue.services.values()}) == 1


def test_an_indicator_without_a_priority_is_refused_with_file_and_path(tree: Path) -> None:
    edit(tree / "rules" / POLICY, lambda doc: doc["indicatorPriority"].pop("critical"))
    assert problems(tree) == [
        "rules/policy/clinical.yaml: indicatorPriority: give a priority for every "
        "indicator; missing: critical"
    ]


def test_a_zero_window_is_refused(tree: Path) -> None:
    edit(tree / "rules" / POLICY, lambda doc: doc.update(undatedActiveWithin="P0M"))
    assert problems(tree) == [
        "rules/policy/clinical.yaml: undatedActiveWithin: a window of zero counts nothing"
    ]


def test_a_missing_policy_is_named_once_there_is_a_service(tree: Path) -> None:
    (tree / "rules" / POLICY).unlink()
    assert problems(tree) == [
        "rules/policy/clinical.yaml: not found; the services read their clinical policy from it"
    ]


def test_a_service_must_require_every_key_the_policy_requires(tree: Path) -> None:
    edit(tree / "rules" / "back-to-foot.yaml", lambda doc: doc.update(requiredPrefetch=[]))
    assert problems(tree) == [
        "rules/back-to-foot.yaml: requiredPrefetch: 'patient' must be required "
        "(policy/clinical.yaml)"
    ]


@pytest.mark.parametrize(
    ("windows", "message"),
    [
        ({"current": "P60D"}, "baselineFrom must reach back at least as far as current"),
        ({"baselineTo": "P30D"}, "baselineTo must reach further back than baselineFrom"),
        ({"latestWithin": "P0D"}, "latestWithin must be longer than zero"),
    ],
)
def test_weight_loss_windows_out_of_order_are_refused(
    windows: dict[str, str], message: str
) -> None:
    shipped = {"latestWithin": "P90D", "current": "P14D", "baselineFrom": "P30D"}
    with pytest.raises(ValidationError, match=message):
        WeightLossWindows.model_validate(shipped | {"baselineTo": "P365D"} | windows)


def test_a_template_code_filter_is_read_as_its_type_and_codes() -> None:
    template = "Procedure?patient={{context.patientId}}&code=" + f"{CPT}|72148,95907"
    assert code_filter(template) == ("Procedure", [(CPT, "72148"), ("", "95907")])
    assert code_filter("Condition?patient={{context.patientId}}") == ("Condition", None)


def _procedures(doc: dict[str, Any], change: Callable[[str], str]) -> None:
    doc["prefetch"]["procedures"] = change(doc["prefetch"]["procedures"])


def test_a_template_code_no_value_set_holds_is_reported(tree: Path) -> None:
    edit(
        tree / "rules" / "back-to-foot.yaml",
        lambda doc: _procedures(doc, lambda t: t + f",{CPT}|99999"),
    )
    assert problems(tree) == [
        f"rules/back-to-foot.yaml: prefetch.procedures: code {CPT}|99999 is in no value set the "
        "rules read from Procedure"
    ]


def test_a_value_set_code_the_filter_leaves_out_is_reported(tree: Path) -> None:
    edit(
        tree / "rules" / "back-to-foot.yaml",
        lambda doc: _procedures(doc, lambda t: t.replace(f",{CPT}|72149", "")),
    )
    assert problems(tree) == [
        "rules/back-to-foot.yaml: prefetch.procedures: the Procedure code filter leaves out 1 "
        f"code(s) of value set 'lmri-lumbar' it otherwise fetches: {CPT}|72149"
    ]


def test_a_template_without_a_code_filter_fetches_every_code(tree: Path) -> None:
    def change(doc: dict[str, Any]) -> None:
        _procedures(doc, lambda t: t.replace(f",{CPT}|72149", ""))
        doc["prefetch"]["allprocedures"] = "Procedure?patient={{context.patientId}}"

    edit(tree / "rules" / "back-to-foot.yaml", change)
    assert problems(tree) == []


def test_finding_observation_keys_are_read_as_code_filters() -> None:
    codes = "http://snomed.info/sct|6077001"
    for parameter in ("code", "value-concept"):
        template = f"Observation?patient={{{{context.patientId}}}}&{parameter}={codes}"
        assert code_filter(template) == ("Observation", [("http://snomed.info/sct", "6077001")])
    labs = "Observation?patient={{context.patientId}}&category=laboratory"
    assert code_filter(labs) == ("Observation", []), "a category fetches no code in particular"


def test_a_finding_set_no_observation_filter_fetches_is_reported(tree: Path) -> None:
    """Without the findings keys a symptom recorded as a finding Observation is never seen, and
    the rules reading it would be silently false: the catalogue refuses to load."""

    def change(doc: dict[str, Any]) -> None:
        del doc["prefetch"]["findings"]
        del doc["prefetch"]["findingvalues"]

    edit(tree / "rules" / "back-to-foot.yaml", change)
    finding_sets = [
        "ces-sphincter", "footdrop", "footpain", "lbp", "lspine", "motor", "motor-leg",
        "motor-unsited", "radic", "sensory", "sensory-foot", "sensory-r20", "wtloss",
    ]  # fmt: skip
    assert problems(tree) == [
        "rules/back-to-foot.yaml: prefetch.observations, prefetch.labs: no Observation code "
        f"filter fetches value set '{vs}', which the rules read from Observation"
        for vs in finding_sets
    ]


def test_a_finding_code_left_out_of_the_findings_key_is_reported(tree: Path) -> None:
    def change(doc: dict[str, Any]) -> None:
        for key in ("findings", "findingvalues"):
            doc["prefetch"][key] = doc["prefetch"][key].replace(
                ",http://snomed.info/sct|6077001", ""
            )

    edit(tree / "rules" / "back-to-foot.yaml", change)
    assert problems(tree) == [
        "rules/back-to-foot.yaml: prefetch.observations, prefetch.labs, prefetch.findings, "
        "prefetch.findingvalues: the Observation code filter leaves out 1 code(s) of value set "
        "'footdrop' it otherwise fetches: http://snomed.info/sct|6077001"
    ]
