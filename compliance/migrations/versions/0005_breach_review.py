"""breach review: PDPA first notifiable assessment, facts-updated time (what an update or the
LGPD complement adds), California 1798.82(d)(2) facts, deadlines kept when no longer owed

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("breach_incidents") as batch:
        batch.add_column(sa.Column("pdpa_notifiable_at", _TIME, nullable=True))
        batch.add_column(sa.Column("facts_updated_at", _TIME, nullable=True))
        batch.add_column(sa.Column("occurred_until", _TIME, nullable=True))
        batch.add_column(
            sa.Column("occurred_estimated", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("law_enforcement_delay", sa.Boolean(), nullable=True))
        batch.add_column(
            sa.Column("third_party_source", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("identity_services", sa.Text(), nullable=True))
    with op.batch_alter_table("breach_deadlines") as batch:
        batch.add_column(sa.Column("owed", sa.Boolean(), nullable=False, server_default=sa.true()))


def downgrade() -> None:
    with op.batch_alter_table("breach_deadlines") as batch:
        batch.drop_column("owed")
    with op.batch_alter_table("breach_incidents") as batch:
        for name in (
            "identity_services",
            "third_party_source",
            "law_enforcement_delay",
            "occurred_estimated",
            "occurred_until",
            "facts_updated_at",
            "pdpa_notifiable_at",
        ):
            batch.drop_column(name)
