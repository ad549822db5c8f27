"""The tables, exactly as the migrations leave them (0001 to 0007); times are stored as UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

# Fixed constraint names, so the hand-written migrations and this metadata agree on every dialect.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = sa.MetaData(naming_convention=NAMING)


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out; SQLite keeps no offset, so UTC is implied."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("the store takes timezone-aware datetimes only")
        value = value.astimezone(UTC)
        # SQLite compares the stored text, so every value must be written in one (UTC) form.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)  # noqa: S101 - the column type guarantees it
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLite only auto-increments an INTEGER PRIMARY KEY, PostgreSQL wants a BIGINT identity.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

invocations = sa.Table(
    "invocations",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("received_at", UtcDateTime(), nullable=False),
    sa.Column("service_id", sa.String(128), nullable=False),
    sa.Column("hook", sa.String(64), nullable=False),
    sa.Column("hook_instance", sa.Text(), nullable=False),
    sa.Column("status_code", sa.SmallInteger(), nullable=False),
    sa.Column("duration_ms", sa.Float(), nullable=False),
    sa.Column("fhir_fetch_count", sa.Integer(), nullable=False),
    sa.Column("skipped_resource_count", sa.Integer(), nullable=False),
    sa.Column("repaired_element_count", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("rule_ids", sa.JSON(), nullable=False),
    # Rule id -> the version that ran (0004); rows written before it hold {}.
    sa.Column("rule_versions", sa.JSON(), nullable=False, server_default=sa.text("'{}'")),
    # Rules in shadow that would have fired (0005); rows written before it hold [].
    sa.Column("would_fire", sa.JSON(), nullable=False, server_default=sa.text("'[]'")),
    # Rules whose card was snoozed by an earlier override, so not shown (0007); else [].
    sa.Column("snoozed", sa.JSON(), nullable=False, server_default=sa.text("'[]'")),
    sa.Column("card_uuids", sa.JSON(), nullable=False),
    sa.Column("patient_hash", sa.String(64), nullable=True),
    # sha256 of the site settings file the call ran with, "none" without one (0006); rows
    # written before it hold NULL: not known.
    sa.Column("site_digest", sa.String(64), nullable=True),
    sa.Index(None, "service_id", "received_at"),
    sa.Index(None, "hook_instance"),
    sa.Index(None, "patient_hash"),
)

issued_cards = sa.Table(
    "issued_cards",
    metadata,
    # A uuid is stable per service, rule, patient and evidence; feedback names it with its
    # service's URL, so (service_id, card_uuid) is the key.
    sa.Column("service_id", sa.String(128), primary_key=True),
    sa.Column("card_uuid", sa.String(64), primary_key=True),
    sa.Column("rule_id", sa.String(128), nullable=False),
    sa.Column("hook_instance", sa.Text(), nullable=False),
    sa.Column("suggestion_uuids", sa.JSON(), nullable=False),
    sa.Column("issued_at", UtcDateTime(), nullable=False),
    # The keyed hash of the card's patient (0007), for a snooze set by feedback on the card;
    # NULL for cards issued before it, which cannot be snoozed.
    sa.Column("patient_hash", sa.String(64), nullable=True),
    sa.Index(None, "service_id", "issued_at"),
    sa.Index(None, "rule_id"),
)

# Text columns: every value here comes from the EHR and has no length the spec bounds.
feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("dedup_key", sa.String(64), nullable=False),
    sa.Column("service_id", sa.String(128), nullable=False),
    sa.Column("card_uuid", sa.Text(), nullable=False),
    sa.Column("rule_id", sa.String(128), nullable=True),
    sa.Column("matched", sa.Boolean(), nullable=False),
    # F-08: acceptedSuggestions named a suggestion uuid the matched card never carried.
    sa.Column("unknown_suggestions", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("accepted_suggestion_ids", sa.JSON(), nullable=False),
    sa.Column("override_code", sa.Text(), nullable=True),
    sa.Column("override_system", sa.Text(), nullable=True),
    sa.Column("override_display", sa.Text(), nullable=True),
    sa.Column("user_comment", sa.Text(), nullable=True),
    sa.Column("outcome_timestamp", UtcDateTime(), nullable=False),
    sa.Column("received_at", UtcDateTime(), nullable=False),
    sa.UniqueConstraint("dedup_key"),
    sa.Index(None, "card_uuid"),
    sa.Index(None, "service_id", "received_at"),
)

# The JWT replay cache: the key is a hash of (iss, jti), so no caller-sized string is indexed.
jwt_replay = sa.Table(
    "jwt_replay",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("expires_at", UtcDateTime(), nullable=False),
    sa.Index(None, "expires_at"),
)

# Cards not to be shown again until their snooze ends (0007): one row per card overridden with a
# snoozing reason. The key leads with the keyed patient hash, so one hook call's cards are found
# by one index range; no patient id is stored. ``expires_at`` is the end the period in force at
# the override gave, the bound expired rows are purged by; a shorter period set later ends the
# snooze sooner (``snoozed_at`` + that period).
snoozes = sa.Table(
    "snoozes",
    metadata,
    sa.Column("patient_hash", sa.String(64), primary_key=True),
    sa.Column("service_id", sa.String(128), primary_key=True),
    sa.Column("card_uuid", sa.String(64), primary_key=True),
    sa.Column("rule_id", sa.String(128), nullable=False),
    sa.Column("override_code", sa.Text(), nullable=False),
    sa.Column("snoozed_at", UtcDateTime(), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=False),
    sa.Index(None, "expires_at"),
)
