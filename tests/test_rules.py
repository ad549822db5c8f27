"""Rule language: three-valued logic, clause semantics, and config errors with file and path."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from cds.catalogue import check, load_catalogue
from cds.errors import ConfigError
from cds.record import build_record
from cds.rules import ClauseInputs, Node, RuleSpec, Tri, all_of, any_of, result_of, trigger
from cds.rules.policy import load_policy
from cds.settings import PROJECT_ROOT
from cds.valuesets import ICD10CM, ValueSets, load_valuesets
from tests.problem_lines import unplaced

T, F, U = Tri.TRUE, Tri.FALSE, Tri.UNKNOWN
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
# The windows a record reads Conditions by, as shipped in rules/policy/clinical.yaml.
WINDOWS = load_policy(PROJECT_ROOT / "rules").condition_windows
TOPIC = "https://footpath-cds.example.org/CodeSystem/rule"


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [(T, T, T), (T, F, F), (T, U, U), (F, U, F), (U, U, U), (F, F, F)],
)
def test_and_follows_kleene_logic(a: Tri, b: Tri, expected: Tri) -> None:
    assert all_of([a, b]) is expected
    assert all_of([b, a]) is expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [(T, T, T), (T, F, T), (T, U, T), (F, U, U), (U, U, U), (F, F, F)],
)
def test_or_follows_kleene_logic(a: Tri, b: Tri, expected: Tri) -> None:
    assert any_of([a, b]) is expected
    assert any_of([b, a]) is expected


@pytest.mark.parametrize(("value", "negated"), [(T, F), (F, T), (U, U)])
def test_not_unknown_stays_unknown(value: Tri, negated: Tri) -> None:
    assert ~value is negated


@pytest.fixture(scope="module")
def sets() -> ValueSets:
    return load_valuesets(PROJECT_ROOT / "rules" / "valuesets")


def inputs(
    sets: ValueSets, *resources: dict[str, Any], unavailable: tuple[str, ...] = ()
) -> ClauseInputs:
    patient = {"resourceType": "Patient", "id": "p1", "birthDate": "1970-01-01"}
    record = build_record(
        sets, NOW, "p1", [patient, *resources], windows=WINDOWS, unavailable=unavailable
    )
    return ClauseInputs(record, {})


def node(raw: dict[str, Any]) -> Node:
    return Node.model_validate(raw)


SCIATICA = {
    "resourceType": "Condition",
    "id": "c1",
    "code": {"coding": [{"system": ICD10CM, "code": "M54.31"}]},
    "clinicalStatus": {"coding": [{"code": "active"}]},
    "subject": {"reference": "Patient/p1"},
    "onsetDateTime": "2026-01-01",
}


def test_a_present_condition_is_true_with_its_evidence(sets: ValueSets) -> None:
    result = result_of(node({"condition": {"valuesets": ["radic"]}}), inputs(sets, SCIATICA))
    assert result.truth is T
    assert [e.id for e in result.evidence] == ["c1"]


def test_missing_data_is_false_when_the_category_was_obtained(sets: ValueSets) -> None:
    assert result_of(node({"condition": {"valuesets": ["radic"]}}), inputs(sets)).truth is F


def test_an_unavailable_category_makes_its_clauses_unknown(sets: ValueSets) -> None:
    s = inputs(sets, unavailable=("Condition",))
    assert result_of(node({"condition": {"valuesets": ["radic"]}}), s).truth is U
    assert result_of(node({"not": {"condition": {"valuesets": ["radic"]}}}), s).truth is U


def test_missing_data_never_makes_an_exclusion_rule_true(sets: ValueSets) -> None:
    tree = node(
        {
            "all": [
                {"condition": {"valuesets": ["radic"]}},
                {"not": {"done": {"valuesets": ["ncs-full", "emg"], "within": "P12M"}}},
            ]
        }
    )
    assert result_of(tree, inputs(sets, SCIATICA)).truth is T
    assert result_of(tree, inputs(sets, SCIATICA, unavailable=("Procedure",))).truth is U


def test_windows_use_iso_durations(sets: ValueSets) -> None:
    s = inputs(sets, SCIATICA)
    assert result_of(node({"condition": {"valuesets": ["radic"], "within": "P12W"}}), s).true
    assert not result_of(node({"condition": {"valuesets": ["radic"], "within": "P30D"}}), s).true
    assert result_of(node({"condition": {"valuesets": ["radic"], "olderThan": "P42D"}}), s).true


def test_laterality_filters_by_side(sets: ValueSets) -> None:
    s = inputs(sets, SCIATICA)
    assert result_of(node({"condition": {"valuesets": ["radic"], "laterality": "right"}}), s).true
    assert not result_of(
        node({"condition": {"valuesets": ["radic"], "laterality": "left"}}), s
    ).true


def test_a_node_holds_exactly_one_branch() -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        node({"condition": {"valuesets": ["radic"]}, "not": {"rule": "RF-01"}})


def test_a_bad_duration_is_rejected() -> None:
    with pytest.raises(ValidationError, match="ISO 8601"):
        node({"condition": {"valuesets": ["radic"], "within": "12 months"}})


def test_the_shipped_catalogue_is_valid() -> None:
    assert check(PROJECT_ROOT / "rules", PROJECT_ROOT / "cards", TOPIC) == []


def test_discovery_has_one_entry_per_service_each_on_its_own_hook() -> None:
    catalogue = load_catalogue(PROJECT_ROOT / "rules", PROJECT_ROOT / "cards", TOPIC)
    pairs = [(d.id, d.hook) for d in catalogue.descriptors()]
    assert sorted(pairs) == [
        ("back-to-foot", "patient-view"),
        ("back-to-foot-order-select", "order-select"),
        ("back-to-foot-order-sign", "order-sign"),
    ]
    assert "patient" in catalogue.services["back-to-foot"].required_prefetch


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    shutil.copytree(PROJECT_ROOT / "rules", tmp_path / "rules")
    shutil.copytree(PROJECT_ROOT / "cards", tmp_path / "cards")
    return tmp_path


def edit(path: Path, change: Any) -> None:
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def test_an_unknown_value_set_is_reported_with_file_and_path(tree: Path) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["rules"][3]["when"] = {
            "all": [
                {"condition": {"valuesets": ["footpain"]}},
                {"condition": {"valuesets": ["radic-x"]}},
            ]
        }

    edit(tree / "rules" / "back-to-foot.yaml", change)
    problems = unplaced(check(tree / "rules", tree / "cards", TOPIC))
    assert problems == [
        "rules/back-to-foot.yaml: rules[3].when.all[1].condition.valuesets[0]: "
        "unknown value set 'radic-x'"
    ]


def test_every_problem_is_collected_before_raising(tree: Path) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["rules"][0]["card"] = "no-such-card"

    edit(tree / "rules" / "back-to-foot.yaml", change)
    edit(tree / "cards" / "rb-01.yaml", lambda d: d.update(summary="x" * 140))
    edit(tree / "cards" / "rb-02.yaml", lambda d: d.update(colour="red"))
    with pytest.raises(ConfigError) as caught:
        load_catalogue(tree / "rules", tree / "cards", TOPIC)
    text = "\n".join(unplaced(caught.value.problems))
    assert "cards/rb-02.yaml: colour: unknown key 'colour'; the keys here are " in text
    assert "cards/rb-01.yaml: summary: String should have at most 139 characters" in text
    # Two cards did not load, so "unknown card" would not tell the rule's typo from them.
    assert "unknown card" not in text
    assert text.endswith(
        "references between files are not checked until cards/rb-01.yaml, cards/rb-02.yaml load"
    )


def test_a_card_code_must_come_from_its_value_set(tree: Path) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["suggestions"][0]["actions"][0]["serviceRequest"]["codes"][0]["code"] = "2132-9"

    edit(tree / "cards" / "rb-01.yaml", change)
    assert unplaced(check(tree / "rules", tree / "cards", TOPIC)) == [
        "cards/rb-01.yaml: suggestions[0].actions[0].serviceRequest.codes[0].code: "
        "'2132-9' is not a shipped code of value set 'referral-physio'"
    ]


def test_an_unknown_rule_reference_is_reported(tree: Path) -> None:
    edit(
        tree / "rules" / "back-to-foot-order-sign.yaml",
        lambda d: d["rules"][0]["when"]["all"].append({"rule": "RF-99"}),
    )
    assert unplaced(check(tree / "rules", tree / "cards", TOPIC)) == [
        "rules/back-to-foot-order-sign.yaml: rules[0].when.all[8].rule: unknown rule 'RF-99'"
    ]


def test_a_service_on_two_hooks_is_refused_as_it_would_list_its_id_twice(tree: Path) -> None:
    """D-04: discovery never lists a service id twice."""
    edit(
        tree / "rules" / "back-to-foot.yaml",
        lambda d: d.update(hooks=["patient-view", "order-sign"]),
    )
    problems = unplaced(check(tree / "rules", tree / "cards", TOPIC))
    assert len(problems) == 1
    assert problems[0].startswith(
        "rules/back-to-foot.yaml: hooks: a service answers one hook, but 'back-to-foot' lists "
        "patient-view, order-sign and discovery would list its id 2 times"
    )


def test_the_order_services_share_every_rule_and_read_the_same_data() -> None:
    """One set of order rules, defined once, answered on order-sign and on order-select."""
    catalogue = load_catalogue(PROJECT_ROOT / "rules", PROJECT_ROOT / "cards", TOPIC)
    sign = catalogue.services["back-to-foot-order-sign"]
    select = catalogue.services["back-to-foot-order-select"]
    assert [r.key for r in select.rules] == [r.key for r in sign.rules]
    assert all(a is b for a, b in zip(select.rules, sign.rules, strict=True))
    assert select.prefetch == sign.prefetch
    assert select.required_prefetch == sign.required_prefetch
    assert select.precedence == sign.precedence


def test_a_prefetch_outside_the_subset_is_reported(tree: Path) -> None:
    edit(
        tree / "rules" / "back-to-foot.yaml",
        lambda d: d["prefetch"].update(bad="Condition?patient={{context.patientId}}&_include=x"),
    )
    problems = unplaced(check(tree / "rules", tree / "cards", TOPIC))
    assert problems
    assert all(p.startswith("rules/back-to-foot.yaml: prefetch.bad: ") for p in problems)


def test_a_red_flag_card_must_say_when_the_age_is_unknown(tree: Path) -> None:
    edit(tree / "cards" / "rf-03.yaml", lambda d: d.pop("unknownAgeNote"))
    assert unplaced(check(tree / "rules", tree / "cards", TOPIC)) == [
        "rules/back-to-foot.yaml: rules[2].redFlag: card 'rf-03' needs an unknownAgeNote "
        "(a red flag shown with the age unknown says so)"
    ]


def _gated(sets: ValueSets, birth: str | None, *, red_flag: bool) -> Tri:
    patient: dict[str, Any] = {"resourceType": "Patient", "id": "p1"}
    if birth is not None:
        patient["birthDate"] = birth
    record = build_record(sets, NOW, "p1", [patient, SCIATICA], windows=WINDOWS)
    rule = RuleSpec.model_validate(
        {
            "id": "XX-01",
            "name": "gated",
            "card": "x",
            "minAge": 16,
            "redFlag": red_flag,
            "when": {"condition": {"valuesets": ["radic"]}},
        }
    )
    return trigger(rule, ClauseInputs(record, {})).truth


def test_a_missing_age_never_silences_a_red_flag(sets: ValueSets) -> None:
    assert _gated(sets, None, red_flag=True) is T


def test_a_missing_age_leaves_a_non_urgent_rule_unknown(sets: ValueSets) -> None:
    assert _gated(sets, None, red_flag=False) is U


def test_a_known_age_below_the_gate_holds_for_red_flags_too(sets: ValueSets) -> None:
    assert _gated(sets, "2012-01-01", red_flag=True) is F
    assert _gated(sets, "1990-01-01", red_flag=True) is T


def _finding(rid: str, code: str, **fields: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": code}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2026-01-15",
    }
    raw.update(fields)
    return raw


def test_a_foot_exam_charted_as_an_observation_counts_as_done(sets: ValueSets) -> None:
    exam = _finding("o1", "134388005", valueCodeableConcept={"text": "normal"})
    done = node({"done": {"valuesets": ["footexam"], "within": "P12M", "in": ["observation"]}})
    not_as_procedure = node({"done": {"valuesets": ["footexam"], "in": ["procedure"]}})
    assert result_of(done, inputs(sets, exam)).true
    assert result_of(not_as_procedure, inputs(sets, exam)).truth is F


def test_a_negative_monofilament_test_was_still_done(sets: ValueSets) -> None:
    negative = _finding("o1", "134388005", interpretation=[{"coding": [{"code": "NEG"}]}])
    done = node({"done": {"valuesets": ["footexam"], "in": ["observation"]}})
    assert result_of(done, inputs(sets, negative)).true


def test_a_symptom_stated_absent_is_not_present(sets: ValueSets) -> None:
    no_numbness = _finding("o1", "44077006", valueBoolean=False)
    numb = node({"condition": {"valuesets": ["sensory"], "findings": True}})
    assert result_of(numb, inputs(sets, no_numbness)).truth is F


def _pain(rid: str, when: str, **value: Any) -> dict[str, Any]:
    raw = _finding(rid, "x", effectiveDateTime=when, **value)
    raw["code"] = {"coding": [{"system": "http://loinc.org", "code": "72514-3"}]}
    return raw


def test_only_the_latest_pain_score_is_compared(sets: ValueSets) -> None:
    severe = _pain("o1", "2026-02-10", valueQuantity={"value": 8, "code": "{score}"})
    settled = _pain("o2", "2026-02-25", valueInteger=2)
    clause = {"valuesets": ["pain-score"], "unit": "{score}", "within": "P30D", "gte": 7}
    assert result_of(node({"observation": clause}), inputs(sets, severe)).true
    assert result_of(node({"observation": clause}), inputs(sets, severe, settled)).truth is F
    every = node({"observation": {**clause, "latest": False}})
    assert result_of(every, inputs(sets, severe, settled)).true


def test_an_unknown_limb_symptom_set_is_reported(tree: Path) -> None:
    edit(tree / "rules" / "back-to-foot.yaml", lambda d: d["limbSymptoms"].append("hand-x"))
    assert unplaced(check(tree / "rules", tree / "cards", TOPIC)) == [
        "rules/back-to-foot.yaml: limbSymptoms[8]: unknown value set 'hand-x'"
    ]
