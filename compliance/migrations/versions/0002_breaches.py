"""breach incidents, deadlines, affected subjects and notices

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "breach_incidents",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("nature", sa.Text(), nullable=False),
        sa.Column("contact", sa.String(256), nullable=False),
        sa.Column("occurred_at", TS, nullable=True),
        sa.Column("aware_at", TS, nullable=False),
        sa.Column("assessed_at", TS, nullable=True),
        sa.Column("regions", sa.JSON(), nullable=False),
        sa.Column("regimes", sa.JSON(), nullable=False),
        sa.Column("affected_subjects", sa.Integer(), nullable=False),
        sa.Column("affected_records", sa.Integer(), nullable=False),
        sa.Column("affected_by_regime", sa.JSON(), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("measures", sa.JSON(), nullable=False),
        sa.Column("likelihood", sa.Integer(), nullable=True),
        sa.Column("severity", sa.Integer(), nullable=True),
        sa.Column("risk_level", sa.String(8), nullable=True),
        sa.Column("high_risk", sa.Boolean(), nullable=False),
        sa.Column("encrypted", sa.Boolean(), nullable=False),
        sa.Column("risk_removed", sa.Boolean(), nullable=False),
        sa.Column("disproportionate_effort", sa.Boolean(), nullable=False),
        sa.Column("unlawful_purpose", sa.Boolean(), nullable=False),
        sa.Column("exemptions", sa.JSON(), nullable=False),
        sa.Column("late_reasons", sa.Text(), nullable=True),
        sa.Column("phase", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("ix_breach_incidents_status", "breach_incidents", ["status"])
    op.create_table(
        "breach_subjects",
        sa.Column("breach_id", sa.String(32), primary_key=True),
        sa.Column("subject_id", sa.String(128), primary_key=True),
        sa.ForeignKeyConstraint(["breach_id"], ["breach_incidents.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["subject_id"], ["subjects.id"], ondelete="CASCADE"),
    )
    op.create_table(
        "breach_deadlines",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("breach_id", sa.String(32), nullable=False),
        sa.Column("regime", sa.String(16), nullable=False),
        sa.Column("obligation", sa.String(24), nullable=False),
        sa.Column("due_at", TS, nullable=True),
        sa.Column("statutory", sa.Boolean(), nullable=False),
        sa.Column("basis", sa.String(64), nullable=False),
        sa.Column("tz", sa.String(64), nullable=False),
        sa.Column("met_at", TS, nullable=True),
        sa.Column("missed_at", TS, nullable=True),
        sa.Column("alerted_at", TS, nullable=True),
        sa.ForeignKeyConstraint(["breach_id"], ["breach_incidents.id"], ondelete="CASCADE"),
        sa.UniqueConstraint("breach_id", "regime", "obligation"),
    )
    op.create_index("ix_breach_deadlines_breach_id", "breach_deadlines", ["breach_id"])
    op.create_index("ix_breach_deadlines_due_at", "breach_deadlines", ["due_at"])
    op.create_table(
        "breach_notices",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("breach_id", sa.String(32), nullable=False),
        sa.Column("audience", sa.String(16), nullable=False),
        sa.Column("regime", sa.String(16), nullable=False),
        sa.Column("subject_id", sa.String(128), nullable=True),
        sa.Column("phase", sa.Integer(), nullable=False),
        sa.Column("locale", sa.String(8), nullable=False),
        sa.Column("tz", sa.String(64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("produced_at", TS, nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["breach_id"], ["breach_incidents.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["subject_id"], ["subjects.id"], ondelete="SET NULL"),
        sa.UniqueConstraint("breach_id", "audience", "regime", "subject_id", "phase"),
    )
    op.create_index("ix_breach_notices_breach_id", "breach_notices", ["breach_id"])


def downgrade() -> None:
    op.drop_table("breach_notices")
    op.drop_table("breach_deadlines")
    op.drop_table("breach_subjects")
    op.drop_table("breach_incidents")
