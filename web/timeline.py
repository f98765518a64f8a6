"""An item's custody timeline: its own leaves and, while it was packed, its box's.

A bundle travels inside its box from the printer until the box is opened or
unpacked at the site; scanning the box vouches for what it holds. So the
timeline shows the box's handovers up to that point (marked "via box"), then
the item's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from custody.errors import CustodyError
from custody.labels import Label, verify_label
from store.instance import Instance
from store.ledger import Ledger
from store.models import Item, Person
from web.scope import UnitTree

OPENS_BOX = {"unpack", "open"}


@dataclass
class TimelineEntry:
    index: int
    leaf_hash: str
    type: str
    received_at: str
    leaf: dict[str, Any]
    alerts: list[dict[str, Any]] = field(default_factory=list)
    via_box: str | None = None

    @property
    def event(self) -> dict[str, Any] | None:
        event = self.leaf.get("event")
        return event if self.type == "handover" and isinstance(event, dict) else None


def timeline(ledger: Ledger, exam: str, item: Item) -> list[TimelineEntry]:
    own = [_entry(h) for h in ledger.item_history(exam, item.item_id)]
    if not item.parent_box:
        return own
    first_own = min((e.index for e in own if e.type == "handover"), default=None)
    via: list[TimelineEntry] = []
    for h in ledger.item_history(exam, item.parent_box):
        entry = _entry(h, via_box=item.parent_box)
        if entry.type != "handover" or (first_own is not None and entry.index > first_own):
            continue
        via.append(entry)
        event = entry.event or {}
        if event.get("action") in OPENS_BOX:
            break
    return sorted(own + via, key=lambda e: e.index)


def _entry(history: dict[str, Any], via_box: str | None = None) -> TimelineEntry:
    leaf = history["leaf"]
    return TimelineEntry(index=history["index"], leaf_hash=history["leaf_hash"], type=str(leaf.get("type")),
                         received_at=history["received_at"], leaf=leaf, alerts=list(history.get("alerts", [])),
                         via_box=via_box)


def people_names(instance: Instance) -> dict[str, tuple[str, str]]:
    """staff id -> (name, unit)."""
    with instance.db.session() as s:
        return {p: (n, u) for p, n, u in s.execute(select(Person.staff_id, Person.name, Person.unit))}


def verified_label(item: Item, ledger: Ledger) -> tuple[Label | None, str | None]:
    """The item's label verified against the key registry, or the reason it does not verify."""
    if not item.label_text:
        return None, None
    try:
        return verify_label(item.label_text, ledger.keyring()), None
    except CustodyError as exc:
        return None, str(exc)


def describe_units(tree: UnitTree, *codes: str | None) -> list[str]:
    return [f"{tree.name(c)} ({c})" if c else "" for c in codes]
