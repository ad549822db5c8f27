"""Three-valued evaluation of `when` trees over a PatientRecord."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import InitVar, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cds.record import Entry, PatientRecord
from cds.record.dates import parse_duration
from cds.rules.clauses import CLAUSES
from cds.rules.logic import FALSE, UNKNOWN, Result, Tri, all_of, any_of
from cds.rules.schema import Indicator, Node, RuleSpec, SuggestionPriority

if TYPE_CHECKING:
    from cds.rules.compiled import CompiledTrees


@dataclass
class ClauseInputs:
    """What a clause may see: the record, the rule's settings and every rule of the catalogue.

    With ``compiled`` (the app's, built for the same catalogue), trees it holds run as its
    functions, which remember their results for this call in ``results``. ``held`` is every value
    set the record's entries are in (:func:`held_sets`), taken once a call.
    """

    record: PatientRecord
    rules: Mapping[str, RuleSpec]
    differential: bool = False
    trigger: datetime | None = None
    _memo: dict[str, Result] = field(default_factory=dict)
    _since: dict[str, datetime] = field(default_factory=dict)
    compiled: CompiledTrees | None = None
    results: dict[Hashable, Result] = field(default_factory=dict)
    held: frozenset[str] | None = None
    # The inputs a view is made from (``for_rule``), to take their age rather than work it
    # out again; only over the same record. Not a field: a copy (dataclasses.replace) is
    # given none, so it reads its own record's age.
    of: InitVar[ClauseInputs | None] = None
    # (differential, trigger) -> the inputs for_rule gives for them: a call asks for a handful
    # of combinations some 20 times. Not copied by dataclasses.replace (a copy starts afresh).
    _views: dict[tuple[bool, datetime | None], ClauseInputs] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    # The patient's completed years (None: unknown), read by most rules' age gates and their
    # suggestions' (rules.md 3.6): the record's, taken once per view instead of per rule.
    age: int | None = field(init=False, repr=False, compare=False)

    def __post_init__(self, of: ClauseInputs | None) -> None:
        if self.held is None:
            self.held = held_sets(self.record)
        self.age = of.age if of is not None and of.record is self.record else self.record.age()

    def for_rule(self, rule: RuleSpec, trigger: datetime | None = None) -> ClauseInputs:
        """These inputs as ``rule`` reads them (whether a differential counts), with ``trigger``."""
        key = (rule.differential, trigger)
        view = self._views.get(key)
        if view is None:
            # What ``ClauseInputs(record, rules, differential, trigger, ..., of=self)`` makes,
            # without the generated __init__ (its defaults, factory and __post_init__ cost
            # twice this: 1.4 -> 0.75 us a view, some 5 a call). Every attribute is set in the
            # order __init__ sets them, so views keep the instances' shared key layout and
            # are read as fast; the age is this one's, over the same record.
            # tests/test_clause_inputs.py compares the two.
            view = object.__new__(ClauseInputs)
            view.record = self.record
            view.rules = self.rules
            view.differential = rule.differential
            view.trigger = trigger
            view._memo = self._memo
            view._since = self._since
            view.compiled = self.compiled
            view.results = self.results
            view.held = self.held
            view._views = self._views
            view.age = self.age
            self._views[key] = view
        return view

    def release(self) -> None:
        """Forget the views ``for_rule`` made. Each view holds the dict that holds it: a
        reference cycle that left the call's record, results and memo to the collector's next
        pass instead of being freed with the call (in that pass: ~90 us of a small call's CPU)."""
        self._views.clear()

    def trigger_of(self, key: str) -> Result:
        """Whether the catalogue's rule ``key`` fires (a `rule:` clause)."""
        return trigger(self.rules[key], self)

    def since(self, duration: str | None) -> datetime | None:
        """``now`` minus ``duration`` (None for no bound); the rules share a handful of them."""
        if duration is None:
            return None
        moment = self._since.get(duration)
        if moment is None:
            moment = self._since[duration] = parse_duration(duration).before(self.record.now)
        return moment


def held_sets(record: PatientRecord) -> frozenset[str]:
    """Every value set an entry of ``record`` is in, by its code or (an order) its performer
    type: a clause over other sets finds nothing (``cds.rules.clauses.ClauseType.wanted``)."""
    # Into one set in place: ``frozenset().union(*sets)`` of two lists of them cost twice as
    # much (a small chart's 21 entries: 5.3 -> 2.6 us), most performer sets being empty.
    held: set[str] = set()
    for e in record.entries:
        held |= e.valuesets
        if e.performer_valuesets:
            held |= e.performer_valuesets
    return frozenset(held)


def _kleene(combine: Callable[[list[Tri]], Tri]) -> Callable[[list[Node], ClauseInputs], Result]:
    """`all` or `any` by ``combine``; when TRUE, the evidence of the children that are TRUE."""

    def result(nodes: list[Node], inputs: ClauseInputs) -> Result:
        results = [result_of(n, inputs) for n in nodes]
        truth = combine([r.truth for r in results])
        if truth is not Tri.TRUE:
            return FALSE if truth is Tri.FALSE else UNKNOWN
        return Result(
            truth,
            tuple([e for r in results if r.true for e in r.evidence]),
            tuple([n for r in results if r.true for n in r.notes]),
        )

    return result


def _not(node: Node, inputs: ClauseInputs) -> Result:
    return Result(~result_of(node, inputs).truth)


_COMBINATORS: dict[str, Callable[[Any, ClauseInputs], Result]] = {
    "all": _kleene(all_of),
    "any": _kleene(any_of),
    "not": _not,
}


def result_of(node: Node, inputs: ClauseInputs) -> Result:
    """The three-valued result of ``node``; `not` over UNKNOWN stays UNKNOWN."""
    if inputs.compiled is not None:
        run = inputs.compiled.of(node)
        if run is not None:
            return run(inputs)
    return interpret(node, inputs)


def interpret(node: Node, inputs: ClauseInputs) -> Result:
    """:func:`result_of` by walking the tree: what the compiled functions must always equal."""
    name, value = node.branch
    combine = _COMBINATORS.get(name)
    if combine is not None:
        return combine(value, inputs)
    return CLAUSES[name].result_of(value, inputs)


def trigger(rule: RuleSpec, inputs: ClauseInputs) -> Result:
    """Whether ``rule``'s age gate and `when` tree hold (memoized per evaluation)."""
    known = inputs._memo.get(rule.key)
    if known is not None:
        return known
    own = inputs.for_rule(rule)
    gate = Tri.TRUE
    if rule.min_age is not None:
        age = own.age
        if age is None:
            gate = Tri.TRUE if rule.red_flag else Tri.UNKNOWN
        else:
            gate = Tri.TRUE if age >= rule.min_age else Tri.FALSE
    if gate is not Tri.TRUE:
        result = Result(gate)
    else:
        # result_of's lookup written here: a call asks this of every rule of its service.
        run = own.compiled.of(rule.when) if own.compiled is not None else None
        result = run(own) if run is not None else interpret(rule.when, own)
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
    if not rule.suggestion_priority:
        return None
    own = inputs.for_rule(rule)
    return next((s.to for s in rule.suggestion_priority if result_of(s.when, own).true), None)


def trigger_date(evidence: tuple[Entry, ...]) -> datetime | None:
    """The latest evidence date: what "after the trigger" is measured from."""
    dates = [e.date for e in evidence if e.date is not None and not e.draft]
    return max(dates) if dates else None
