"""breach facts: cause and recurrence prevention (APPI Rules Art. 8), small processing agent
(LGPD, ANPD Res. 2/2022 Art. 14)

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("breach_incidents") as batch:
        batch.add_column(sa.Column("cause", sa.Text(), nullable=True))
        batch.add_column(sa.Column("prevention", sa.Text(), nullable=True))
        batch.add_column(
            sa.Column("small_agent", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("breach_incidents") as batch:
        batch.drop_column("small_agent")
        batch.drop_column("prevention")
        batch.drop_column("cause")
