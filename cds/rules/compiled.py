"""Every `when` tree of a catalogue compiled once into plain functions (``CompiledTrees``).

The interpreter (``cds.rules.evaluate.result_of``) dispatches on each node's branch at every
call; the functions are the same evaluation with that dispatch done once, at start-up. Each
distinct sub-tree is one function generated as Python source, with the descendants it alone
uses written inline (a call runs one frame per remembered part and per clause evaluator, not
one per node). No catalogue text enters the source: clauses, evaluators and value sets are
named by generated names bound in the functions' globals. Three savings change no answer:

* structurally equal sub-trees (YAML anchors reuse a clinical definition across rules, and the
  indicator, drop and priority trees repeat parts of `when`) share one function, whose result
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
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from cds.rules.clauses import CLAUSES, ClauseType, Input
from cds.rules.logic import FALSE, UNKNOWN, Result, Tri
from cds.rules.schema import Node, RuleSpec, walk

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


# Python refuses more than 20 statically nested loops in one function; each `all` written
# inline opens one, so a deeper part is called as its own function instead.
_MAX_INLINE_LOOPS = 12


class _Source:
    """The Python source of one distinct sub-tree's function, its descendants written inline.

    A remembered descendant (or one nested too deep) is called as its own function, since its
    result is shared; every other descendant's evaluation is written into this function's body,
    so a call runs one Python frame per remembered part and per clause evaluator instead of one
    per node. The values the source names (clauses, their evaluators and value sets, other
    parts' functions) are put in ``names``, the functions' globals.
    """

    def __init__(self, trees: CompiledTrees, names: dict[str, Any]) -> None:
        self._trees = trees
        self._names = names
        self.lines: list[str] = []
        self._locals = 0
        self.reads_held = False

    def name(self, value: object) -> str:
        """A global name for ``value`` in the generated functions."""
        key = f"_k{len(self._names)}"
        self._names[key] = value
        return key

    def local(self) -> str:
        self._locals += 1
        return f"r{self._locals}"

    def write(self, node: Node, target: str, depth: int, loops: int, root: bool) -> None:
        """Lines (at indentation ``depth``) leaving ``node``'s result in local ``target``."""
        pad = "    " * depth
        shape = self._trees.census_shape(node)
        name, value = node.branch
        if not root and (self._trees.census_remembered(shape) or loops >= _MAX_INLINE_LOOPS):
            call = f"{self.name(self._trees.compile(node))}(inputs)"
            kind = CLAUSES.get(name)
            if kind is None:
                self.lines.append(f"{pad}{target} = {call}")
            else:
                # A clause's own function asks the same first; asked here, a clause over sets
                # the record holds none of costs no call (on a small chart, most of them).
                self._held_or(kind, value, call, target, pad)
            return
        if name == "all":
            self._all(value, target, depth, loops)
        elif name == "any":
            self._any(value, target, depth, loops)
        elif name == "not":
            child = self.local()
            self.write(value, child, depth, loops, root=False)
            self.lines += [
                f"{pad}{target} = {child}.truth",
                f"{pad}{target} = FALSE if {target} is T_TRUE else UNKNOWN "
                f"if {target} is T_UNKNOWN else BARE_TRUE",
            ]
        else:
            self._clause(CLAUSES[name], value, target, pad)

    def _clause(self, kind: ClauseType[Any], clause: Any, target: str, pad: str) -> None:
        evaluate = f"{self.name(kind.result_of)}({self.name(clause)}, inputs)"
        self._held_or(kind, clause, evaluate, target, pad)

    def _held_or(
        self, kind: ClauseType[Any], clause: Any, evaluate: str, target: str, pad: str
    ) -> None:
        """Lines leaving in ``target`` what ``clause`` answers: ``evaluate`` (an expression
        that evaluates it), unless the record holds none of the sets it wants."""
        wanted = kind.wanted(clause)
        if wanted is None:
            self.lines.append(f"{pad}{target} = {evaluate}")
            return
        # None of the record's entries is in a set the clause wants: it finds nothing.
        # ``PatientRecord.available`` asked without its call (a set is disjoint from anything
        # when empty): a small call takes this branch for half of its clauses.
        self.reads_held = True
        reads = self.name(kind.reads(clause))
        self.lines += [
            f"{pad}if held is not None and held.isdisjoint({self.name(wanted)}):",
            f"{pad}    {target} = FALSE if inputs.record.unavailable.isdisjoint({reads}) "
            "else UNKNOWN",
            f"{pad}else:",
            f"{pad}    {target} = {evaluate}",
        ]

    def _all(self, children: list[Node], target: str, depth: int, loops: int) -> None:
        # One pass of a loop, left at the first FALSE child (which carries no evidence).
        pad = "    " * (depth + 1)
        unknown = self.local()
        results = []
        self.lines += [f"{pad[4:]}while True:", f"{pad}{unknown} = False"]
        for child in children:
            result = self.local()
            self.write(child, result, depth + 1, loops + 1, root=False)
            self.lines += [
                f"{pad}if {result}.truth is T_FALSE:",
                f"{pad}    {target} = FALSE",
                f"{pad}    break",
                f"{pad}if {result}.truth is T_UNKNOWN:",
                f"{pad}    {unknown} = True",
            ]
            results.append(result)
        self.lines += [
            f"{pad}{target} = UNKNOWN if {unknown} else {self._joined(results)}",
            f"{pad}break",
        ]

    def _any(self, children: list[Node], target: str, depth: int, loops: int) -> None:
        # Every child is read: each TRUE one adds its evidence.
        pad = "    " * depth
        unknown, true = self.local(), self.local()
        self.lines += [f"{pad}{unknown} = False", f"{pad}{true} = []"]
        for child in children:
            result = self.local()
            self.write(child, result, depth, loops, root=False)
            self.lines += [
                f"{pad}if {result}.truth is T_TRUE:",
                f"{pad}    {true}.append({result})",
                f"{pad}elif {result}.truth is T_UNKNOWN:",
                f"{pad}    {unknown} = True",
            ]
        self.lines.append(
            f"{pad}{target} = ({true}[0] if len({true}) == 1 else joined({true})) "
            f"if {true} else UNKNOWN if {unknown} else FALSE"
        )

    @staticmethod
    def _joined(results: list[str]) -> str:
        """The expression joining ``results``, all TRUE: one is itself (as ``_joined``)."""
        if len(results) == 1:
            return results[0]
        evidence = " + ".join(f"{r}.evidence" for r in results)
        notes = " + ".join(f"{r}.notes" for r in results)
        return f"Result(T_TRUE, {evidence}, {notes})"


def _function(name: str, body: _Source, slot: int | None, reads: frozenset[Input]) -> list[str]:
    """The source of function ``name`` running ``body`` (result in local ``r0``); with a
    ``slot``, its result remembered for the call by the slot and the inputs it ``reads``."""
    lines = [f"def {name}(inputs):"]
    if slot is not None:
        if "trigger" in reads:
            differential = "inputs.differential" if "differential" in reads else "None"
            at = f"({slot}, {differential}, inputs.trigger)"
        elif "differential" in reads:
            at = f"({slot}, inputs.differential)"
        else:
            at = str(slot)
        lines += [
            "    results = inputs.results",
            f"    at = {at}",
            "    found = results.get(at)",
            "    if found is not None:",
            "        return found",
        ]
    if body.reads_held:
        lines.append("    held = inputs.held")
    lines += body.lines
    if slot is not None:
        lines.append("    results[at] = r0")
    lines.append("    return r0")
    return lines


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
    """The functions of every `when` tree of ``rules``, found by the node they were built from."""

    def __init__(self, rules: Iterable[RuleSpec]) -> None:
        # id(node) -> (node, function): the node is kept, so its id cannot be reused by another.
        self._by_node: dict[int, tuple[Node, Compiled]] = {}
        self._by_shape: dict[str, Compiled] = {}
        self.remembered = 0  # how many of them remember their results for the call
        # The generated functions' globals: what their source names.
        self._names: dict[str, Any] = {
            "__builtins__": {"len": len},
            "Result": Result,
            "FALSE": FALSE,
            "UNKNOWN": UNKNOWN,
            "BARE_TRUE": Result(Tri.TRUE),
            "T_TRUE": Tri.TRUE,
            "T_FALSE": Tri.FALSE,
            "T_UNKNOWN": Tri.UNKNOWN,
            "joined": _joined,
        }
        rules = list(rules)
        self._census = _Census(rules)
        for rule in rules:
            for _, tree in rule.trees():
                for node, _ in walk(tree):
                    self.compile(node)
        del self._census

    def __len__(self) -> int:
        """How many distinct sub-trees were compiled."""
        return len(self._by_shape)

    def of(self, node: Node) -> Compiled | None:
        """The function of ``node``, or None for a node no compiled rule holds (a test's own)."""
        found = self._by_node.get(id(node))
        return found[1] if found is not None and found[0] is node else None

    def census_shape(self, node: Node) -> str:
        return self._census.shape(node)

    def census_remembered(self, shape: str) -> bool:
        return self._census.remembered(shape)

    def compile(self, node: Node) -> Compiled:
        """``node``'s function, written and built the first time its shape is asked for."""
        known = self._by_node.get(id(node))
        if known is not None:
            return known[1]
        census = self._census
        shape = census.shape(node)
        compiled = self._by_shape.get(shape)
        if compiled is None:
            body = _Source(self, self._names)
            body.write(node, "r0", 1, 0, root=True)
            slot = None
            if census.remembered(shape):
                slot = self.remembered
                self.remembered += 1
            name = f"_part{len(self._by_shape)}"
            source = "\n".join(_function(name, body, slot, census.reads[shape]))
            exec(compile(source, f"<rule part {name}>", "exec"), self._names)  # noqa: S102
            compiled = self._by_shape[shape] = self._names[name]
        self._by_node[id(node)] = (node, compiled)
        return compiled
