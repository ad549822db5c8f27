"""Rules as data: the YAML schema, three-valued evaluation of `when` trees, and named facts."""

from cds.rules.evaluate import Scope, evaluate, indicator, trigger, trigger_date
from cds.rules.logic import Result, Tri, all_of, any_of
from cds.rules.schema import Node, RuleSpec, ServiceFile

__all__ = [
    "Node",
    "Result",
    "RuleSpec",
    "Scope",
    "ServiceFile",
    "Tri",
    "all_of",
    "any_of",
    "evaluate",
    "indicator",
    "trigger",
    "trigger_date",
]
