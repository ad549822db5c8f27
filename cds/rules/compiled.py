"""Every `when` tree of a catalogue compiled once into plain closures (``CompiledTrees``).

The interpreter (``cds.rules.evaluate.result_of``) dispatches on each node's branch at every
call; the closures are the same evaluation with that dispatch done once, at start-up, and with
three savings that change no answer:

* structurally equal sub-trees (YAML anchors reuse a clinical definition across rules, and the
  indicator, drop and priority trees repeat parts of `when`) share one closure, whose result
  is remembered for the call by the inputs its clauses read besides the record: whether a
  differential diagnosis counts, the trigger date (``cds.rules.clauses.ClauseType.inputs``),
  or neither, so a drop tree evaluated after the trigger reuses the `when` tree's results of
  the parts that do not read the trigger. A sub-tree is remembered only where it can be asked
  twice for the same inputs: one used in several places, or below a parent that reads an input
  it does not (the parent may run for several values of it); any other runs once per value of
  its inputs, as its only parent does;
* `all` stops at its first FALSE child: FALSE carries no evidence, so the rest cannot change
  the result (`any` reads every child, since each TRUE one adds evidence).
* a clause over value sets none of the record's entries is in (``ClauseInputs.held``, taken once
  a call) finds nothing: it answers FALSE, or UNKNOWN when a type it reads could not be
  obtained, without asking the record (``cds.rules.clauses.ClauseType.wanted``); on a small
  chart 27 of the 53 clause evaluations a call made.

Built from whatever the catalogue holds when the app starts (site settings already applied to
it), held by the app's ``cds.caches.EvaluationCaches``, and only read after.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any

from cds.rules.clauses import CLAUSES, ClauseType, Input
from cds.rules.logic import FALSE, UNKNOWN, Result, Tri
from cds.rules.schema import Node, RuleSpec

if TYPE_CHECKING:
    from cds.rules.evaluate import ClauseInputs

Compiled = Callable[["ClauseInputs"], Result]


def _joined(true: list[Result]) -> Result:
    """TRUE with the evidence and notes of ``true``, in order (one result is itself)."""
    if len(true) == 1:
        return true[0]
    return Result(
        Tri.TRUE,
        tuple([e for r in true for e in r.evidence]),
        tuple([n for r in true for n in r.notes]),
    )


def _all(children: tuple[Compiled, ...]) -> Compiled:
    def run(inputs: ClauseInputs) -> Result:
        results = []
        unknown = False
        for child in children:
            result = child(inputs)
            truth = result.truth
            if truth is Tri.FALSE:
                return FALSE
            if truth is Tri.UNKNOWN:
                unknown = True
            results.append(result)
        return UNKNOWN if unknown else _joined(results)

    return run


def _any(children: tuple[Compiled, ...]) -> Compiled:
    def run(inputs: ClauseInputs) -> Result:
        true = []
        unknown = False
        for child in children:
            result = child(inputs)
            truth = result.truth
            if truth is Tri.TRUE:
                true.append(result)
            elif truth is Tri.UNKNOWN:
                unknown = True
        if true:
            return _joined(true)
        return UNKNOWN if unknown else FALSE

    return run


def _not(child: Compiled) -> Compiled:
    def run(inputs: ClauseInputs) -> Result:
        return Result(~child(inputs).truth)

    return run


def _clause(kind: ClauseType[Any], clause: Any) -> Compiled:
    """The clause's evaluator, answering without asking the record when none of its entries is
    in a value set the clause wants (``ClauseType.wanted``)."""
    wanted = kind.wanted(clause)
    if wanted is None:
        return partial(kind.result_of, clause)
    reads = kind.reads(clause)
    result_of = kind.result_of

    def leaf(inputs: ClauseInputs) -> Result:
        held = inputs.held
        if held is not None and held.isdisjoint(wanted):
            return FALSE if inputs.record.available(*reads) else UNKNOWN
        return result_of(clause, inputs)

    return leaf


def _remembered(slot: int, reads: frozenset[Input], run: Compiled) -> Compiled:
    """``run``, its result remembered for the call by ``slot`` and the inputs it ``reads``."""
    # The key built inline, not by a helper: this runs for some 50 parts a call.
    differential = "differential" in reads
    dated = "trigger" in reads

    def remembered(inputs: ClauseInputs) -> Result:
        at: Hashable
        if dated:
            at = (slot, inputs.differential if differential else None, inputs.trigger)
        elif differential:
            at = (slot, inputs.differential)
        else:
            at = slot
        results = inputs.results
        found = results.get(at)
        if found is None:
            found = results[at] = run(inputs)
        return found

    return remembered


def _shape(node: Node) -> str:
    return node.model_dump_json(by_alias=True)


class _Census:
    """Where each distinct sub-tree is used and what it reads: which ones to remember."""

    def __init__(self, rules: Iterable[RuleSpec]) -> None:
        self._shapes: dict[int, tuple[Node, str]] = {}  # id(node) -> (node, shape)
        self._uses: Counter[str] = Counter()
        self.reads: dict[str, frozenset[Input]] = {}
        self._edges: set[tuple[str, str]] = set()  # (child, parent)
        for rule in rules:
            for _, tree in rule.trees():
                self._visit(tree)

    def shape(self, node: Node) -> str:
        known = self._shapes.get(id(node))
        if known is None or known[0] is not node:
            known = self._shapes[id(node)] = (node, _shape(node))
        return known[1]

    def remembered(self, shape: str) -> bool:
        """Whether the sub-tree can be asked twice for the same inputs in one call: it is used
        in several places, or its parent reads an input it does not. Any other runs once per
        value of its inputs, as its one parent does (a rule's trees run once per call)."""
        reads = self.reads[shape]
        return self._uses[shape] > 1 or any(
            self.reads[parent] != reads for child, parent in self._edges if child == shape
        )

    def _visit(self, node: Node) -> frozenset[Input]:
        shape = self.shape(node)
        self._uses[shape] += 1
        name, value = node.branch
        children = value if name in {"all", "any"} else [value] if name == "not" else []
        reads = CLAUSES[name].inputs(value) if not children else frozenset()
        for child in children:
            reads |= self._visit(child)
            self._edges.add((self.shape(child), shape))
        self.reads[shape] = reads
        return reads


class CompiledTrees:
    """The closures of every `when` tree of ``rules``, found by the node they were built from."""

    def __init__(self, rules: Iterable[RuleSpec]) -> None:
        # id(node) -> (node, closure): the node is kept, so its id cannot be reused by another.
        self._by_node: dict[int, tuple[Node, Compiled]] = {}
        self._by_shape: dict[str, Compiled] = {}
        self.remembered = 0  # how many of them remember their results for the call
        rules = list(rules)
        self._census = _Census(rules)
        for rule in rules:
            for _, tree in rule.trees():
                self._compile(tree)
        del self._census

    def __len__(self) -> int:
        """How many distinct sub-trees were compiled."""
        return len(self._by_shape)

    def of(self, node: Node) -> Compiled | None:
        """The closure of ``node``, or None for a node no compiled rule holds (a test's own)."""
        found = self._by_node.get(id(node))
        return found[1] if found is not None and found[0] is node else None

    def _compile(self, node: Node) -> Compiled:
        known = self._by_node.get(id(node))
        if known is not None:
            return known[1]
        census = self._census
        shape = census.shape(node)
        compiled = self._by_shape.get(shape)
        if compiled is None:
            name, value = node.branch
            run: Compiled
            if name == "all":
                run = _all(tuple(self._compile(child) for child in value))
            elif name == "any":
                run = _any(tuple(self._compile(child) for child in value))
            elif name == "not":
                run = _not(self._compile(value))
            else:
                run = _clause(CLAUSES[name], value)
            if census.remembered(shape):
                run = _remembered(len(self._by_shape), census.reads[shape], run)
                self.remembered += 1
            compiled = self._by_shape[shape] = run
        self._by_node[id(node)] = (node, compiled)
        return compiled
