"""The handovers a station should expect: what is on its way to (or waiting at) its unit.

``receive``, ``arrive`` and ``receive_for_grading``: items sent to the unit
(pending, heading there) and items bound for a unit at or below it that have
not reached it yet. ``open``: items held at or below the unit and not yet
opened. ``seal``: answer-card bundles opened there. Any other action: items
held at or below the unit. Items still packed in a box are represented by
their box.
"""

from __future__ import annotations

import hashlib
from typing import Any

from custody.labels import cose_from_text
from web.overview import ItemRow, status_of
from web.scope import UnitTree

INCOMING = {"receive", "arrive", "receive_for_grading"}
PENDING = {"issued", "in_transit", "distributed", "returned"}
FINISHED = {"graded", "archived", "destroyed"}
OPENED = {"opened", "sealed", "returned", "grading", "graded", "archived", "destroyed"}
OPENABLE = {"paper_bundle", "answer_card_bundle", "listening_disc", "backup_paper", "answer_key"}


def expected_items(items: list[ItemRow], states: dict[str, dict[str, Any]], unit: str, action: str,
                   tree: UnitTree) -> list[dict[str, Any]]:
    """The expected items, without their ``label`` (the caller adds it: see :func:`label_hash`)."""
    below = tree.below(unit)
    out = []
    for item in items:
        state = states.get(item.item_id)
        status = status_of(state)
        holder = state.get("holder") if state else None
        in_box = state.get("in_box") if state else item.parent_box
        if in_box or status in FINISHED:
            continue
        held_here = holder in below and status != "in_transit"
        if action in INCOMING:
            heading = state.get("heading") if state else None
            if status in PENDING and heading is not None:
                wanted = heading in below and not held_here
            else:
                wanted = item.destination in below and holder not in below and status != "missing"
        elif action == "open":
            wanted = held_here and item.kind in OPENABLE and status not in OPENED
        elif action == "seal":
            wanted = held_here and item.kind == "answer_card_bundle" and status == "opened"
        else:
            wanted = held_here
        if wanted:
            out.append({"item": item.item_id, "kind": item.kind, "subject": item.subject,
                        "destination": item.destination, "count": item.count, "seal": item.seal,
                        "box": item.parent_box, "label": None, "status": status,
                        "holder": holder, "heading": state.get("heading") if state else None})
    return out


def label_hash(text: str | None) -> str | None:
    """Hex SHA-256 of a label text's COSE bytes: what a station's scan of that label yields."""
    if not text:
        return None
    cose = cose_from_text(text)
    return hashlib.sha256(cose).hexdigest() if cose else None
