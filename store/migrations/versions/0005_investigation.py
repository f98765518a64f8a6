"""indexes for leak investigation

The investigation reads, for one subject: its items (exam, subject), their
leaves below a checkpoint's size (item, idx), their stored alerts (item,
leaf_idx), and, for ``--as-of``, the latest checkpoint signed by a time
(signed_at). Without the composite leaf index PostgreSQL ANDs two bitmaps per
item (the item index and a primary-key range over the whole log).

Revision ID: 0005
Revises: 0004
"""
from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_log_leaves_item_idx", "log_leaves", ["item", "idx"]),
    ("ix_items_exam_subject", "items", ["exam", "subject"]),
    ("ix_alerts_item_leaf_idx", "alerts", ["item", "leaf_idx"]),
    ("ix_log_checkpoints_signed_at", "log_checkpoints", ["signed_at"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
