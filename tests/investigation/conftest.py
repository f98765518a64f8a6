"""The demo exam (tiny scale) through the real ledger, with a planted leak and a cloned label.

Built once per database (SQLite and PostgreSQL, as tests/conftest.py's
``db_url``) and module, by :class:`store.simulation.ExamSimulation`, with
extra scans planted into its event stream before it is signed and sent:

- **the leak** (subject YW): bundle ``YW-P-K001-01``, packed in box
  ``YW-X-K001`` in the secure room of 东湖区 (360102), is taken out of the
  secure room on its own at 23:10 the night before the exam, its seal
  damaged; no receive follows; it is next seen at its site K001 when it is
  distributed to its room the next morning.
- **a cloned label** (subject WL): the label of ``WL-P-K002-02``, packed in
  box ``WL-X-K002`` in the secure room of 西湖区 (360103), is scanned at the
  station of 360102 on 18 June while the box stays at 360103 (it is taken out
  there on the exam morning).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from custody.events import Action, SealCondition
from custody.plan import LOCAL_TZ
from tests.factories import TEST_SECRET

PG_ADMIN_URL = os.environ.get("CUSTODY_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
DATABASES = os.environ.get("CUSTODY_TEST_DATABASES", "sqlite,postgresql").split(",")

LEAKED = "YW-P-K001-01"
LEAK_COUNTY = "360102"
LEAK_TAKEN_OUT = datetime(2017, 6, 19, 23, 10, tzinfo=LOCAL_TZ)
CLONED = "WL-P-K002-02"
CLONE_SEEN = datetime(2017, 6, 18, 10, 0, tzinfo=LOCAL_TZ)


@dataclass
class Demo:
    instance: Any
    plan: Any
    url: str
    home: Path


def plant(sim: Any) -> None:
    """Add the leak and the cloned label to a built simulation (see the module docstring)."""
    sim._event(LEAK_TAKEN_OUT, LEAKED, Action.TAKE_OUT, LEAK_COUNTY, frm=f"{LEAK_COUNTY}-BMS", to=LEAK_COUNTY,
               handed=LEAK_COUNTY, received=LEAK_COUNTY, seal=SealCondition.DAMAGED)
    sim._event(CLONE_SEEN, CLONED, Action.RECEIVE, LEAK_COUNTY, frm="3601", to=LEAK_COUNTY, handed="3601",
               received=LEAK_COUNTY)


def build_demo(home: Path, url: str) -> Demo:
    from custody.sample import EXAM, sample_people, sample_plan
    from store.instance import init_instance
    from store.issuance import issue_badges, issue_item_labels
    from store.ledger import Ledger
    from store.plans import import_people, import_plan
    from store.simulation import LABELS_AT, SETUP_AT, STATIONS_AT, ExamSimulation, register_stations

    instance, _ = init_instance(home, origin="test.exam/zk2017", institute="3601", now=SETUP_AT,
                                secret=TEST_SECRET, url=url)
    plan = sample_plan("tiny")
    with instance.db.write_session() as s:
        import_plan(s, plan, SETUP_AT, seal_prefix="FT17")
        import_people(s, sample_people(plan))
    instance.set_setting("exam", EXAM)
    issue_item_labels(instance, EXAM, LABELS_AT)
    issue_badges(instance, EXAM, LABELS_AT)
    clock = {"now": LABELS_AT}
    ledger = Ledger(instance, clock=lambda: clock["now"])
    ledger.record_labels(EXAM)
    sim = ExamSimulation(instance, plan, register_stations(instance, plan, STATIONS_AT))
    sim.build()
    plant(sim)
    for arrival, batch in sim.batches(1000):
        clock["now"] = arrival
        results = ledger.submit(batch)
        assert all(r["status"] == "accepted" for r in results), [r for r in results if r["status"] != "accepted"]
    return Demo(instance, plan, url, home)


@pytest.fixture(scope="session", params=DATABASES)
def demo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """The planted demo exam on SQLite and on PostgreSQL (read-only for the tests: build once)."""
    home = tmp_path_factory.mktemp("investigation") / "home"
    if request.param == "sqlite":
        made = build_demo(home, f"sqlite:///{home.parent / 'custody.db'}")
        yield made
        made.instance.close()
        return
    from sqlalchemy import create_engine, text

    name = f"custody_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    made = None
    try:
        made = build_demo(home, PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name)
        yield made
    finally:
        if made is not None:
            made.instance.close()
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
