"""PatientRecord: rules.md section 3 data semantics over raw FHIR JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cds.record import PatientRecord, build_record
from cds.record.dates import Duration, parse_datetime, parse_duration
from cds.record.laterality import is_foot
from cds.record.units import convert
from cds.rules.policy import load_policy
from cds.settings import PROJECT_ROOT
from cds.valuesets import ICD10CM, ValueSets, load_valuesets

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
# The windows a record reads Conditions by, as shipped in rules/policy/clinical.yaml.
WINDOWS = load_policy(PROJECT_ROOT / "rules").condition_windows
SCT = "http://snomed.info/sct"
RADIC = frozenset({"radic"})


@pytest.fixture(scope="module")
def sets() -> ValueSets:
    return load_valuesets(PROJECT_ROOT / "rules" / "valuesets")


def condition(code: str = "M54.16", rid: str = "c1", **fields: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "resourceType": "Condition",
        "id": rid,
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": ICD10CM, "code": code, "display": "x"}]},
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "onsetDateTime": "2026-02-01",
    }
    raw.update(fields)
    return raw


def record(sets: ValueSets, *resources: dict[str, Any], **kw: Any) -> PatientRecord:
    patient = {"resourceType": "Patient", "id": "p1", "birthDate": "1970-05-01"}
    return build_record(sets, NOW, "p1", [patient, *resources], windows=WINDOWS, **kw)


def test_a_refuted_radiculopathy_never_counts(sets: ValueSets) -> None:
    refuted = condition(verificationStatus={"coding": [{"code": "refuted"}]})
    assert record(sets, refuted).conditions(RADIC, history=True) == []


def test_an_entered_in_error_condition_never_counts(sets: ValueSets) -> None:
    wrong = condition(verificationStatus={"coding": [{"code": "entered-in-error"}]})
    assert record(sets, wrong).conditions(RADIC, differential=True) == []


def test_a_differential_counts_only_where_the_rule_allows_it(sets: ValueSets) -> None:
    rec = record(sets, condition(verificationStatus={"coding": [{"code": "differential"}]}))
    assert rec.conditions(RADIC) == []
    assert len(rec.conditions(RADIC, differential=True)) == 1


def test_a_resolved_condition_is_not_active_but_is_history(sets: ValueSets) -> None:
    rec = record(sets, condition(clinicalStatus={"coding": [{"code": "resolved"}]}))
    assert rec.conditions(RADIC) == []
    assert len(rec.conditions(RADIC, history=True)) == 1


def test_a_past_abatement_ends_an_active_condition(sets: ValueSets) -> None:
    assert record(sets, condition(abatementDateTime="2026-02-20")).conditions(RADIC) == []


def test_a_future_abatement_keeps_the_condition_active(sets: ValueSets) -> None:
    assert record(sets, condition(abatementDateTime="2026-06-01")).conditions(RADIC)


def test_without_clinical_status_only_recent_unabated_conditions_count(sets: ValueSets) -> None:
    recent = condition(rid="a", clinicalStatus=None)
    old = condition(rid="b", clinicalStatus=None, onsetDateTime="2024-01-01")
    assert [e.id for e in record(sets, recent, old).conditions(RADIC)] == ["a"]


def test_evidence_date_falls_back_from_onset_to_age_to_recorded_date(sets: ValueSets) -> None:
    by_age = condition(rid="a", onsetDateTime=None, onsetAge={"value": 50, "code": "a"})
    by_recorded = condition(rid="b", onsetDateTime=None, recordedDate="2025-12-24")
    undated = condition(rid="c", onsetDateTime=None)
    rec = record(sets, by_age, by_recorded, undated)
    dates = {e.id: e.date for e in rec.entries}
    assert dates["a"] == datetime(2020, 5, 1, tzinfo=UTC)
    assert dates["b"] == datetime(2025, 12, 24, tzinfo=UTC)
    assert dates["c"] is None


def test_laterality_comes_from_icd_digits_and_body_site(sets: ValueSets) -> None:
    left = condition("M54.32", rid="a")
    right_by_site = condition("R20.2", rid="b", bodySite=[{"text": "Right foot"}])
    sides = {e.id: e.side for e in record(sets, left, right_by_site).entries}
    assert sides == {"a": "left", "b": "right"}


def test_a_record_whose_code_and_body_site_disagree_has_an_unknown_side(sets: ValueSets) -> None:
    conflict = condition("M54.41", rid="a", bodySite=[{"text": "Left leg"}])
    agreeing = condition("M54.42", rid="b", bodySite=[{"text": "Left leg"}])
    both_sites = condition(
        "M54.16", rid="c", bodySite=[{"text": "Left leg"}, {"text": "Right leg"}]
    )
    explicit = condition("G57.03", rid="d")
    sides = {e.id: e.side for e in record(sets, conflict, agreeing, both_sites, explicit).entries}
    assert sides == {"a": None, "b": "left", "c": "bilateral", "d": "bilateral"}


LIMB = frozenset({"sensory", "sensory-r20", "motor", "motor-unsited", "footpain"})


@pytest.mark.parametrize(
    ("sites", "counts"),
    [
        (["Left hand"], False),
        (["Both arms"], False),
        (["Face"], False),
        (["Left foot"], True),
        (["Left"], True),
        (["Structure of gizmo"], True),
        (["Right hand", "Right foot"], True),
        ([], True),
    ],
)
def test_a_symptom_sited_outside_the_lower_limb_never_counts(
    sets: ValueSets, sites: list[str], counts: bool
) -> None:
    numb = condition("R20.2", rid="a", bodySite=[{"text": t} for t in sites] or None)
    if not sites:
        numb.pop("bodySite")
    built = record(sets, numb, limb_symptoms=LIMB)
    assert bool(built.conditions(frozenset({"sensory"}))) is counts


def test_a_sited_finding_outside_the_leg_is_dropped_but_other_sets_stay(sets: ValueSets) -> None:
    hand = condition("R20.2", rid="a", bodySite=[{"text": "Left hand"}])
    lumbar = condition("M54.16", rid="b", bodySite=[{"text": "Lumbar region"}])
    ids = {e.id for e in record(sets, hand, lumbar, limb_symptoms=LIMB).entries}
    assert ids == {"b"}


def test_preliminary_observations_are_ignored(sets: ValueSets) -> None:
    pain = {
        "resourceType": "Observation",
        "id": "o1",
        "status": "preliminary",
        "code": {"coding": [{"system": "http://loinc.org", "code": "72514-3"}]},
        "effectiveDateTime": "2026-02-27",
        "valueQuantity": {"value": 8, "code": "{score}"},
    }
    assert record(sets, pain).measurements(frozenset({"pain-score"}), "{score}") == []


def test_pain_scores_accept_score_or_no_unit_within_zero_to_ten() -> None:
    assert convert(7, "{score}", "{score}") == 7
    assert convert(7, None, "{score}") == 7
    assert convert(11, None, "{score}") is None
    assert convert(7, "mm", "{score}") is None


def test_weights_convert_to_kg_and_unitless_values_are_excluded() -> None:
    assert convert(160, "[lb_av]", "kg") == pytest.approx(72.57, abs=0.01)
    assert convert(70000, "g", "kg") == 70
    assert convert(70, None, "kg") is None


def test_hba1c_in_mmol_per_mol_converts_to_ngsp_percent() -> None:
    assert convert(53, "mmol/mol", "%") == pytest.approx(7.0, abs=0.01)


def test_b12_in_pmol_per_litre_converts_to_pg_per_ml() -> None:
    assert convert(147.6, "pmol/L", "pg/mL") == pytest.approx(200, abs=0.1)


@pytest.mark.parametrize(
    ("value", "unit", "target", "expected"),
    [
        (147.6, "pmol/l", "pg/mL", 200),
        (147.6, "PMOL/L", "pg/mL", 200),
        (450, "pg/ml", "pg/mL", 450),
        (450, "PG/ML", "pg/mL", 450),
        (53, "MMOL/MOL", "%", 7.0),
        (53, "mmol/Mol", "%", 7.0),
        (70, "KG", "kg", 70),
    ],
)
def test_units_are_read_in_any_letter_case(
    value: float, unit: str, target: str, expected: float
) -> None:
    assert convert(value, unit, target) == pytest.approx(expected, abs=0.1)


@pytest.mark.parametrize("unit", ["mg", "ug/L", "nmol/L", "mmol/L", "percent"])
def test_an_unknown_unit_still_excludes_the_value(unit: str) -> None:
    assert convert(450, unit, "pg/mL") is None
    assert convert(7, unit, "%") is None


def encounter_diagnosis(onset: str, rid: str = "c1") -> dict[str, Any]:
    return condition(
        rid=rid,
        onsetDateTime=onset,
        category=[{"coding": [{"code": "encounter-diagnosis"}]}],
    )


def test_an_encounter_diagnosis_counts_for_twelve_months_whatever_its_status(
    sets: ValueSets,
) -> None:
    recent = record(sets, encounter_diagnosis("2025-04-01"))
    old = record(sets, encounter_diagnosis("2025-02-15"))
    assert len(recent.conditions(RADIC)) == 1
    assert old.conditions(RADIC) == []
    assert len(old.conditions(RADIC, history=True)) == 1


def test_a_problem_list_entry_does_not_expire_like_an_encounter_diagnosis(
    sets: ValueSets,
) -> None:
    both = condition(
        onsetDateTime="2020-01-01",
        category=[
            {"coding": [{"code": "encounter-diagnosis"}]},
            {"coding": [{"code": "problem-list-item"}]},
        ],
    )
    assert len(record(sets, both).conditions(RADIC)) == 1


def test_a_site_unspecified_radiculopathy_counts_only_with_lumbar_context(
    sets: ValueSets,
) -> None:
    unsited = condition(code="M54.10")
    assert record(sets, unsited).conditions(RADIC) == []
    with_disc = record(sets, unsited, condition(code="M51.26", rid="c2"))
    assert [e.id for e in with_disc.conditions(RADIC)] == ["c1"]
    sited = condition(code="M54.10", bodySite=[{"text": "Lumbar spine"}])
    assert len(record(sets, sited).conditions(RADIC)) == 1


def test_a_site_unspecified_code_beside_a_sited_code_keeps_its_sets(sets: ValueSets) -> None:
    both = condition()
    both["code"] = {
        "coding": [
            {"system": SCT, "code": "72274001", "display": "Nerve root disorder"},
            {"system": ICD10CM, "code": "M54.16", "display": "Radiculopathy, lumbar region"},
        ]
    }
    assert len(record(sets, both).conditions(RADIC)) == 1


def test_a_resolved_lumbar_problem_is_no_context_for_a_site_unspecified_code(
    sets: ValueSets,
) -> None:
    old_back = condition(code="M54.50", rid="c2", clinicalStatus={"coding": [{"code": "resolved"}]})
    assert record(sets, condition(code="M54.10"), old_back).conditions(RADIC) == []


def test_a_text_only_problem_is_counted_as_skipped_for_coding(sets: ValueSets) -> None:
    text_only = {
        "resourceType": "Condition",
        "id": "t1",
        "subject": {"reference": "Patient/p1"},
        "code": {"text": "sciatica"},
    }
    rec = record(sets, text_only, condition())
    assert rec.skipped == {"Condition": 1}
    assert [e.id for e in rec.entries] == ["c1"]


def test_a_draft_order_counts_as_being_ordered_now(sets: ValueSets) -> None:
    draft = {
        "resourceType": "ServiceRequest",
        "id": "d1",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "72148"}]},
    }
    rec = record(sets, drafts=[draft])
    assert [e.id for e in rec.done(frozenset({"lmri-lumbar"}), ["order"])] == ["d1"]
    assert rec.done(frozenset({"lmri-lumbar"}), ["order"], drafts=False) == []


def test_a_draft_service_request_outside_the_context_does_not_count(sets: ValueSets) -> None:
    stored = {
        "resourceType": "ServiceRequest",
        "id": "s1",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": SCT, "code": "308447003"}]},
    }
    assert record(sets, stored).done(frozenset({"referral-physio"}), ["order"]) == []


def test_a_referral_matches_by_performer_type(sets: ValueSets) -> None:
    referral = {
        "resourceType": "ServiceRequest",
        "id": "s1",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "authoredOn": "2026-02-01",
        "code": {"coding": [{"system": SCT, "code": "103696004"}]},
        "performerType": {
            "coding": [{"system": "http://nucc.org/provider-taxonomy", "code": "213E00000X"}]
        },
    }
    assert record(sets, referral).done(frozenset({"referral-podiatry"}), ["order"])


def test_only_resources_some_value_set_matches_are_validated(sets: ValueSets) -> None:
    noise = [
        {
            "resourceType": "Observation",
            "id": f"n{i}",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        }
        for i in range(500)
    ]
    rec = record(sets, *noise, condition())
    assert rec.models_built == 2  # the Patient and the one matching Condition


def test_an_invalid_matching_resource_is_skipped_and_counted_by_type(sets: ValueSets) -> None:
    broken = condition(onsetDateTime="not-a-date", clinicalStatus="active")
    rec = record(sets, broken)
    assert rec.entries == []
    assert rec.skipped == {"Condition": 1}


@pytest.mark.parametrize(
    "code",
    [
        {"coding": 5},
        {"coding": "M54.16"},
        {"coding": [None, 7, {"system": ICD10CM, "code": 5416}]},
        ["not", "a", "concept"],
        {"coding": [{"system": ICD10CM, "code": "M54.16"}]},
    ],
)
def test_a_malformed_codeable_concept_matches_nothing_and_fails_nothing(
    sets: ValueSets, code: Any
) -> None:
    """Bad input loses nothing: only the resource with a well-formed matching coding counts."""
    rec = record(sets, {**condition(rid="bad"), "code": code}, condition(rid="good"))
    well_formed = code == {"coding": [{"system": ICD10CM, "code": "M54.16"}]}
    assert [e.id for e in rec.entries] == (["bad", "good"] if well_formed else ["good"])


def test_a_lab_named_b12_only_in_text_matches_the_b12_result_set(sets: ValueSets) -> None:
    b12 = {
        "resourceType": "Observation",
        "id": "b12",
        "status": "final",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": "urn:local", "code": "L1", "display": "Vit. B12"}]},
        "valueQuantity": {"value": 180, "unit": "pg/mL"},
        "effectiveDateTime": "2026-02-01",
    }
    named_in_value = {
        **b12,
        "id": "b12-text",
        "code": {"text": "Send-out"},
        "valueQuantity": None,
        "valueCodeableConcept": {"text": "cobalamin low"},
    }
    del named_in_value["valueQuantity"]
    rec = record(sets, b12, named_in_value)
    assert {e.id: "b12-result" in e.valuesets for e in rec.entries} == {
        "b12": True,
        "b12-text": True,
    }


def test_a_deceased_patient_is_flagged(sets: ValueSets) -> None:
    patient = {"resourceType": "Patient", "id": "p1", "deceasedDateTime": "2026-01-01"}
    assert build_record(sets, NOW, "p1", [patient], windows=WINDOWS).deceased


def test_calendar_month_durations_clamp_to_the_month_end() -> None:
    assert parse_duration("P1M").before(datetime(2026, 3, 31, tzinfo=UTC)).day == 28
    assert parse_duration("P6W") == Duration(days=42)
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_duration("12 months")


def test_partial_fhir_dates_start_their_period() -> None:
    assert parse_datetime("2025") == datetime(2025, 1, 1, tzinfo=UTC)
    assert parse_datetime("2025-07") == datetime(2025, 7, 1, tzinfo=UTC)
    assert parse_datetime("garbage") is None


@pytest.mark.parametrize(
    ("site", "foot"),
    [
        ("Left foot", True),
        ("Both soles", True),
        ("Right heel", True),
        ("Plantar surface", True),
        ("Left calf", False),
        ("Right hand", False),
        ("Lower leg", False),
    ],
)
def test_a_foot_site_is_named_by_foot_words_only(site: str, foot: bool) -> None:
    assert is_foot(site) is foot
