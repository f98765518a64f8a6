"""Logged keys: ``retired_idx``, the leaf that logged the key's end of validity; keys: ``rollover``.

A rotated key's ``valid_until`` was only in the registry, which the nightly verification
trusted: a registry edit could extend a retired key (what it signed afterwards then verified)
and nothing in the log said otherwise. The log now holds it (a ``retirement`` leaf, or the
key leaf of a key registered with an end), and ``retired_idx`` marks which keys' ends it holds.
Keys retired before this revision get their ``retirement`` leaf with the next batch.

``keys.rollover``: for a log key made by a rotation, the old log key's signed note vouching
for it (``custody.log.rollover``), so that stations and witnesses that pinned the old key
can follow.

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
    op.add_column("keys", sa.Column("rollover", sa.Text(), nullable=True))


def downgrade() -> None:
    # ALTER TABLE, not a batch copy: SQLite (3.35 and later) drops the column in place, where a copy of
    # ``keys`` would have to drop the table that ``logged_keys`` refers to
    op.execute("ALTER TABLE keys DROP COLUMN rollover")
    with op.batch_alter_table("logged_keys") as batch_op:
        batch_op.drop_column("retired_idx")
