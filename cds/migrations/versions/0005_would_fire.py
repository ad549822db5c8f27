"""invocations.would_fire: the rules in shadow that would have fired in a hook call (#16).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # Calls audited before shadow mode had no rule in shadow: an empty list is the truth.
    op.add_column(
        "invocations",
        sa.Column("would_fire", sa.JSON(), nullable=False, server_default=sa.text("'[]'")),
    )


def downgrade() -> None:
    # Batch mode: SQLite before 3.35 cannot drop a column in place.
    with op.batch_alter_table("invocations") as batch:
        batch.drop_column("would_fire")
