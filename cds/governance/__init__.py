"""Rule governance: each rule's version, status, owner, review dates, evidence and the data it
reads, kept as data beside the rules and checked with the catalogue (docs/governance.md)."""

from cds.governance.records import GOVERNANCE_DIR, Governance, load_governance
from cds.governance.schema import Citation, Effective, Mode, RuleGovernance

__all__ = [
    "GOVERNANCE_DIR",
    "Citation",
    "Effective",
    "Governance",
    "Mode",
    "RuleGovernance",
    "load_governance",
]
