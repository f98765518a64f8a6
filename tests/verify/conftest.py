"""Fixtures for the verification tests: a whole tiny exam run through the ledger, and tampering helpers."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, delete, select, text

from store.instance import Instance
from store.models import LogCheckpoint, LogHead, LogLeaf, LogNode
from store.verification import Outcome, VerifyOptions, verify_instance
from tests.factories import TEST_SECRET


@dataclass
class Simulated:
    instance: Instance
    receipts: Path
    plan: Any

    def verify(self, **options: Any) -> Outcome:
        options.setdefault("workers", 0)
        return verify_instance(self.instance, VerifyOptions(**options))


def simulate(instance: Instance, plan: Any, receipts: Path, *, limit: int | None = None, skip: int = 0,
             batch_size: int = 60) -> None:
    """``store.simulation.run``, keeping every receipt a station got (one file per event)."""
    from store.ledger import Ledger
    from store.simulation import LABELS_AT, STATIONS_AT, ExamSimulation, register_stations

    clock = {"now": LABELS_AT}
    ledger = Ledger(instance, clock=lambda: clock["now"])
    ledger.record_labels(plan.exam)
    simulation = ExamSimulation(instance, plan, register_stations(instance, plan, STATIONS_AT))
    simulation.build()
    receipts.mkdir(parents=True, exist_ok=True)
    sent = 0
    for arrival, batch in simulation.batches(batch_size):
        if limit is not None and sent >= limit:
            break
        if sent < skip:
            sent += len(batch)
            continue
        clock["now"] = arrival
        for submission, result in zip(batch, ledger.submit(batch), strict=True):
            name = submission["event"]["id"]
            (receipts / f"{name}.tlog").write_text(result["receipt"], encoding="utf-8")
        sent += len(batch)


@pytest.fixture(scope="session")
def golden(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[Any, Any]]:
    """Simulated instances built once per database kind, cloned for each test (building one takes seconds)."""
    made: dict[Any, Any] = {"_root": tmp_path_factory.mktemp("golden"), "_pg": []}
    yield made
    for url, name in made["_pg"]:
        with _admin(url).connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _admin(url: str) -> Any:
    return create_engine(url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")


def _save(instance: Instance, where: Path, golden: dict[Any, Any]) -> str:
    instance.db.dispose()
    shutil.copytree(instance.home, where / "home")
    url = instance.db.url
    if url.startswith("sqlite"):
        shutil.copyfile(url[len("sqlite:///"):], where / "custody.db")
        return str(where / "custody.db")
    name = f"custody_golden_{uuid.uuid4().hex[:10]}"
    with _admin(url).connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{url.rsplit("/", 1)[1]}"'))
    golden["_pg"].append((url, name))
    return name


def _clone(saved: str, where: Path, home: Path, url: str) -> Instance:
    from store.instance import open_instance

    shutil.copytree(where / "home", home)
    if url.startswith("sqlite"):
        shutil.copyfile(saved, url[len("sqlite:///"):])
    else:
        name = url.rsplit("/", 1)[1]
        with _admin(url).connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            c.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{saved}"'))
    return open_instance(home, secret=TEST_SECRET, url=url)


@pytest.fixture
def make_simulated(make_instance: Callable[..., Instance], tmp_path: Path, db_url: str,
                   golden: dict[Any, Any]) -> Iterator[Callable[..., Simulated]]:
    """Factory: an instance with the tiny exam, labels, badges and the whole simulated exam in its log."""
    from custody.sample import EXAM, sample_people, sample_plan
    from store.issuance import issue_badges, issue_item_labels
    from store.plans import import_people, import_plan
    from store.simulation import SETUP_AT

    opened: list[Instance] = []
    plan = sample_plan("tiny")

    def factory(limit: int | None = None) -> Simulated:
        key = (db_url.split(":", 1)[0], limit)
        receipts = tmp_path / f"receipts-{len(opened)}"
        if key in golden:
            saved, where = golden[key]
            instance = _clone(saved, where, tmp_path / f"clone{len(opened)}", db_url)
            opened.append(instance)
            shutil.copytree(where / "receipts", receipts)
            return Simulated(instance, receipts, plan)
        instance = make_instance(now=SETUP_AT)
        with instance.db.write_session() as s:
            import_plan(s, plan, SETUP_AT, seal_prefix="FT17")
            import_people(s, sample_people(plan))
        instance.set_setting("exam", EXAM)
        issue_item_labels(instance, EXAM, SETUP_AT)
        issue_badges(instance, EXAM, SETUP_AT)
        simulate(instance, plan, receipts, limit=limit)
        where = golden["_root"] / f"{key[0]}-{limit}"
        where.mkdir()
        shutil.copytree(receipts, where / "receipts")
        golden[key] = (_save(instance, where, golden), where)
        return Simulated(instance, receipts, plan)

    yield factory
    for instance in opened:
        instance.close()


@pytest.fixture
def simulated(make_simulated: Callable[..., Simulated]) -> Simulated:
    return make_simulated()


# --- reading and changing the stored log, as someone with database access would ----------

def leaves(instance: Instance) -> list[tuple[int, bytes]]:
    with instance.db.session() as s:
        return [(i, d) for i, d in s.execute(select(LogLeaf.idx, LogLeaf.data).order_by(LogLeaf.idx))]


def handover_indexes(instance: Instance) -> list[int]:
    with instance.db.session() as s:
        return list(s.scalars(select(LogLeaf.idx).where(LogLeaf.type == "handover").order_by(LogLeaf.idx)))


def leaf_json(instance: Instance, idx: int) -> dict[str, Any]:
    with instance.db.session() as s:
        return json.loads(s.get(LogLeaf, idx).data)


def head(instance: Instance) -> tuple[int, bytes]:
    with instance.db.session() as s:
        row = s.get(LogHead, 1)
        return row.size, row.root


def codes(outcome: Outcome) -> set[str]:
    return set(outcome.report["finding_counts"])


def named(outcome: Outcome, code: str) -> list[dict[str, Any]]:
    return [f for f in outcome.report["findings"] if f["code"] == code]


def delete_rows(instance: Instance, model: Any, *where: Any) -> None:
    with instance.db.write_session() as s:
        s.execute(delete(model).where(*where))


def set_revoked_at(instance: Instance, kid: str, at: Any) -> None:
    """The registry's revocation time changed in the database, not through the key manager."""
    from sqlalchemy import update

    from store.models import KeyRecord

    with instance.db.write_session() as s:
        s.execute(update(KeyRecord).where(KeyRecord.kid == kid).values(revoked_at=at))


__all__ = ["LogCheckpoint", "LogNode", "TEST_SECRET"]
