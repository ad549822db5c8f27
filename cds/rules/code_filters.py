"""Prefetch code filters cross-checked against the value sets the rules read (`cds rules check`).

A template such as ``Procedure?patient=...&code=http://www.ama-assn.org/go/cpt|95907,...`` repeats
codes the value sets also hold; nothing else would notice when the two drift apart. Two kinds of
disagreement are reported: a template code that no value set the service's rules read from that
resource type holds (fetched for nothing), and a value-set code that no template of the resource
type would fetch (a rule that could never see it). A template of the type without a code filter
fetches every code, so it covers them all; one narrowed another way (``category=laboratory``) covers
no code in particular. An Observation set that no filter lists a code of (the symptoms a
``findings: true`` clause reads from finding Observations) is reported too: nothing fetches it.
ICD-10-CM prefix entries cannot be search tokens; only an unfiltered template covers them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from urllib.parse import unquote

from cds.rules.clauses import CLAUSES
from cds.rules.schema import RuleSpec, walk
from cds.valuesets import ValueSets, normalize

Code = tuple[str, str]  # (system, code) as a value set stores it
_Read = tuple[str, list[str], ValueSets]  # a resource type, the sets read from it, all sets


def sets_read(rules: Iterable[RuleSpec], catalogue: Mapping[str, RuleSpec]) -> dict[str, set[str]]:
    """Resource type -> ids of the value sets ``rules`` (and the rules they name) read from it."""
    read: dict[str, set[str]] = {}
    pending, seen = list(rules), set()
    while pending:
        rule = pending.pop()
        if rule.key in seen:
            continue
        seen.add(rule.key)
        for _, tree in rule.trees():
            for node, _ in walk(tree):
                name, value = node.branch
                clause_type = CLAUSES.get(name)
                if clause_type is None:
                    continue  # all / any / not: walked
                refs = list(clause_type.refs(value))
                pending.extend(
                    catalogue[r] for _, kind, r in refs if kind == "rule" and r in catalogue
                )
                ids = {r for _, kind, r in refs if kind == "value set"}
                for resource_type in clause_type.reads(value):
                    read.setdefault(resource_type, set()).update(ids)
    return read


# Search parameters that select resources by a coded element (value-concept: a finding's value).
CODE_PARAMETERS = frozenset({"code", "value-concept"})
# Search parameters that narrow a template's resources without naming codes.
NARROWING_PARAMETERS = frozenset({"category"})
# Types whose sets must each be fetched by some filter. Elsewhere a set sharing no code with the
# filters is read from another kind of record (a referral read from Procedure or
# DiagnosticReport), which these filters were never meant to serve.
WHOLLY_FETCHED = frozenset({"Observation"})


def code_filter(template: str) -> tuple[str, list[Code] | None]:
    """The template's resource type and its code list (None: no filter, every code fetched).

    A template narrowed only by a category lists no code: an empty list, covering none."""
    path, _, query = template.partition("?")
    resource_type = path.split("/")[0]
    narrowed = False
    for parameter in query.split("&") if query else ():
        name, _, value = parameter.partition("=")
        narrowed = narrowed or name in NARROWING_PARAMETERS
        if name in CODE_PARAMETERS:
            codes = []
            for token in unquote(value).split(","):
                system, _, code = token.rpartition("|")
                codes.append((system, normalize(system, code)))
            return resource_type, codes
    return resource_type, [] if narrowed else None


def _holds(valuesets: ValueSets, ids: Iterable[str], code: Code) -> bool:
    system, value = code
    return any(
        valuesets[i].matches(system, value) if system else _any_system(valuesets, i, value)
        for i in ids
    )


def _any_system(valuesets: ValueSets, vs_id: str, code: str) -> bool:
    return any(member == code for _, member in valuesets[vs_id].exact)


def filter_problems(
    label: str,
    prefetch: Mapping[str, str],
    read: Mapping[str, set[str]],
    valuesets: ValueSets,
) -> list[str]:
    """Each disagreement between ``prefetch``'s code filters and the value sets in ``read``."""
    problems: list[str] = []
    filters: dict[str, dict[str, list[Code] | None]] = {}
    for key, template in prefetch.items():
        resource_type, codes = code_filter(template)
        filters.setdefault(resource_type, {})[key] = codes
    for resource_type, by_key in filters.items():
        ids = sorted(i for i in read.get(resource_type, ()) if i in valuesets)
        for key, codes in by_key.items():
            problems.extend(
                f"{label}: prefetch.{key}: code {system}|{code} is in no value set the rules read "
                f"from {resource_type}"
                for system, code in codes or ()
                if not _holds(valuesets, ids, (system, code))
            )
        if any(codes is None for codes in by_key.values()):
            continue  # an unfiltered template fetches every code
        listed = {code for codes in by_key.values() for code in codes or ()}
        keys = ", ".join(f"prefetch.{k}" for k in by_key)
        problems.extend(_missed(label, keys, (resource_type, ids, valuesets), listed))
    return problems


def _missed(label: str, keys: str, read: _Read, listed: set[Code]) -> Iterator[str]:
    """Codes of the value sets read from the type that its code filters leave out.

    An Observation set the filters list no code of is fetched by none of them: reported as a
    whole. A set
    with no exact code (matched by text only) has nothing a filter could list."""
    resource_type, ids, valuesets = read
    bare = {code for system, code in listed if not system}
    for vs_id in ids:
        vs = valuesets[vs_id]
        if not vs.exact:
            continue
        if not any(code in listed or code[1] in bare for code in vs.exact):
            if resource_type not in WHOLLY_FETCHED:
                continue
            yield (
                f"{label}: {keys}: no {resource_type} code filter fetches value set '{vs_id}', "
                f"which the rules read from {resource_type}"
            )
            continue
        missed = sorted(
            f"{system}|{code}"
            for system, code in vs.exact
            if (system, code) not in listed and code not in bare
        )
        if missed:
            yield (
                f"{label}: {keys}: the {resource_type} code filter leaves out {len(missed)} "
                f"code(s) of value set '{vs_id}' it otherwise fetches: {', '.join(missed)}"
            )
