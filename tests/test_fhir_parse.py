"""Lenient R4 parsing with the fhir.resources R4B models: bad resources are skipped and counted."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from cds.fhir import (
    MAX_RESOURCE_DEPTH,
    ParseReport,
    ValidationMemo,
    is_valid,
    model_class,
    parse_resource,
    parse_resources,
)

R4_CONDITION: dict[str, Any] = {
    "resourceType": "Condition",
    "id": "c1",
    "clinicalStatus": {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                "code": "active",
            }
        ]
    },
    "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "M54.16"}]},
    "subject": {"reference": "Patient/p1"},
}
# STU3 shape: clinicalStatus is a code and assertedDate exists; R4 rejects both.
STU3_CONDITION: dict[str, Any] = {
    "resourceType": "Condition",
    "id": "c-stu3",
    "clinicalStatus": "active",
    "assertedDate": "2017-01-01",
    "subject": {"reference": "Patient/p1"},
}
# DSTU2 type that R4 does not have (the sandbox's default DSTU2 server sends it, SB-05).
DSTU2_ORDER: dict[str, Any] = {
    "resourceType": "MedicationOrder",
    "id": "order-123",
    "patient": {"reference": "Patient/p1"},
}


def test_a_valid_r4_resource_parses_into_its_r4b_model() -> None:
    """P-09: R4 data parses with the R4B models."""
    report = ParseReport()
    model = parse_resource(R4_CONDITION, report)
    assert model is not None
    assert type(model).__name__ == "Condition"
    assert model.code.coding[0].code == "M54.16"
    assert report.parsed == 1
    assert report.skipped_total == 0


@pytest.mark.parametrize(
    ("raw", "counted_as"),
    [
        (STU3_CONDITION, "Condition"),
        (DSTU2_ORDER, "MedicationOrder"),
        ({"resourceType": "Observation", "status": "final"}, "Observation"),  # no code
        ({"id": "no-type"}, "(unknown)"),
        ("not even an object", "(unknown)"),
    ],
)
def test_invalid_or_older_fhir_versions_are_skipped_and_counted(raw: Any, counted_as: str) -> None:
    """R-12, SB-05: DSTU2/STU3-shaped or malformed resources are skipped, never fatal."""
    report = ParseReport()
    assert parse_resource(raw, report) is None
    assert report.skipped == {counted_as: 1}
    assert report.parsed == 0


def _logged(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [{"message": r.getMessage(), **getattr(r, "fields", {})} for r in caplog.records]


def test_a_skipped_resource_is_logged_by_type_element_path_and_count_never_its_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A resource id is patient data: the log names the type, the failing elements, a count."""
    caplog.set_level(logging.INFO, logger="cds.fhir")
    parse_resource(STU3_CONDITION)
    assert _logged(caplog) == [
        {
            "message": "FHIR resources skipped",
            "resource_type": "Condition",
            # assertedDate is no R4 element: a key R4 does not define is the sender's text.
            "reason": "invalid at (not an R4 element), clinicalStatus",
            "count": 1,
        }
    ]
    assert "c-stu3" not in caplog.text
    assert "assertedDate" not in caplog.text
    assert "2017-01-01" not in caplog.text
    assert "'active'" not in caplog.text


def test_parse_resources_keeps_the_good_ones_in_order() -> None:
    """One bad resource never spoils the rest (architecture principle 5)."""
    report = ParseReport()
    second = {**R4_CONDITION, "id": "c2"}
    models = parse_resources([R4_CONDITION, STU3_CONDITION, DSTU2_ORDER, second], report)
    assert [m.id for m in models] == ["c1", "c2"]
    assert report.parsed == 2
    assert report.skipped == {"Condition": 1, "MedicationOrder": 1}


def test_model_class_knows_r4_types_and_not_dstu2_ones() -> None:
    """R-12: MedicationOrder exists only in DSTU2."""
    assert model_class("MedicationRequest") is not None
    assert model_class("MedicationOrder") is None


# --- Remembering validation outcomes ------------------------------------------------------


def test_a_remembered_outcome_answers_exactly_as_validating_again() -> None:
    """A repeat chart costs a digest per resource; the answer and the skip count are the same."""
    memo = ValidationMemo(max_entries=10)
    assert memo.check(R4_CONDITION)[0] is None
    first = memo.check(STU3_CONDITION)[0]
    assert first is not None
    assert "clinicalStatus" in first
    assert memo.check(dict(R4_CONDITION))[0] is None
    assert memo.check(dict(STU3_CONDITION))[0] == first
    assert (memo.hits, memo.misses) == (2, 2)


def test_changed_content_is_validated_afresh() -> None:
    memo = ValidationMemo(max_entries=10)
    memo.check(R4_CONDITION)
    broken = {**R4_CONDITION, "clinicalStatus": "active"}
    assert memo.check(broken)[0] is not None
    assert memo.misses == 2


def test_the_memo_forgets_the_least_recently_used_beyond_its_size() -> None:
    memo = ValidationMemo(max_entries=2)
    a, b, c = ({**R4_CONDITION, "id": i} for i in ("a", "b", "c"))
    memo.check(a)
    memo.check(b)
    memo.check(a)  # a is now the most recent
    memo.check(c)  # evicts b
    assert len(memo) == 2
    memo.check(a)
    memo.check(b)
    assert (memo.hits, memo.misses) == (2, 4)


def test_a_memo_of_size_zero_validates_every_time() -> None:
    memo = ValidationMemo(max_entries=0)
    memo.check(R4_CONDITION)
    memo.check(R4_CONDITION)
    assert (len(memo), memo.hits, memo.misses) == (0, 0, 0)


def test_resizing_the_memo_drops_the_oldest_entries() -> None:
    memo = ValidationMemo(max_entries=5)
    for i in range(5):
        memo.check({**R4_CONDITION, "id": f"c{i}"})
    memo.resize(2)
    assert len(memo) == 2
    memo.check({**R4_CONDITION, "id": "c4"})
    assert memo.hits == 1


def test_content_that_is_not_json_is_validated_without_the_memo() -> None:
    memo = ValidationMemo(max_entries=10)
    odd = {**R4_CONDITION, "note": [{"text": {1, 2}}]}  # a set: orjson cannot digest it
    assert memo.check(odd)[0] is not None
    assert len(memo) == 0


def _nested_note(levels: int) -> dict[str, Any]:
    """R4_CONDITION with a note extension nested ``levels`` extensions deep."""
    extension: dict[str, Any] = {"url": "https://example.org/x", "valueString": "leaf"}
    for _ in range(levels):
        extension = {"url": "https://example.org/x", "extension": [extension]}
    return {**R4_CONDITION, "note": [{"text": "n", "extension": [extension]}]}


def test_a_resource_nested_past_the_limit_is_skipped_whether_or_not_the_memo_runs() -> None:
    deep = _nested_note(MAX_RESOURCE_DEPTH)
    for memo in (ValidationMemo(max_entries=10), ValidationMemo(max_entries=0)):
        problem = memo.check(deep)[0]
        assert problem is not None
        assert "deeper" in problem


def test_brackets_inside_strings_never_hide_a_too_deep_resource() -> None:
    # Text full of brackets over-counts containers, so the walk still runs and still decides.
    deep = {**_nested_note(MAX_RESOURCE_DEPTH), "id": "[" * 10 + "{" * 10}
    shallow = {**_nested_note(3), "id": "c-" + "x" * 10}
    noisy_shallow = {**shallow, "note": [{"text": "[{" * 100}]}
    memo = ValidationMemo(max_entries=10)
    assert "deeper" in (memo.check(deep)[0] or "")
    assert memo.check(shallow)[0] is None
    assert memo.check(noisy_shallow)[0] is None


def test_the_memo_keeps_digests_and_reasons_never_patient_data() -> None:
    """House rule: no PHI at rest in process caches either."""
    memo = ValidationMemo(max_entries=10)
    memo.check(R4_CONDITION)
    memo.check(STU3_CONDITION)
    for key, reason in memo._outcomes.items():
        assert isinstance(key, bytes)
        assert len(key) == 16
        assert "2017-01-01" not in reason
        assert "M54.16" not in reason


def test_is_valid_counts_and_logs_like_parsing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="cds.fhir")
    report = ParseReport()
    for _ in range(2):  # the second time from the memo
        assert is_valid(R4_CONDITION, report)
        assert not is_valid(STU3_CONDITION, report)
    assert not is_valid("not a resource", report)
    assert report.parsed == 2
    assert report.skipped == {"Condition": 2, "(unknown)": 1}
    assert caplog.records == []  # the caller logs a report, once per call
    report.log()
    counts = {(r["resource_type"], r["count"]) for r in _logged(caplog)}
    assert counts == {("Condition", 2), ("(unknown)", 1)}
    assert "c-stu3" not in caplog.text
    report.log()  # logged once: a second call adds nothing
    assert len(caplog.records) == 2
