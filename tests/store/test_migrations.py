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


def test_a_key_rotated_before_the_retirement_leaf_existed_gets_one_with_the_next_batch(tiny_exam) -> None:
    """An instance upgraded to 0008 (``custody init``) with a key whose end only the registry knew: the
    first batch after the upgrade logs that end, and the log verifies."""
    import json
    from datetime import timedelta

    from alembic import command
    from sqlalchemy import select

    from custody.keyring import Role
    from store.ledger import Ledger
    from store.models import LogLeaf
    from store.verification import VerifyOptions, verify_instance
    from tests.factories import T0

    at = T0 + timedelta(days=1)
    first = Ledger(tiny_exam, clock=lambda: at)
    first.record_labels("zk2017")  # the keys are in the log
    first.close()
    old = tiny_exam.keys.current(Role.BADGE_ISSUER, "3601", at)
    tiny_exam.keys.rotate(Role.BADGE_ISSUER, "3601", at + timedelta(minutes=1))  # in the registry only, so far
    # down to 0007 and up again with the data in place (0007 had no retired_idx: nothing marks the end logged)
    command.downgrade(tiny_exam.db.alembic_config(), "0007")
    tiny_exam.db.migrate()
    ledger = Ledger(tiny_exam, clock=lambda: at + timedelta(minutes=2))
    try:
        assert ledger.log_registry() == 2  # the new key, and the old key's end
        assert ledger.log_registry() == 0
    finally:
        ledger.close()
    with tiny_exam.db.session() as s:
        [retired] = [json.loads(d) for d in s.scalars(select(LogLeaf.data).where(LogLeaf.type == "retirement"))]
    assert retired["kid"] == old.kid and retired["valid_until"] == "2017-06-02T08:01:00Z"
    outcome = verify_instance(tiny_exam, VerifyOptions(full=True, workers=0))
    assert outcome.ok, outcome.report["findings"][:3]
