"""Splitting the expensive checks over processes: signatures by leaf index, custody rules by box group.

The custody rules couple an item only to the boxes it is packed in (and what
those hold): the tracker moves a box's contents with it, and nothing else
crosses items. So the items fall into groups (an item, its box, the box's
box, ...), and a tracker per share of the groups, fed that share's handovers in
log order, raises exactly the alerts one tracker over everything would.
A ``pack`` into a box of another share breaks that: :meth:`Shares.conflicts`
says so, and the caller re-runs the rules in one process.

:class:`ShareWorker` is what one process runs over every chunk of leaves:
the Ed25519 checks of the leaves whose index falls to it, and the rules for
its share of the items.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from custody.keyring import KeyRing
from custody.verify.findings import Finding
from custody.verify.leaves import check_leaf, parse_utc
from custody.verify.replay import RulesReplay


class Shares:
    """Which share (0..n-1) judges each item: by the group of boxes it belongs to."""

    def __init__(self, n: int, links: Iterable[tuple[str, str | None]]):
        self.n = max(1, n)
        parent: dict[str, str] = {}

        def find(x: str) -> str:
            root = x
            while parent.get(root, root) != root:
                root = parent[root]
            while parent.get(x, x) != root:
                parent[x], x = root, parent[x]
            return root

        for item, box in links:
            parent.setdefault(item, item)
            if box:
                parent.setdefault(box, box)
                a, b = find(item), find(box)
                if a != b:
                    parent[max(a, b)] = min(a, b)
        self._find = find
        self._cache: dict[str, int] = {}

    def of(self, item: str) -> int:
        share = self._cache.get(item)
        if share is None:
            share = self._cache[item] = zlib.crc32(self._find(item).encode()) % self.n
        return share

    def conflicts(self, item: str, box: str | None) -> bool:
        """A pack of ``item`` into ``box`` that joins two shares."""
        return box is not None and self.of(item) != self.of(box)


class ShareWorker:
    """One share of the work over every chunk of leaves ``(index, bytes, received_at)``."""

    def __init__(self, keys: KeyRing, share: int, shares: Shares, replay: RulesReplay | None):
        self.keys = keys
        self.share = share
        self.shares = shares
        self.replay = replay
        self.findings: list[Finding] = []

    def process(self, rows: Sequence[tuple[int, bytes, datetime, str | None, str | None]]) -> None:
        """Rows ``(index, bytes, received_at, type, item)``; type and item as the caller parsed them (None if
        it could not: then only the leaf checks run, and they name the leaf)."""
        n, share, replay, of = self.shares.n, self.share, self.replay, self.shares.of
        for index, data, received, kind, item in rows:
            if index % n == share:
                self.findings.extend(check_leaf(index, data, self.keys))
            if replay is None or not (kind == "backup_order" or (kind in ("handover", "label") and item is not None
                                                                 and of(item) == share)):
                continue
            try:
                leaf = json.loads(data)
            except ValueError:
                continue
            replay.feed(index, leaf, judged_at(received, leaf))

    def result(self) -> dict[str, Any]:
        replay = self.replay
        return {"findings": self.findings,
                "alerts": replay.alerts if replay else [],
                "failures": replay.failures if replay else [],
                "states": replay.state_json() if replay else {},
                "labels": replay.labels if replay else {},
                "orders": replay.orders if replay else []}


def judged_at(column: datetime, leaf: Mapping[str, Any]) -> datetime:
    """The time the ledger judged the event with: the row's (sub-second) time if it agrees with the leaf."""
    text = leaf.get("received_at")
    stamp = parse_utc(text)
    if stamp is None or column is None:
        return stamp or column
    return column if column.replace(microsecond=0) == stamp else stamp
