"""The one registry of clause types: each entry's schema, evaluator, resource types and words.

Validation (cds/catalogue.py), evaluation (cds/rules/evaluate.py) and the words a rule page
shows all read `CLAUSES`; a new clause type is its schema in cds/rules/schema.py, the `Node`
field that holds it, and one entry here.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from pydantic import BaseModel

from cds.record import Entry
from cds.rules import facts
from cds.rules.logic import FALSE, UNKNOWN, Result, Tri, found
from cds.rules.schema import (
    VALUE_SET_IDS,
    ConditionClause,
    DoneClause,
    DraftClause,
    FactClause,
    MedicationClause,
    ObservationClause,
    PatientClause,
)

if TYPE_CHECKING:
    from cds.record import PatientRecord
    from cds.rules.evaluate import ClauseInputs

Clause = TypeVar("Clause")
RefKind = Literal["value set", "rule"]
# What a clause reads of its ClauseInputs besides the record, the catalogue and the clock: the
# compiled trees remember a shared sub-tree's result per value of only these (rules/compiled.py).
Input = Literal["differential", "trigger"]
NO_INPUTS: frozenset[Input] = frozenset()
DIFFERENTIAL: frozenset[Input] = frozenset({"differential"})
TRIGGER: frozenset[Input] = frozenset({"trigger"})
# (path below the clause, e.g. ".valuesets[0]"; what it names; the id it names)
Ref = tuple[str, RefKind, str]

_COMPARE: dict[str, tuple[Callable[[float, float], bool], str]] = {
    "gte": (operator.ge, "at least"),
    "gt": (operator.gt, "above"),
    "lte": (operator.le, "at most"),
    "lt": (operator.lt, "below"),
}


@dataclass(frozen=True, slots=True)
class ClauseType(Generic[Clause]):
    """One kind of `when` clause, keyed in YAML by ``name``."""

    name: str
    schema: type[Clause]
    result_of: Callable[[Clause, ClauseInputs], Result]
    # The record's resource types the clause reads (drafts come with the call, not the record).
    reads: Callable[[Clause], tuple[str, ...]]
    # One sentence a clinician reads on the rule's page.
    describe: Callable[[Clause], str]
    refs: Callable[[Clause], Iterator[Ref]]
    inputs: Callable[[Clause], frozenset[Input]]
    # The value sets one of the record's entries must be in (by its code, or an order's by its
    # performer type) for the clause to find anything: without one its result is FALSE, or
    # UNKNOWN when a type it ``reads`` could not be obtained, so the compiled trees answer so
    # without asking the record (rules/compiled.py). None: it asks the record no value set.
    wanted: Callable[[Clause], frozenset[str] | None]


# ------------------------------------------------------------------ words


_UNIT_WORDS = {"Y": "year", "M": "month", "W": "week", "D": "day"}


def span(duration: str) -> str:
    """An ISO 8601 duration in words: ``P6M`` -> "6 months", ``P1Y6M`` -> "1 year 6 months"."""
    parts = re.findall(r"(\d+)([YMWD])", duration)
    return " ".join(f"{n} {_UNIT_WORDS[u]}{'' if n == '1' else 's'}" for n, u in parts)


def _sets(ids: list[str]) -> str:
    quoted = [f"'{i}'" for i in ids]
    if len(quoted) == 1:
        return f"value set {quoted[0]}"
    return f"value sets {', '.join(quoted[:-1])} or {quoted[-1]}"


def _sentence(parts: list[str]) -> str:
    text = ", ".join(p for p in parts if p)
    return text[0].upper() + text[1:] + "."


def _windowed(within: str | None, older_than: str | None = None) -> list[str]:
    return [
        f"dated within the last {span(within)}" if within else "",
        f"dated more than {span(older_than)} ago" if older_than else "",
    ]


# ------------------------------------------------------------------ references


def value_set_refs(clause: BaseModel) -> Iterator[Ref]:
    """Every value set id the clause names, from the fields its schema marks as value set ids."""
    for name, info in type(clause).model_fields.items():
        if VALUE_SET_IDS in info.metadata:
            for i, vs_id in enumerate(getattr(clause, name) or ()):
                yield f".{info.alias or name}[{i}]", "value set", vs_id


def _rule_refs(key: str) -> Iterator[Ref]:
    yield "", "rule", key


# ------------------------------------------------------------------ evaluators


def _dated_in(entry: Entry, start: Any, end: Any = None) -> bool:
    if start is None and end is None:
        return True
    if entry.date is None:
        return False
    return (start is None or entry.date >= start) and (end is None or entry.date <= end)


def _found_in(record: PatientRecord, hits: list[Entry], reads: tuple[str, ...]) -> Result:
    """``found(hits, available=record.available(*reads))``, with the record asked whether the
    data was available only when nothing was found (a hit answers TRUE whatever it says)."""
    if hits:
        return Result(Tri.TRUE, tuple(hits))
    return FALSE if record.available(*reads) else UNKNOWN


def _condition_reads(c: ConditionClause) -> tuple[str, ...]:
    return c.reads


def _condition(c: ConditionClause, inputs: ClauseInputs) -> Result:
    record = inputs.record
    counted = record.conditions(
        c.wanted, differential=inputs.differential, history=c.history, findings=c.findings
    )
    if counted and c.narrowed:
        start = inputs.since(c.within)
        end = inputs.since(c.older_than)
        counted = [
            e
            for e in counted
            if _dated_in(e, start, end)
            and (c.laterality is None or e.side in (c.laterality, "bilateral"))
            and (c.body_site is None or e.site_is(c.body_site))
        ]
    return _found_in(record, counted, c.reads)


def _describe_condition(c: ConditionClause) -> str:
    what = "a condition on record, past or present," if c.history else "an active condition"
    side = {"left": "left", "right": "right", "bilateral": "both"}
    return _sentence(
        [
            f"{what} in {_sets(c.valuesets)}",
            "or a present finding (Observation) coded so" if c.findings else "",
            f"on the {side[c.laterality]} side (a bilateral entry counts)" if c.laterality else "",
            f"sited at the {c.body_site.replace('-', ' ')}" if c.body_site else "",
            *_windowed(c.within, c.older_than),
        ]
    )


def _observation(c: ObservationClause, inputs: ClauseInputs) -> Result:
    record = inputs.record
    start = inputs.since(c.within)
    values = record.measurements(c.wanted, c.unit)
    if start is not None:
        values = [(e, v) for e, v in values if _dated_in(e, start)]
    if c.latest:
        values = values[:1]
    name, threshold = c.comparison
    compare = _COMPARE[name][0]
    hits = [e for e, v in values if compare(v, threshold)]
    return _found_in(record, hits, _OBSERVATION_TYPES)


_OBSERVATION_TYPES = ("Observation",)


def _describe_observation(c: ObservationClause) -> str:
    name, threshold = c.comparison
    which = "the latest" if c.latest else "any"
    return _sentence(
        [
            f"{which} measurement in {_sets(c.valuesets)}"
            + (f" within the last {span(c.within)}" if c.within else "")
            + f" is {_COMPARE[name][1]} {threshold:g} {c.unit}"
        ]
    )


def _done_reads(c: DoneClause) -> tuple[str, ...]:
    return c.reads


def _done(c: DoneClause, inputs: ClauseInputs) -> Result:
    record = inputs.record
    start, end = inputs.since(c.within), inputs.since(c.older_than)
    hits = [
        e
        for e in record.done(c.wanted, c.kinds, performer=c.performer, drafts=c.drafts)
        if _dated_in(e, start, end)
        and (
            not c.after_trigger
            or (e.date is not None and inputs.trigger is not None and e.date > inputs.trigger)
        )
    ]
    return _found_in(record, hits, c.reads)


def _done_inputs(c: DoneClause) -> frozenset[Input]:
    return TRIGGER if c.after_trigger else NO_INPUTS


def _describe_done(c: DoneClause) -> str:
    kinds = " or ".join(c.in_)
    article = "an" if kinds[0] in "aeiou" else "a"
    orders = "order" in c.in_
    return _sentence(
        [
            f"{article} {kinds} in {_sets(c.valuesets)}",
            "an order counts by its performer type too" if orders and c.performer else "",
            "a draft order of this call counts" if orders and c.drafts else "",
            *_windowed(c.within, c.older_than),
            "dated after the evidence that triggered the rule" if c.after_trigger else "",
        ]
    )


def _medication(c: MedicationClause, inputs: ClauseInputs) -> Result:
    record = inputs.record
    return _found_in(record, record.medications(c.wanted), _MEDICATION_TYPES)


_MEDICATION_TYPES = ("MedicationRequest", "MedicationStatement")


def _draft(c: DraftClause, inputs: ClauseInputs) -> Result:
    hits = inputs.record.drafts(c.wanted, c.resource_type)
    if c.reason is not None:
        hits = [e for e in hits if not e.reason_valuesets.isdisjoint(c.reason)]
    # Draft orders come with the hook context itself, so they are never unavailable.
    return found(hits, available=True)


def _describe_draft(c: DraftClause) -> str:
    return _sentence(
        [
            f"a draft {c.resource_type} of this call in {_sets(c.valuesets)}",
            f"given for a reason in {_sets(c.reason)}" if c.reason else "",
        ]
    )


def _patient(c: PatientClause, inputs: ClauseInputs) -> Result:
    age = inputs.age
    if age is None:
        return UNKNOWN
    return Result(Tri.TRUE) if age >= c.min_age else FALSE


def _bilateral(fact: FactClause, inputs: ClauseInputs) -> Result:
    record = inputs.record
    return facts.bilateral(record, fact.wanted, fact.span, differential=inputs.differential)


def _new_onset(fact: FactClause, inputs: ClauseInputs) -> Result:
    assert fact.prior is not None  # noqa: S101 - the schema requires it here
    return facts.new_onset(
        inputs.record,
        fact.wanted,
        fact.span,
        relative_to=fact.relative,
        prior_by=fact.prior,
        differential=inputs.differential,
    )


def _weight_loss(fact: FactClause, inputs: ClauseInputs) -> Result:
    # The schema requires both for measured_weight_loss.
    assert fact.percent is not None  # noqa: S101
    assert fact.windows is not None  # noqa: S101
    return facts.measured_weight_loss(inputs.record, fact.wanted, fact.percent, fact.windows)


def _describe_bilateral(fact: FactClause) -> str:
    return _sentence(
        [
            f"both sides involved in {_sets(fact.valuesets)} (a bilateral entry, or a left and "
            "a right one)",
            f"the second side within the last {span(fact.within)}" if fact.within else "",
        ]
    )


def _describe_new_onset(fact: FactClause) -> str:
    assert fact.prior_by is not None  # noqa: S101 - the schema requires it here
    return _sentence(
        [
            f"a new problem in {_sets(fact.valuesets)}",
            *_windowed(fact.within),
            f"not on record more than {span(fact.prior_by)} before the earliest condition in "
            f"{_sets(fact.relative_to)}",
        ]
    )


def _describe_weight_loss(fact: FactClause) -> str:
    assert fact.percent is not None  # noqa: S101 - the schema requires both here
    assert fact.windows is not None  # noqa: S101
    w = fact.windows
    return _sentence(
        [
            f"a measured weight loss of at least {fact.percent:g} % in {_sets(fact.valuesets)}: "
            f"the median weight of the {span(w.current)} up to the latest weight (itself at most "
            f"{span(w.latest_within)} old) against the median of those {span(w.baseline_from)} "
            f"to {span(w.baseline_to)} before it"
        ]
    )


@dataclass(frozen=True, slots=True)
class _Fact:
    result_of: Callable[[FactClause, ClauseInputs], Result]
    reads: tuple[str, ...]
    describe: Callable[[FactClause], str]
    inputs: frozenset[Input]


_FACTS: Mapping[str, _Fact] = {
    "bilateral": _Fact(_bilateral, ("Condition", "Observation"), _describe_bilateral, DIFFERENTIAL),
    "new_onset": _Fact(_new_onset, ("Condition", "Observation"), _describe_new_onset, DIFFERENTIAL),
    "measured_weight_loss": _Fact(_weight_loss, ("Observation",), _describe_weight_loss, NO_INPUTS),
}


def _rule(key: str, inputs: ClauseInputs) -> Result:
    return inputs.trigger_of(key)


# ------------------------------------------------------------------ the registry


def _observation_reads(c: ObservationClause) -> tuple[str, ...]:
    return ("Observation",)


def _medication_reads(c: MedicationClause) -> tuple[str, ...]:
    return _MEDICATION_TYPES


def _describe_medication(c: MedicationClause) -> str:
    return _sentence([f"an active medication (requested or stated) in {_sets(c.valuesets)}"])


def _draft_reads(c: DraftClause) -> tuple[str, ...]:
    return ()  # draft orders come with the call's context


def _patient_reads(c: PatientClause) -> tuple[str, ...]:
    return ("Patient",)


def _describe_patient(c: PatientClause) -> str:
    return _sentence([f"the patient is at least {c.min_age} years old"])


def _fact(fact: FactClause, inputs: ClauseInputs) -> Result:
    return _FACTS[fact.name].result_of(fact, inputs)


def _fact_reads(fact: FactClause) -> tuple[str, ...]:
    return _FACTS[fact.name].reads


def _describe_fact(fact: FactClause) -> str:
    return _FACTS[fact.name].describe(fact)


def _fact_inputs(fact: FactClause) -> frozenset[Input]:
    return _FACTS[fact.name].inputs


def _condition_inputs(c: ConditionClause) -> frozenset[Input]:
    return DIFFERENTIAL  # whether a differential diagnosis counts


def _no_inputs(clause: object) -> frozenset[Input]:
    return NO_INPUTS


def _set_wanted(
    c: ConditionClause | ObservationClause | DoneClause | MedicationClause | DraftClause,
) -> frozenset[str]:
    return c.wanted


def _fact_wanted(fact: FactClause) -> frozenset[str]:
    # Every fact starts from the entries in its own sets (new_onset's `relativeTo` ones are
    # read only once one of those is found).
    return fact.wanted


def _no_sets(clause: object) -> None:
    return None


def _rule_reads(key: str) -> tuple[str, ...]:
    return ()  # the other rule's clauses say what they read


def _describe_rule(key: str) -> str:
    return _sentence([f"rule {key} fires"])


_TYPES: tuple[ClauseType[Any], ...] = (
    ClauseType(
        "condition",
        ConditionClause,
        _condition,
        _condition_reads,
        _describe_condition,
        value_set_refs,
        _condition_inputs,
        _set_wanted,
    ),
    ClauseType(
        "observation",
        ObservationClause,
        _observation,
        _observation_reads,
        _describe_observation,
        value_set_refs,
        _no_inputs,
        _set_wanted,
    ),
    ClauseType(
        "done",
        DoneClause,
        _done,
        _done_reads,
        _describe_done,
        value_set_refs,
        _done_inputs,
        _set_wanted,
    ),
    ClauseType(
        "medication",
        MedicationClause,
        _medication,
        _medication_reads,
        _describe_medication,
        value_set_refs,
        _no_inputs,
        _set_wanted,
    ),
    ClauseType(
        "draft",
        DraftClause,
        _draft,
        _draft_reads,
        _describe_draft,
        value_set_refs,
        _no_inputs,
        _set_wanted,
    ),
    ClauseType(
        "patient",
        PatientClause,
        _patient,
        _patient_reads,
        _describe_patient,
        value_set_refs,
        _no_inputs,
        _no_sets,
    ),
    ClauseType(
        "fact",
        FactClause,
        _fact,
        _fact_reads,
        _describe_fact,
        value_set_refs,
        _fact_inputs,
        _fact_wanted,
    ),
    # Another rule fires or not by its own settings, whoever asks (ClauseInputs.trigger_of).
    ClauseType("rule", str, _rule, _rule_reads, _describe_rule, _rule_refs, _no_inputs, _no_sets),
)
CLAUSES: Mapping[str, ClauseType[Any]] = {t.name: t for t in _TYPES}
