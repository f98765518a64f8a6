"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import store.accounts
import store.verification_models
from store.db import Database
from store.models import Base

#: Every module that declares tables (imported: their tables join Base.metadata).
MODEL_MODULES = (store.accounts, store.verification_models)


def test_the_migrated_schema_is_the_models_schema(db_url: str) -> None:
    db = Database(db_url)
    db.migrate()
    try:
        with db.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": False})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        db.dispose()
