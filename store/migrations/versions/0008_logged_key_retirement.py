"""Logged keys: ``retired_idx``, the leaf that logged the key's end of validity.

A rotated key's ``valid_until`` was only in the registry, which the nightly verification
trusted: a registry edit could extend a retired key (what it signed afterwards then verified)
and nothing in the log said otherwise. The log now holds it (a ``retirement`` leaf, or the
key leaf of a key registered with an end), and ``retired_idx`` marks which keys' ends it holds.
Keys retired before this revision get their ``retirement`` leaf with the next batch.

Revision ID: 0008
Revises: 0007
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("logged_keys") as batch_op:
        batch_op.add_column(sa.Column("retired_idx", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("logged_keys") as batch_op:
        batch_op.drop_column("retired_idx")
