"""The record's queries read the entries of the kinds they ask for from lists made once per
record, and the Condition windows' starts computed once: they answer what scanning every entry
answers, in the record's order, and follow a record whose entries or clock are another."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from itertools import combinations, product

from cds.catalogue import Catalogue
from cds.clock import clock_for
from cds.record import Entry, PatientRecord
from cds.record.model import OBSERVATION_KINDS, DoneKind
from cds.record.units import convert
from tests.test_compiled_rules import CASE_DATA, CASES, _body, _record
from tests.test_compiled_sharing import _records
from tests.test_record import NOW, WINDOWS

DONE_KINDS: tuple[DoneKind, ...] = ("procedure", "order", "report", "observation")


def _scanned_done(
    record: PatientRecord, wanted: frozenset[str], kinds: tuple[str, ...], *, drafts: bool
) -> list[Entry]:
    """What ``done`` answers by scanning every entry, as it did before the lists."""
    kind_set = set(kinds) | (OBSERVATION_KINDS if "observation" in kinds else set())
    return [
        e
        for e in record.entries
        if e.kind in kind_set
        and (drafts or not e.draft)
        and not (e.valuesets.isdisjoint(wanted) and e.performer_valuesets.isdisjoint(wanted))
    ]


# Each unit a shipped rule compares in, and one none does (nothing converts to it).
UNITS = ("%", "pg/mL", "{score}", "kg", "furlong")


def _scanned_measurements(
    record: PatientRecord, wanted: frozenset[str], unit: str
) -> list[tuple[Entry, float]]:
    """What ``measurements`` answers by scanning every entry, newest first."""
    found = [
        (e, convert(e.value, e.unit, unit))
        for e in record.entries
        if e.kind == "measurement" and e.in_sets(wanted) and e.value is not None
    ]
    kept = [(e, v) for e, v in found if v is not None and e.date is not None]
    return sorted(kept, key=lambda pair: pair[0].date or record.now, reverse=True)


def _scanned_conditions(
    record: PatientRecord,
    wanted: frozenset[str],
    *,
    findings: bool,
    history: bool,
    differential: bool = False,
) -> list[Entry]:
    kinds = ("condition", "finding") if findings else ("condition",)
    return [
        e
        for e in record.entries
        if e.kind in kinds
        and not e.valuesets.isdisjoint(wanted)
        and (
            e.present
            if e.kind == "finding"
            else history or record.condition_counts(e, differential=differential)
        )
    ]


def test_every_golden_records_queries_answer_what_scanning_every_entry_answers(
    catalogue: Catalogue,
) -> None:
    asked = 0
    # With each case's draft orders too (the sharing test's records are built without them).
    with_drafts = [
        _record(catalogue, catalogue.services[p.parent.name], _body(CASE_DATA[p]), now)
        for p in CASES
        if (now := clock_for(CASE_DATA[p]["now"])())
    ]
    for record in [*_records(catalogue), *with_drafts]:
        for wanted in [frozenset({s}) for s in sorted(catalogue.valuesets.by_id)]:
            for n in (1, 2):
                for kinds in combinations(DONE_KINDS, n):
                    for drafts in (True, False):
                        found = record.done(wanted, kinds, drafts=drafts)
                        assert found == _scanned_done(record, wanted, kinds, drafts=drafts)
                        asked += 1
            for findings, history, differential in product((True, False), repeat=3):
                asked_so = {"findings": findings, "history": history, "differential": differential}
                assert record.conditions(wanted, **asked_so) == _scanned_conditions(
                    record, wanted, **asked_so
                )
            for unit in UNITS:
                assert record.measurements(wanted, unit) == _scanned_measurements(
                    record, wanted, unit
                )
            assert record.medications(wanted) == [
                e
                for e in record.entries
                if e.kind == "medication" and not e.draft and e.in_sets(wanted)
            ]
    assert asked > 1000
    assert any(e.draft for r in with_drafts for e in r.entries)


def _entry(kind: str, eid: str, sets: str = "mri") -> Entry:
    return Entry("Procedure", eid, kind, frozenset({sets}), "", NOW)  # type: ignore[arg-type]


def test_the_lists_keep_the_records_order_and_both_observation_kinds() -> None:
    entries = [
        _entry("finding", "f1"),
        _entry("procedure", "p1"),
        _entry("measurement", "m1"),
        _entry("report", "r1"),
        _entry("finding", "f2"),
    ]
    record = PatientRecord(NOW, "p1", WINDOWS, entries=entries)
    assert [e.id for e in record.of_kinds(("observation",))] == ["f1", "m1", "f2"]
    assert [e.id for e in record.of_kinds(("report", "procedure"))] == ["p1", "r1"]
    assert [e.id for e in record.done(frozenset({"mri"}), ["observation", "report"])] == [
        "f1",
        "m1",
        "r1",
        "f2",
    ]


def test_a_record_given_other_entries_is_listed_again() -> None:
    record = PatientRecord(NOW, "p1", WINDOWS, entries=[_entry("procedure", "p1")])
    assert [e.id for e in record.done(frozenset({"mri"}), ("procedure",))] == ["p1"]
    record.entries.append(_entry("procedure", "p2"))
    assert [e.id for e in record.done(frozenset({"mri"}), ("procedure",))] == ["p1", "p2"]
    record.entries = [_entry("procedure", "p3")]
    assert [e.id for e in record.done(frozenset({"mri"}), ("procedure",))] == ["p3"]
    copied = replace(record, entries=[_entry("procedure", "p4")])
    assert [e.id for e in copied.done(frozenset({"mri"}), ("procedure",))] == ["p4"]
    assert [e.id for e in record.done(frozenset({"mri"}), ("procedure",))] == ["p3"]


def _undated_status(on: datetime) -> Entry:
    """A Condition without clinicalStatus: active only with evidence within the window."""
    return Entry("Condition", "c1", "condition", frozenset({"radic"}), "", on)


def test_the_windows_follow_the_records_clock() -> None:
    start = WINDOWS.undated_active.before(NOW)
    entry = _undated_status(start)
    record = PatientRecord(NOW, "p1", WINDOWS, entries=[entry])
    assert record.condition_counts(entry, differential=False)
    later = NOW + timedelta(days=1)
    assert not replace(record, now=later).condition_counts(entry, differential=False)
    record.now = later
    assert not record.condition_counts(entry, differential=False)
    record.now = NOW
    assert record.condition_counts(entry, differential=False)


def test_an_encounter_diagnosis_window_is_read_at_the_records_clock() -> None:
    start = WINDOWS.encounter_diagnosis.before(NOW)
    entry = replace(_undated_status(start), clinical_status="active", encounter_diagnosis=True)
    record = PatientRecord(NOW, "p1", WINDOWS, entries=[entry])
    assert record.condition_counts(entry, differential=False)
    record.now = NOW + timedelta(days=1)
    assert not record.condition_counts(entry, differential=False)
