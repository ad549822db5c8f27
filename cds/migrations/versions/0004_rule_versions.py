"""invocations.rule_versions: the version of each rule a hook call names (#16).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # Calls audited before rules had versions keep an empty mapping: their version is unknown.
    op.add_column(
        "invocations",
        sa.Column("rule_versions", sa.JSON(), nullable=False, server_default=sa.text("'{}'")),
    )


def downgrade() -> None:
    # Batch mode: SQLite before 3.35 cannot drop a column in place.
    with op.batch_alter_table("invocations") as batch:
        batch.drop_column("rule_versions")
