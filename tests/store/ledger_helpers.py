"""Helpers for ledger tests: stations with keys, signed events for the tiny exam."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from custody.events import Action, Person, SealCondition, make_event, sign_event
from custody.labels import cose_from_text
from store.models import Item
from store.models import Person as PersonRow
from store.plans import load_plan
from store.simulation import register_stations

EXAM = "zk2017"


class Desk:
    """A station of the tiny exam that signs events."""

    def __init__(self, instance: Any, unit: str, now: datetime):
        with instance.db.session() as s:
            self.plan = load_plan(s, EXAM)
            self.items = {i.item_id: i for i in s.scalars(select(Item))}
            people = s.scalars(select(PersonRow)).all()
        self.signers = register_stations(instance, self.plan, now)
        self.code = f"ST-{unit}"
        self.unit = unit
        self.people: dict[str, list[Person]] = {}
        for p in people:
            badge = hashlib.sha256(cose_from_text(p.badge_text)).hexdigest()
            self.people.setdefault(p.unit, []).append(Person(p.staff_id, badge))
        self.seq = 0

    def label(self, item: str) -> str:
        return hashlib.sha256(cose_from_text(self.items[item].label_text)).hexdigest()

    def event(self, item: str, action: Action, at: datetime, *, frm: str | None = None, to: str | None = None,
              **extra: Any) -> dict[str, Any]:
        self.seq += 1
        row = self.items[item]
        raw = make_event(id=f"{self.code}-{self.seq:06d}", item=item, label=extra.pop("label", self.label(item)),
                         action=action, station=self.code, station_time=at, from_unit=frm, to_unit=to,
                         handed_by=tuple(self.people.get(frm or "", [])[:2]),
                         received_by=tuple(self.people.get(to or "", [])[:2]),
                         seal_number=row.seal, seal_condition=extra.pop("seal_condition", SealCondition.INTACT),
                         count=row.count, **extra)
        signer = self.signers[self.code]
        return sign_event(raw, signer.kid, signer.sign)

    def receive_events(self, n: int, start: datetime) -> list[dict[str, Any]]:
        """``n`` distinct, valid receive scans at the city (boxes, keys, backups in turn)."""
        top = sorted(i for i, r in self.items.items() if r.parent_box is None)
        return [self.event(top[k % len(top)], Action.RECEIVE, start + timedelta(seconds=k), frm="36-YS", to="3601")
                for k in range(n)]


def log_leaves(ledger: Any) -> list[bytes]:
    """Every leaf's bytes, in log order."""
    from store.models import LogLeaf

    with ledger.db.session() as s:
        return [d for (d,) in s.execute(select(LogLeaf.data).order_by(LogLeaf.idx))]


def append_from_process(home: str, url: str, secret: bytes, unit: str, count: int, batch: int,
                        out: Any) -> None:
    """Child process body for the concurrency test: sign and submit ``count`` events from one station."""
    from pathlib import Path

    from store.instance import open_instance
    from store.ledger import Ledger

    instance = open_instance(Path(home), secret=secret, url=url)
    try:
        desk = Desk(instance, unit, datetime(2017, 6, 1, tzinfo=UTC))
        ledger = Ledger(instance, clock=lambda: datetime(2017, 6, 12, 3, tzinfo=UTC))
        receipts = []
        events = desk.receive_events(count, datetime(2017, 6, 12, 2, tzinfo=UTC))
        for start in range(0, count, batch):
            for result in ledger.submit(events[start:start + batch]):
                receipts.append((result["status"], result["index"], result["leaf_hash"], result["receipt"]))
        out.put((unit, receipts))
    finally:
        instance.close()
