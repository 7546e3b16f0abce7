"""suppression entries that outlive an erasure; grounds of a subject's restriction

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "suppressions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("ref", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("scope", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("ref", "reason", "scope"),
    )
    op.create_index("ix_suppressions_ref", "suppressions", ["ref"])
    with op.batch_alter_table("subjects") as batch:
        batch.add_column(
            sa.Column("restriction_grounds", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )


def downgrade() -> None:
    with op.batch_alter_table("subjects") as batch:
        batch.drop_column("restriction_grounds")
    op.drop_index("ix_suppressions_ref", table_name="suppressions")
    op.drop_table("suppressions")
