"""The shortcuts that make reading a matched resource cheaper answer what the general path
answers: the subject check remembered for one call, the digest taken once for both memos,
full dateTimes read without the partial-date pattern, an entry's name from its one coding."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cds.fhir import ParseReport, ValidationMemo, read_resource
from cds.record.build import _display, _texts
from cds.record.dates import parse_datetime
from cds.subjects import SubjectCheck, names_other_patient

REFERENCES = [
    "Patient/p1",
    "Patient/p2",
    "https://ehr.example/fhir/Patient/p1",
    "https://ehr.example/fhir/Patient/p2/_history/3",
    "Patient/p1?x=1",
    "#contained",
    "urn:uuid:0b0e",
    "Group/p2",
    "",
]


@pytest.mark.parametrize("patient_id", ["p1", "p2", "p1?x=1"])
def test_a_calls_subject_check_answers_every_reference_as_the_function_does(
    patient_id: str,
) -> None:
    check = SubjectCheck(patient_id)
    for _ in range(2):  # the second round answers from what the first remembered
        for reference in REFERENCES:
            for field in ("subject", "patient"):
                raw = {field: {"reference": reference}}
                assert check.names_other_patient(raw) is names_other_patient(raw, patient_id)


def test_a_subject_check_refuses_the_other_patient_of_either_field() -> None:
    check = SubjectCheck("p1")
    own = {"reference": "Patient/p1"}
    other = {"reference": "Patient/p2"}
    assert not check.names_other_patient({"subject": own, "patient": own})
    assert check.names_other_patient({"subject": own, "patient": other})
    assert check.names_other_patient({"subject": other})
    assert not check.names_other_patient({"subject": "Patient/p2"})  # not a Reference object


def test_reading_with_the_digest_given_answers_and_counts_as_reading_without_it() -> None:
    valid = {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"}}
    invalid = {**valid, "clinicalStatus": "active"}
    for raw in (valid, invalid):
        memo, given = ValidationMemo(10), ValidationMemo(10)
        key = given.digest(raw)
        assert key is not None
        assert key == memo.digest(dict(raw))
        for _ in range(2):
            plain, fast = ParseReport(), ParseReport()
            assert read_resource(raw, plain, memo) == read_resource(raw, fast, given, key)
            assert (plain.parsed, plain.skipped, plain.remembered) == (
                fast.parsed,
                fast.skipped,
                fast.remembered,
            )
        assert (memo.hits, memo.misses) == (given.hits, given.misses) == (1, 1)


def test_no_digest_is_taken_when_the_memo_is_off_or_the_content_is_not_json() -> None:
    assert ValidationMemo(0).digest({"resourceType": "Condition"}) is None
    assert ValidationMemo(10).digest({"resourceType": "Condition", "id": {1, 2}}) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025", datetime(2025, 1, 1, tzinfo=UTC)),
        ("2025-07", datetime(2025, 7, 1, tzinfo=UTC)),
        ("2025-07-09", datetime(2025, 7, 9, tzinfo=UTC)),
        ("20250709", datetime(2025, 7, 9, tzinfo=UTC)),
        ("2025-07-09T10:30:00Z", datetime(2025, 7, 9, 10, 30, tzinfo=UTC)),
        ("2025-07-09T10:30:00+02:00", datetime(2025, 7, 9, 8, 30, tzinfo=UTC)),
        ("2025-07-09T10:30:00", datetime(2025, 7, 9, 10, 30, tzinfo=UTC)),
        ("2025-07-09T10:30:00.123-05:00", datetime(2025, 7, 9, 15, 30, 0, 123000, tzinfo=UTC)),
        ("2025-13", None),
        ("2025-07-09T25:00:00Z", None),
        ("07/09/2025", None),
        ("", None),
    ],
)
def test_dates_and_datetimes_of_any_length_read_as_before(
    text: str, expected: datetime | None
) -> None:
    parsed = parse_datetime(text)
    assert parsed == expected
    if parsed is not None:
        assert parsed.utcoffset() == timedelta(0)
        assert parsed.tzinfo is UTC


def _general_display(concept: object, fallback: str) -> str:
    texts = _texts(concept)
    if len(texts) > 1:
        return texts[1]
    return texts[0] if texts else fallback


@pytest.mark.parametrize("text", [None, "", "Sciatica", 7])
@pytest.mark.parametrize("display", [None, "", "Radiculopathy, lumbar", 7])
@pytest.mark.parametrize("extra_codings", [[], [{"display": "Second"}], ["junk"]])
def test_an_entry_is_named_alike_whether_its_concept_has_one_coding_or_more(
    text: Any, display: Any, extra_codings: list[Any]
) -> None:
    coding: dict[str, Any] = {"system": "http://snomed.info/sct", "code": "1"}
    if display is not None:
        coding["display"] = display
    concept: dict[str, Any] = {"coding": [coding, *extra_codings]}
    if text is not None:
        concept["text"] = text
    assert _display(concept, "Condition") == _general_display(concept, "Condition")
