"""Lenient reading: single values where R4 repeats an element and one-item lists where it does
not are reshaped by the R4B models' cardinality, counted, and never hide what cannot be read."""

from __future__ import annotations

import copy
import logging
from typing import Any

import pytest

from cds.fhir import ParseReport, ValidationMemo, model_class, parse_resource, read_resource
from cds.fhir_repair import Definitions

SUBJECT = {"reference": "Patient/p1"}
CATEGORY = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category",
            "code": "outpatient",
        }
    ]
}


def medication_request(**changes: Any) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": "zq-order-5d1e",
        "status": "draft",
        "intent": "order",
        "subject": SUBJECT,
        "medicationCodeableConcept": {"text": "Pregabalin 75 mg capsule"},
        **changes,
    }


@pytest.fixture
def memo() -> ValidationMemo:
    """Each test reads through a memo of its own, so validation runs where it says."""
    return ValidationMemo(max_entries=10)


def test_a_single_object_where_r4_repeats_the_element_is_read_as_a_one_item_list(
    memo: ValidationMemo,
) -> None:
    raw = medication_request(category=CATEGORY)
    report = ParseReport()
    readout = read_resource(raw, report, memo)
    assert readout.doc == medication_request(category=[CATEGORY])
    assert report.repaired == {("MedicationRequest", "category"): 1}
    assert (report.parsed, report.skipped_total) == (1, 0)


def test_a_one_item_list_where_r4_wants_one_value_is_read_as_that_value(
    memo: ValidationMemo,
) -> None:
    raw = {"resourceType": "Patient", "id": "p1", "gender": ["female"], "birthDate": "1960-02-01"}
    report = ParseReport()
    assert read_resource(raw, report, memo).doc == {**raw, "gender": "female"}
    assert report.repaired == {("Patient", "gender"): 1}


def test_shapes_are_repaired_inside_backbone_elements_and_datatypes_at_every_depth(
    memo: ValidationMemo,
) -> None:
    raw = medication_request(
        category={"coding": CATEGORY["coding"][0]},  # a bare Coding inside a bare concept
        dosageInstruction={"timing": {"event": "2026-03-01", "repeat": {"frequency": 1}}},
        note=[{"text": "take at night"}],
    )
    report = ParseReport()
    doc = read_resource(raw, report, memo).doc
    assert doc is not None
    assert doc["category"] == [CATEGORY]
    assert doc["dosageInstruction"] == [
        {"timing": {"event": ["2026-03-01"], "repeat": {"frequency": 1}}}
    ]
    assert report.repaired == {
        ("MedicationRequest", "category"): 1,
        ("MedicationRequest", "category.coding"): 1,
        ("MedicationRequest", "dosageInstruction"): 1,
        ("MedicationRequest", "dosageInstruction.timing.event"): 1,
    }


def test_a_contained_resource_is_reshaped_by_its_own_type(memo: ValidationMemo) -> None:
    contained = {"resourceType": "Medication", "id": "m1", "ingredient": {"itemReference": SUBJECT}}
    raw = medication_request(contained=[contained])
    report = ParseReport()
    doc = read_resource(raw, report, memo).doc
    assert doc is not None
    assert doc["contained"][0]["ingredient"] == [{"itemReference": SUBJECT}]
    assert report.repaired == {("MedicationRequest", "contained.ingredient"): 1}


def test_what_no_reshaping_can_fix_is_still_refused_and_the_input_is_never_changed(
    memo: ValidationMemo,
) -> None:
    # Two birth dates where R4 allows one: no way to choose, so the Patient cannot be read.
    raw = {"resourceType": "Patient", "id": "p1", "birthDate": ["1960-02-01", "1961-02-01"]}
    category_too = medication_request(category=CATEGORY, status={"code": "active"})
    sent = copy.deepcopy([raw, category_too])
    report = ParseReport()
    first, second = read_resource(raw, report, memo), read_resource(category_too, report, memo)
    assert (first.doc, first.problem) == (None, "invalid at birthDate")
    assert (second.doc, second.problem) == (None, "invalid at status")
    assert [raw, category_too] == sent
    assert report.skipped == {"Patient": 1, "MedicationRequest": 1}
    assert report.repaired == {}  # repairs of a resource still refused are not counted


def test_a_valid_resource_is_read_as_sent_without_a_copy(memo: ValidationMemo) -> None:
    raw = medication_request(category=[CATEGORY])
    report = ParseReport()
    assert read_resource(raw, report, memo).doc is raw
    assert report.repaired == {}


def test_the_model_of_a_reshaped_resource_has_r4_shapes() -> None:
    model = parse_resource(medication_request(category=CATEGORY))
    assert model is not None
    assert model.category[0].coding[0].code == "outpatient"


def test_the_memo_remembers_the_reshaping_and_replays_it_without_validating() -> None:
    memo = ValidationMemo(max_entries=10)
    raw = medication_request(category=CATEGORY)
    first, remembered_first = memo.read(raw)
    second, remembered_second = memo.read(copy.deepcopy(raw))
    assert (remembered_first, remembered_second) == (False, True)
    assert second.doc == first.doc == medication_request(category=[CATEGORY])
    assert second.repairs == first.repairs
    # What it keeps is where and which element: R4 names and list positions, no value or id.
    (kept,) = memo._outcomes.values()
    assert isinstance(kept, tuple)
    assert [(r.loc, r.path, r.wrap) for r in kept] == [(("category",), "category", True)]


def test_cardinality_comes_from_the_r4b_models_and_is_remembered_per_path() -> None:
    definitions = Definitions(model_class)
    element = definitions.element
    assert element("Patient", ("name",)).repeats  # type: ignore[union-attr]
    assert element("Patient", ("name", "given")).repeats  # type: ignore[union-attr]
    assert not element("Patient", ("gender",)).repeats  # type: ignore[union-attr]
    assert not element("MedicationRequest", ("dispenseRequest", "quantity")).repeats  # type: ignore[union-attr]
    assert element("MedicationRequest", ("dosageInstruction", "timing", "event")).repeats  # type: ignore[union-attr]
    assert element("Patient", ("assertedDate",)) is None
    misses = element.cache_info().misses
    element("Patient", ("name", "given"))
    assert element.cache_info().misses == misses


def test_repairs_are_logged_by_type_element_and_count_only(
    caplog: pytest.LogCaptureFixture,
    memo: ValidationMemo,
) -> None:
    caplog.set_level(logging.INFO, logger="cds.fhir")
    report = ParseReport()
    for _ in range(3):
        read_resource(medication_request(category=CATEGORY), report, memo)
    report.log()
    (record,) = caplog.records
    assert record.getMessage() == "FHIR elements reshaped to their R4 cardinality"
    assert record.fields == {  # type: ignore[attr-defined]
        "resource_type": "MedicationRequest",
        "element": "category",
        "count": 3,
    }
    assert "zq-order-5d1e" not in caplog.text
    assert "Pregabalin" not in caplog.text
