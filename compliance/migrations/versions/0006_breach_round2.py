"""breach round 2: PDPA first significant-harm assessment (s. 26D(2) subjects clock) and the
secondary damage APPI subject notices state (Rules Art. 8(1)(v), Art. 10)

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("breach_incidents") as batch:
        batch.add_column(sa.Column("pdpa_harm_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("secondary_damage", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("breach_incidents") as batch:
        batch.drop_column("secondary_damage")
        batch.drop_column("pdpa_harm_at")
