"""Shared fixtures. Fixtures are factories; the database fixture runs every
test that takes it on SQLite and on PostgreSQL (127.0.0.1:5432, trust auth).

Set CUSTODY_TEST_PG_URL to use another PostgreSQL server (it must allow
CREATE DATABASE), or CUSTODY_TEST_DATABASES=sqlite to run on SQLite only.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.factories import T0, TEST_SECRET, KeyFactory

PG_ADMIN_URL = os.environ.get("CUSTODY_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
DATABASES = os.environ.get("CUSTODY_TEST_DATABASES", "sqlite,postgresql").split(",")


@pytest.fixture(params=DATABASES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL: a SQLite file, or a new PostgreSQL database dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'custody.db'}"
        return
    from sqlalchemy import create_engine, text

    name = f"custody_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def make_instance(tmp_path: Path, db_url: str) -> Iterator[Callable[..., object]]:
    """Factory: a new initialised instance on the parametrised database."""
    from store.instance import init_instance

    made = []

    def factory(now: datetime = T0, origin: str = "test.exam/zk2017") -> object:
        instance, _ = init_instance(tmp_path / f"home{len(made)}", origin=origin, institute="3601", now=now,
                                    secret=TEST_SECRET, url=db_url)
        made.append(instance)
        return instance

    yield factory
    for instance in made:
        instance.close()


@pytest.fixture
def tiny_exam(make_instance: Callable[..., object]) -> object:
    """An instance with the tiny sample exam imported, labels and badges issued."""
    from tests.factories import prepare_sample_exam

    instance = make_instance()
    prepare_sample_exam(instance)
    return instance


@pytest.fixture
def key_factory() -> KeyFactory:
    return KeyFactory()
