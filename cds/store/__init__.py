"""Feedback and audit persistence (SQLAlchemy async): SQLite by default, PostgreSQL to scale out."""

from cds.store.audit_writer import AuditWriter
from cds.store.database import Store
from cds.store.engines import create_engine
from cds.store.models import (
    AuditRecord,
    FeedbackItem,
    FeedbackOutcome,
    Invocation,
    IssuedCard,
    IssuedCardLike,
    Outcome,
    OverrideReasonCount,
    RuleReport,
    RuleStats,
    WeeklyReport,
    WeekStats,
    patient_hash,
)

__all__ = [
    "AuditRecord",
    "AuditWriter",
    "FeedbackItem",
    "FeedbackOutcome",
    "Invocation",
    "IssuedCard",
    "IssuedCardLike",
    "Outcome",
    "OverrideReasonCount",
    "RuleReport",
    "RuleStats",
    "Store",
    "WeekStats",
    "WeeklyReport",
    "create_engine",
    "patient_hash",
]
