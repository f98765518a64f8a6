"""Item heads: no index on state_size.

Every custody-states snapshot rewrites ``state_size`` of up to every item: the index on it
was a third of a snapshot's database time, and only the fallback for instances from before
snapshots (``max(state_size)``, read once when the tracker is built) ever used it.

Revision ID: 0006
Revises: 0005
"""
from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("item_heads") as batch_op:
        batch_op.drop_index("ix_item_heads_state_size")


def downgrade() -> None:
    with op.batch_alter_table("item_heads") as batch_op:
        batch_op.create_index("ix_item_heads_state_size", ["state_size"], unique=False)
