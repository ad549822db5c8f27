"""invocations.repaired_element_count: elements read leniently in each hook call.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # A server default fills the rows written before: no call then was read leniently.
    op.add_column(
        "invocations",
        sa.Column("repaired_element_count", sa.Integer(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    # Batch mode: SQLite before 3.35 cannot drop a column in place.
    with op.batch_alter_table("invocations") as batch:
        batch.drop_column("repaired_element_count")
