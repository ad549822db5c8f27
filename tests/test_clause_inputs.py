"""What a clause sees of one call: ``ClauseInputs.for_rule`` gives the rule's view of the call
(whether a differential counts, the trigger date), one per pair, sharing what the call
remembers."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from cds.record import PatientRecord
from cds.rules import ClauseInputs, RuleSpec
from cds.rules.policy import load_policy
from cds.settings import PROJECT_ROOT

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
WINDOWS = load_policy(PROJECT_ROOT / "rules").condition_windows


def _rule(rule_id: str, **more: object) -> RuleSpec:
    when = {"condition": {"valuesets": ["radic"]}}
    return RuleSpec.model_validate(
        {"id": rule_id, "name": rule_id, "card": "x", "when": when, **more}
    )


def test_a_rule_sees_its_own_differential_setting_and_the_trigger_asked_for() -> None:
    inputs = ClauseInputs(PatientRecord(NOW, "p1", WINDOWS), {})
    lenient = _rule("XX-01", differentialCounts=True)
    moment = NOW - timedelta(days=30)
    view = inputs.for_rule(lenient, moment)
    assert (view.differential, view.trigger) == (True, moment)
    strict = inputs.for_rule(_rule("XX-02"))
    assert (strict.differential, strict.trigger) == (False, None)


def test_the_views_of_one_call_share_what_it_remembers_and_repeat_for_the_same_pair() -> None:
    inputs = ClauseInputs(PatientRecord(NOW, "p1", WINDOWS), {})
    strict, other = _rule("XX-01"), _rule("XX-02")
    view = inputs.for_rule(strict)
    assert view.for_rule(other) is view is inputs.for_rule(strict)
    assert view.results is inputs.results
    assert view._memo is inputs._memo
    assert view.held is inputs.held


def test_a_copy_of_the_inputs_starts_its_own_views() -> None:
    inputs = ClauseInputs(PatientRecord(NOW, "p1", WINDOWS), {})
    rule = _rule("XX-01")
    before = inputs.for_rule(rule)
    copy = replace(inputs, _memo={})
    after = copy.for_rule(rule)
    assert after is not before
    assert after._memo is copy._memo


def test_a_view_has_the_age_of_its_record_which_it_takes_from_the_inputs_it_came_from() -> None:
    record = PatientRecord(NOW, "p1", WINDOWS, birth_date=date(1960, 3, 2))
    inputs = ClauseInputs(record, {})
    view = inputs.for_rule(_rule("XX-01", differentialCounts=True), NOW)
    assert inputs.age == view.age == record.age() == 65


def test_a_copy_over_another_record_reads_that_records_age_not_the_original_ones() -> None:
    inputs = ClauseInputs(PatientRecord(NOW, "p1", WINDOWS, birth_date=date(1960, 3, 2)), {})
    younger = PatientRecord(NOW, "p1", WINDOWS, birth_date=date(2000, 1, 1))
    assert replace(inputs, record=younger).age == 26
    assert replace(inputs, record=younger).for_rule(_rule("XX-01")).age == 26
    unknown = PatientRecord(NOW, "p1", WINDOWS)
    assert ClauseInputs(unknown, {}, of=inputs).age is None


def test_a_view_holds_what_the_constructor_makes_of_the_same_arguments_key_for_key() -> None:
    record = PatientRecord(NOW, "p1", WINDOWS, birth_date=date(1960, 3, 2))
    inputs = ClauseInputs(record, {}, results={"shared": None})  # type: ignore[dict-item]
    moment = NOW - timedelta(days=3)
    for rule, trigger in [
        (_rule("XX-01"), None),
        (_rule("XX-02", differentialCounts=True), moment),
    ]:
        view = inputs.for_rule(rule, trigger)
        made = ClauseInputs(
            record,
            inputs.rules,
            rule.differential,
            trigger,
            inputs._memo,
            inputs._since,
            inputs.compiled,
            inputs.results,
            inputs.held,
            inputs,
        )
        made._views = inputs._views
        # Every attribute, in the order the constructor sets them (the instances' key layout).
        assert list(vars(view)) == list(vars(made)) == list(vars(inputs))
        assert all(getattr(view, name) is getattr(made, name) for name in vars(made))
        assert view == made
        assert replace(view, _memo={}).for_rule(rule, trigger) is not view
