"""Snooze after an override (#16 point 4): the snoozes table, the patient hash of each issued
card (to key a snooze set by feedback on it), and the rules snoozed in each hook call.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "snoozes",
        sa.Column("patient_hash", sa.String(64), nullable=False),
        sa.Column("service_id", sa.String(128), nullable=False),
        sa.Column("card_uuid", sa.String(64), nullable=False),
        sa.Column("rule_id", sa.String(128), nullable=False),
        sa.Column("override_code", sa.Text(), nullable=False),
        sa.Column("snoozed_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("patient_hash", "service_id", "card_uuid", name="pk_snoozes"),
    )
    op.create_index("ix_snoozes_expires_at", "snoozes", ["expires_at"])
    # Cards issued before this revision have no patient hash: feedback on them sets no snooze.
    op.add_column("issued_cards", sa.Column("patient_hash", sa.String(64), nullable=True))
    # Calls audited before it snoozed nothing: an empty list is the truth.
    op.add_column(
        "invocations",
        sa.Column("snoozed", sa.JSON(), nullable=False, server_default=sa.text("'[]'")),
    )


def downgrade() -> None:
    # Batch mode: SQLite before 3.35 cannot drop a column in place.
    with op.batch_alter_table("invocations") as batch:
        batch.drop_column("snoozed")
    with op.batch_alter_table("issued_cards") as batch:
        batch.drop_column("patient_hash")
    op.drop_index("ix_snoozes_expires_at", table_name="snoozes")
    op.drop_table("snoozes")
