"""verification reports and state

Revision ID: 0004
Revises: 0003
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.models

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "verification_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("started_at", store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("log_size", sa.BigInteger(), nullable=False),
        sa.Column("verified_from", sa.BigInteger(), nullable=False),
        sa.Column("verified_to", sa.BigInteger(), nullable=False),
        sa.Column("finding_count", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("report", sa.Text(), nullable=False),
        sa.Column("report_path", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("digest"),
    )
    with op.batch_alter_table("verification_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_verification_runs_started_at"), ["started_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_verification_runs_ok"), ["ok"], unique=False)
    op.create_table(
        "verification_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("verified_size", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.LargeBinary(length=32), nullable=False),
        sa.Column("checkpoint", sa.Text(), nullable=True),
        sa.Column("snapshot", sa.LargeBinary(), nullable=False),
        sa.Column("snapshot_digest", sa.String(length=64), nullable=False),
        sa.Column("report_digest", sa.String(length=64), nullable=False),
        sa.Column("updated_at", store.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("verification_state")
    with op.batch_alter_table("verification_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_verification_runs_ok"))
        batch_op.drop_index(batch_op.f("ix_verification_runs_started_at"))
    op.drop_table("verification_runs")
