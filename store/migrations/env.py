"""Alembic environment: runs migrations on the engine the application passes in."""

from __future__ import annotations

from typing import cast

from alembic import context
from sqlalchemy import create_engine

from store.models import Base

config = context.config
target_metadata = Base.metadata

engine = config.attributes.get("engine") or create_engine(cast(str, config.get_main_option("sqlalchemy.url")))
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
