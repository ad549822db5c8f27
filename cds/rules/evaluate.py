"""Three-valued evaluation of `when` trees over a PatientRecord."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from cds.record import Entry, PatientRecord
from cds.record.dates import parse_duration
from cds.rules import facts
from cds.rules.logic import FALSE, UNKNOWN, Result, Tri, all_of, any_of, found
from cds.rules.schema import (
    ConditionClause,
    DoneClause,
    DraftClause,
    Indicator,
    Node,
    ObservationClause,
    RuleSpec,
    SuggestionPriority,
)

KIND_TYPES = {
    "procedure": "Procedure",
    "order": "ServiceRequest",
    "report": "DiagnosticReport",
    "observation": "Observation",
}
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "gte": operator.ge,
    "gt": operator.gt,
    "lte": operator.le,
    "lt": operator.lt,
}


@dataclass
class ClauseInputs:
    """What a clause may see: the record, the rule's settings and every rule of the catalogue."""

    record: PatientRecord
    rules: Mapping[str, RuleSpec]
    differential: bool = False
    trigger: datetime | None = None
    _memo: dict[str, Result] = field(default_factory=dict)
    _since: dict[str, datetime] = field(default_factory=dict)

    def for_rule(self, rule: RuleSpec, trigger: datetime | None = None) -> ClauseInputs:
        return ClauseInputs(
            self.record, self.rules, rule.differential, trigger, self._memo, self._since
        )

    def since(self, duration: str | None) -> datetime | None:
        """``now`` minus ``duration`` (None for no bound); the rules share a handful of them."""
        if duration is None:
            return None
        moment = self._since.get(duration)
        if moment is None:
            moment = self._since[duration] = parse_duration(duration).before(self.record.now)
        return moment


def _dated_in(entry: Entry, start: datetime | None, end: datetime | None = None) -> bool:
    if start is None and end is None:
        return True
    if entry.date is None:
        return False
    return (start is None or entry.date >= start) and (end is None or entry.date <= end)


def _condition(c: ConditionClause, inputs: ClauseInputs) -> Result:
    record = inputs.record
    counted = record.conditions(
        c.wanted, differential=inputs.differential, history=c.history, findings=c.findings
    )
    start = inputs.since(c.within) if counted else None
    end = inputs.since(c.older_than) if counted else None
    hits = [
        e
        for e in counted
        if _dated_in(e, start, end)
        and (c.laterality is None or e.side in (c.laterality, "bilateral"))
        and (c.body_site is None or e.site_is(c.body_site))
    ]
    types = ("Condition", "Observation") if c.findings else ("Condition",)
    return found(hits, available=record.available(*types))


def _observation(c: ObservationClause, inputs: ClauseInputs) -> Result:
    record = inputs.record
    start = inputs.since(c.within)
    values = [(e, v) for e, v in record.measurements(c.wanted, c.unit)]
    values = [(e, v) for e, v in values if _dated_in(e, start)]
    if c.latest:
        values = values[:1]
    name, threshold = next((n, t) for n in _COMPARE if (t := getattr(c, n)) is not None)
    hits = [e for e, v in values if _COMPARE[name](v, threshold)]
    return found(hits, available=record.available("Observation"))


def _done(c: DoneClause, inputs: ClauseInputs) -> Result:
    record = inputs.record
    start, end = inputs.since(c.within), inputs.since(c.older_than)
    hits = [
        e
        for e in record.done(c.wanted, c.in_, performer=c.performer, drafts=c.drafts)
        if _dated_in(e, start, end)
        and (
            not c.after_trigger
            or (e.date is not None and inputs.trigger is not None and e.date > inputs.trigger)
        )
    ]
    return found(hits, available=record.available(*(KIND_TYPES[k] for k in c.in_)))


def _draft(c: DraftClause, inputs: ClauseInputs) -> Result:
    hits = inputs.record.drafts(c.wanted, c.resource_type)
    if c.reason is not None:
        hits = [e for e in hits if not e.reason_valuesets.isdisjoint(c.reason)]
    # Draft orders come with the hook context itself, so they are never unavailable.
    return found(hits, available=True)


def result_of(node: Node, inputs: ClauseInputs) -> Result:
    """The three-valued result of ``node``; `not` over UNKNOWN stays UNKNOWN."""
    record = inputs.record
    if node.all_ is not None:
        results = [result_of(n, inputs) for n in node.all_]
        truth = all_of([r.truth for r in results])
        if truth is not Tri.TRUE:
            return FALSE if truth is Tri.FALSE else UNKNOWN
        return Result(
            truth,
            tuple([e for r in results for e in r.evidence]),
            tuple([n for r in results for n in r.notes]),
        )
    if node.any_ is not None:
        results = [result_of(n, inputs) for n in node.any_]
        truth = any_of([r.truth for r in results])
        if truth is not Tri.TRUE:
            return FALSE if truth is Tri.FALSE else UNKNOWN
        return Result(
            truth,
            tuple([e for r in results if r.true for e in r.evidence]),
            tuple([n for r in results if r.true for n in r.notes]),
        )
    if node.not_ is not None:
        return Result(~result_of(node.not_, inputs).truth)
    if node.condition is not None:
        return _condition(node.condition, inputs)
    if node.observation is not None:
        return _observation(node.observation, inputs)
    if node.done is not None:
        return _done(node.done, inputs)
    if node.medication is not None:
        wanted = node.medication.wanted
        return found(
            record.medications(wanted),
            available=record.available("MedicationRequest", "MedicationStatement"),
        )
    if node.draft is not None:
        return _draft(node.draft, inputs)
    if node.patient is not None:
        age = record.age()
        if age is None:
            return UNKNOWN
        return Result(Tri.TRUE) if age >= node.patient.min_age else FALSE
    if node.fact is not None:
        fact = node.fact
        wanted = frozenset(fact.valuesets)
        if fact.name == "bilateral":
            within = parse_duration(fact.within) if fact.within else None
            return facts.bilateral(record, wanted, within, differential=inputs.differential)
        if fact.name == "new_onset":
            assert fact.prior_by is not None  # noqa: S101 - the schema requires it here
            return facts.new_onset(
                record,
                wanted,
                parse_duration(fact.within) if fact.within else None,
                relative_to=frozenset(fact.relative_to),
                prior_by=parse_duration(fact.prior_by),
                differential=inputs.differential,
            )
        # The schema requires both for measured_weight_loss.
        assert fact.percent is not None  # noqa: S101
        assert fact.windows is not None  # noqa: S101
        return facts.measured_weight_loss(record, wanted, fact.percent, fact.windows)
    assert node.rule is not None  # noqa: S101 - the schema allows exactly one branch
    return trigger(inputs.rules[node.rule], inputs)


def trigger(rule: RuleSpec, inputs: ClauseInputs) -> Result:
    """Whether ``rule``'s age gate and `when` tree hold (memoized per evaluation)."""
    if rule.key in inputs._memo:
        return inputs._memo[rule.key]
    own = inputs.for_rule(rule)
    gate = Tri.TRUE
    if rule.min_age is not None:
        age = own.record.age()
        if age is None:
            gate = Tri.TRUE if rule.red_flag else Tri.UNKNOWN
        else:
            gate = Tri.TRUE if age >= rule.min_age else Tri.FALSE
    result = result_of(rule.when, own) if gate is Tri.TRUE else Result(gate)
    inputs._memo[rule.key] = result
    return result


def indicator(rule: RuleSpec, default: Indicator, inputs: ClauseInputs) -> Indicator:
    """The card indicator: the first `raise` entry that is definitely TRUE, else the default."""
    if rule.indicator is None:
        return default
    own = inputs.for_rule(rule)
    for step in rule.indicator.raise_:
        if result_of(step.when, own).true:
            return step.to
    return rule.indicator.default


def suggestion_priority(rule: RuleSpec, inputs: ClauseInputs) -> SuggestionPriority | None:
    """The priority the rule sets for its suggestions (None: derive it from the indicator)."""
    own = inputs.for_rule(rule)
    return next((s.to for s in rule.suggestion_priority if result_of(s.when, own).true), None)


def trigger_date(evidence: tuple[Entry, ...]) -> datetime | None:
    """The latest evidence date: what "after the trigger" is measured from."""
    dates = [e.date for e in evidence if e.date is not None and not e.draft]
    return max(dates) if dates else None
