"""Feedback is matched by (service, card uuid), and flags suggestions the card never had.

issued_cards is keyed by (service_id, card_uuid): a uuid is stable per service, so the same
rule's card from two services is two rows. feedback.unknown_suggestions marks an item whose
acceptedSuggestions name a suggestion its card never carried (F-08: stored, flagged).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def _primary_key(columns: list[str]) -> None:
    # Batch mode rebuilds the table on SQLite (which cannot alter a primary key in place) and
    # is a plain ALTER TABLE on PostgreSQL; the rows are kept either way.
    with op.batch_alter_table("issued_cards", recreate="auto") as batch:
        batch.drop_constraint("pk_issued_cards", type_="primary")
        batch.create_primary_key("pk_issued_cards", columns)


def upgrade() -> None:
    _primary_key(["service_id", "card_uuid"])
    op.add_column(
        "feedback",
        sa.Column("unknown_suggestions", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    with op.batch_alter_table("feedback") as batch:
        batch.drop_column("unknown_suggestions")
    # Before 0002 a uuid named one card across services; keep one row per uuid to go back.
    op.execute(
        "DELETE FROM issued_cards WHERE EXISTS (SELECT 1 FROM issued_cards AS other "
        "WHERE other.card_uuid = issued_cards.card_uuid "
        "AND other.service_id < issued_cards.service_id)"
    )
    _primary_key(["card_uuid"])
