"""Runs the core's custody rules (``custody.rules``) over the ledger's accepted handovers.

The tracker keeps every item's custody state in memory between batches of
one process; the states are also stored (``item_heads.state``) in the same
transaction as the leaves, so another process, or this one after a crash,
rebuilds exactly the same tracker. A tracker that may be stale (another
writer appended since) is rebuilt from the stored states.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from custody.events import Event
from custody.labels import ItemKind, cose_from_text
from custody.rules import ItemInfo, ItemState, Tracker
from store.models import AlertRecord, Item, ItemHead, LogLeaf
from store.plans import load_plan


class CachedTracker:
    def __init__(self, tracker: Tracker, size: int, exam: str):
        self.tracker = tracker
        self.size = size
        self.exam = exam


def _label_hash(text: str | None) -> str | None:
    """The SHA-256 of the item's current label, so a clone is caught on its first scan."""
    cose = cose_from_text(text) if text else None
    return hashlib.sha256(cose).hexdigest() if cose else None


def load_tracker(session: Session, exam: str) -> Tracker:
    plan = load_plan(session, exam)
    items = {r.item_id: ItemInfo(item_id=r.item_id, kind=ItemKind(r.kind), subject=r.subject,
                                 destination=r.destination, count=r.count, seal=r.seal, parent_box=r.parent_box,
                                 label=_label_hash(r.label_text))
             for r in session.scalars(select(Item).where(Item.exam == exam))}
    states = {item: ItemState.from_json(json.loads(state))
              for item, state in session.execute(select(ItemHead.item, ItemHead.state)
                                                 .where(ItemHead.state.is_not(None)))}
    tracker = Tracker(plan, items, states=states)
    for (data,) in session.execute(select(LogLeaf.data).where(LogLeaf.type == "backup_order").order_by(LogLeaf.idx)):
        order = json.loads(data)
        tracker.add_backup_order(order["subject"], set(order["units"]),
                                 datetime.fromisoformat(order["at"].replace("Z", "+00:00")))
    return tracker


def judge(session: Session, exam: str, first: int, end: int, accepted: list[tuple[int, Event, datetime]],
          cached: CachedTracker | None) -> CachedTracker | None:
    """Judge ``accepted`` (leaf index, event, received at), store alerts and states; return the tracker.

    ``first`` and ``end`` bound the batch's leaves. A batch without handovers only
    moves a current tracker forward; it builds none.
    """
    if not accepted:
        if cached is not None and cached.size == first:
            cached.size = end
            return cached
        return None
    if cached is None or cached.size != first or cached.exam != exam:
        cached = CachedTracker(load_tracker(session, exam), first, exam)
    tracker = cached.tracker
    changed: dict[str, ItemState] = {}
    alerts: list[dict[str, Any]] = []
    for index, event, received_at in accepted:
        outcome = tracker.record(event, received_at)
        changed.update(outcome.changed)
        for alert in outcome.alerts:
            alerts.append({"leaf_idx": index, "item": alert.item, "unit": event.to_unit or event.from_unit,
                           "code": alert.code, "severity": alert.severity, "message": alert.message,
                           "message_zh": alert.message_zh, "details": json.dumps(alert.details, ensure_ascii=False,
                                                                                  default=str),
                           "created_at": received_at})
    if alerts:
        session.execute(AlertRecord.__table__.insert(), alerts)
    if changed:
        table = ItemHead.__table__
        present: set[str] = set()
        names = list(changed)
        for start in range(0, len(names), 500):
            present.update(session.scalars(select(ItemHead.item).where(ItemHead.item.in_(names[start:start + 500]))))
        texts = {item: json.dumps(state.to_json(), ensure_ascii=False, sort_keys=True)
                 for item, state in changed.items()}
        updates = [{"k": item, "s": text} for item, text in texts.items() if item in present]
        if updates:
            session.connection().execute(table.update().where(table.c.item == bindparam("k"))
                                         .values(state=bindparam("s"), state_size=end), updates)
        inserts = [{"item": item, "leaf_hash": None, "idx": None, "state": text, "state_size": end}
                   for item, text in texts.items() if item not in present]
        if inserts:
            session.execute(table.insert(), inserts)
    cached.size = end
    return cached
