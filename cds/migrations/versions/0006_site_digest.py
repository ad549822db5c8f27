"""invocations.site_digest: the site settings file each hook call ran with (#16 point 3).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # No default: which settings a call audited before this column ran with is not known (NULL).
    op.add_column("invocations", sa.Column("site_digest", sa.String(64), nullable=True))


def downgrade() -> None:
    # Batch mode: SQLite before 3.35 cannot drop a column in place.
    with op.batch_alter_table("invocations") as batch:
        batch.drop_column("site_digest")
