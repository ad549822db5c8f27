"""Rules as data: the YAML schema, three-valued evaluation of `when` trees, and named facts."""

from cds.rules.evaluate import ClauseInputs, indicator, result_of, trigger, trigger_date
from cds.rules.logic import Result, Tri, all_of, any_of
from cds.rules.schema import Node, RuleSpec, ServiceFile

__all__ = [
    "ClauseInputs",
    "Node",
    "Result",
    "RuleSpec",
    "ServiceFile",
    "Tri",
    "all_of",
    "any_of",
    "indicator",
    "result_of",
    "trigger",
    "trigger_date",
]
