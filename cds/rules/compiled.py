"""Every `when` tree of a catalogue compiled once into plain closures (``CompiledTrees``).

The interpreter (``cds.rules.evaluate.result_of``) dispatches on each node's branch at every
call; the closures are the same evaluation with that dispatch done once, at start-up, and with
two savings that change no answer:

* structurally equal sub-trees (YAML anchors reuse a clinical definition across rules, and the
  indicator, drop and priority trees repeat parts of `when`) share one closure, whose result
  is remembered for the call by (sub-tree, ``differential``, ``trigger``): the only inputs a
  clause reads besides the record, which one call never changes;
* `all` stops at its first FALSE child: FALSE carries no evidence, so the rest cannot change
  the result (`any` reads every child, since each TRUE one adds evidence).

Built from whatever the catalogue holds when the app starts (site settings already applied to
it), held by the app's ``cds.caches.EvaluationCaches``, and only read after.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from cds.rules.clauses import CLAUSES
from cds.rules.logic import FALSE, UNKNOWN, Result, Tri
from cds.rules.schema import Node, RuleSpec

if TYPE_CHECKING:
    from cds.rules.evaluate import ClauseInputs

Compiled = Callable[["ClauseInputs"], Result]


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
        if unknown:
            return UNKNOWN
        return Result(
            Tri.TRUE,
            tuple([e for r in results for e in r.evidence]),
            tuple([n for r in results for n in r.notes]),
        )

    return run


def _any(children: tuple[Compiled, ...]) -> Compiled:
    def run(inputs: ClauseInputs) -> Result:
        results = [child(inputs) for child in children]
        true = [r for r in results if r.truth is Tri.TRUE]
        if not true:
            return UNKNOWN if any(r.truth is Tri.UNKNOWN for r in results) else FALSE
        return Result(
            Tri.TRUE,
            tuple([e for r in true for e in r.evidence]),
            tuple([n for r in true for n in r.notes]),
        )

    return run


def _not(child: Compiled) -> Compiled:
    def run(inputs: ClauseInputs) -> Result:
        return Result(~child(inputs).truth)

    return run


def _clause(name: str, value: Any) -> Compiled:
    evaluate = CLAUSES[name].result_of

    def run(inputs: ClauseInputs) -> Result:
        return evaluate(value, inputs)

    return run


def _remembered(slot: int, run: Compiled) -> Compiled:
    def remembered(inputs: ClauseInputs) -> Result:
        key = (slot, inputs.differential, inputs.trigger)
        results = inputs.results
        found = results.get(key)
        if found is None:
            found = results[key] = run(inputs)
        return found

    return remembered


class CompiledTrees:
    """The closures of every `when` tree of ``rules``, found by the node they were built from."""

    def __init__(self, rules: Iterable[RuleSpec]) -> None:
        # id(node) -> (node, closure): the node is kept, so its id cannot be reused by another.
        self._by_node: dict[int, tuple[Node, Compiled]] = {}
        self._by_shape: dict[str, Compiled] = {}
        for rule in rules:
            for _, tree in rule.trees():
                self._compile(tree)

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
        shape = node.model_dump_json(by_alias=True)
        compiled = self._by_shape.get(shape)
        if compiled is None:
            name, value = node.branch
            if name == "all":
                run = _all(tuple(self._compile(child) for child in value))
            elif name == "any":
                run = _any(tuple(self._compile(child) for child in value))
            elif name == "not":
                run = _not(self._compile(value))
            else:
                run = _clause(name, value)
            compiled = self._by_shape[shape] = _remembered(len(self._by_shape), run)
        self._by_node[id(node)] = (node, compiled)
        return compiled
