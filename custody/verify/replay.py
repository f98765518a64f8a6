"""Checks that need the leaves in order: each item's hash chain, and the custody rules re-run.

:class:`ChainAudit` follows every item's ``item_prev`` chain. :class:`RulesReplay`
feeds every handover to a fresh :class:`custody.rules.Tracker` in log order (the
labels and backup orders where they are in the log) and compares the alerts it raises with
the stored ones: an alert deleted to hide a breach, or one added, is a finding.
Both can resume from a saved state (incremental verification).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from custody.errors import CustodyError
from custody.verify.findings import Finding

AlertKey = tuple[int, str, str]
"""(leaf index, item, alert code)."""


class ChainAudit:
    """Every item's chain: ``item_prev`` of a leaf is the hash of the same item's previous leaf."""

    def __init__(self, heads: Mapping[str, tuple[int, bytes]] | None = None):
        self.heads: dict[str, tuple[int, bytes]] = dict(heads or {})

    def add(self, index: int, item: str, item_prev: Any, leaf_hash: bytes) -> Finding | None:
        head = self.heads.get(item)
        self.heads[item] = (index, leaf_hash)
        expected = head[1].hex() if head else None
        if item_prev == expected:
            return None
        after = f"leaf {head[0]}" if head else "no earlier leaf"
        return Finding("item_chain_broken",
                       f"leaf {index} of item {item}: item_prev is {item_prev}, expected {expected} ({after}): "
                       "a leaf of this item was removed, added or changed",
                       f"物品 {item} 的第 {index} 条日志链接断裂：前序哈希应为 {expected}，实为 {item_prev}",
                       index=index, item=item, expected=str(expected), found=str(item_prev))

    def check_heads(self, stored: Iterable[tuple[str, bytes | None, int | None]]) -> list[Finding]:
        """Compare with the stored chain heads ``(item, leaf hash, index)`` (items with a leaf only)."""
        out = []
        for item, leaf_hash, index in stored:
            if leaf_hash is None and index is None:
                continue
            head = self.heads.get(item)
            if head is None or head[1] != leaf_hash or head[0] != index:
                found = f"leaf {index} ({leaf_hash.hex() if leaf_hash else None})"
                expected = f"leaf {head[0]} ({head[1].hex()})" if head else "no leaf"
                out.append(Finding("item_head_mismatch",
                                   f"item {item}: the stored chain head is {found}, the log's last leaf for it is "
                                   f"{expected}", f"物品 {item} 的链头记录与日志不符", item=item,
                                   expected=expected, found=found))
        return out


class RulesReplay:
    """A fresh custody-rules tracker fed the log's handovers in order."""

    def __init__(self, plan: Any, items: Mapping[str, Any], *, states: Mapping[str, Any] | None = None,
                 orders: Iterable[tuple[str, list[str], str]] = (), labels: Mapping[str, str] | None = None,
                 config: Any = None):
        from custody.rules import ItemState, Tracker

        restored = {k: ItemState.from_json(v) for k, v in (states or {}).items()}
        self.tracker = Tracker(plan, items, config, states=restored)
        #: Each item's label as far as the replay got (item -> label hash), the label leaves' own.
        self.labels: dict[str, str] = {}
        for item, label in (labels or {}).items():
            self.add_label(item, label)
        self.orders: list[tuple[str, list[str], str]] = []
        for subject, units, at in orders:
            self.add_order(subject, units, at)
        self.states: dict[str, Any] = dict(states or {})
        self.alerts: list[tuple[int, str, str, str]] = []
        self.failures: list[Finding] = []

    def add_order(self, subject: str, units: list[str], at: str) -> None:
        self.tracker.add_backup_order(subject, set(units), datetime.fromisoformat(at.replace("Z", "+00:00")))
        self.orders.append((subject, list(units), at))

    def add_label(self, item: str, label: str) -> None:
        self.tracker.issue_label(item, label)
        self.labels[item] = label

    def feed(self, index: int, leaf: Mapping[str, Any], received_at: datetime) -> None:
        """One leaf in log order: a handover is judged, a label or backup order takes effect, others pass."""
        from custody.events import parse_event

        kind = leaf.get("type")
        try:
            if kind == "backup_order":
                self.add_order(leaf["subject"], list(leaf["units"]), leaf["at"])
            elif kind == "label":
                self.add_label(leaf["item"], leaf["label"])
            elif kind == "handover":
                event = parse_event(leaf["event"])
                outcome = self.tracker.record(event, received_at)
                for alert in outcome.alerts:
                    self.alerts.append((index, alert.item, alert.code, alert.severity))
                for item, state in outcome.changed.items():
                    self.states[item] = state
        except (CustodyError, KeyError, TypeError, ValueError) as exc:
            if len(self.failures) < 50:
                self.failures.append(Finding("rules_failed", f"leaf {index}: the custody rules could not judge it: "
                                             f"{type(exc).__name__}: {exc}", f"第 {index} 条日志无法按规则复核",
                                             index=index, item=leaf.get("item") if isinstance(leaf.get("item"), str)
                                             else None))

    def state_json(self) -> dict[str, Any]:
        """Every changed item's state as JSON (what resumes the replay)."""
        return {k: (v.to_json() if hasattr(v, "to_json") else v) for k, v in self.states.items()}


def compare_alerts(replayed: Iterable[tuple[int, str, str, str]],
                   stored: Iterable[tuple[int, str | None, str]], cap: int = 200) -> list[Finding]:
    """Replayed alerts vs stored alerts, as multisets of (leaf index, item, code)."""
    want = Counter((i, item, code) for i, item, code, _ in replayed)
    have = Counter((i, item or "", code) for i, item, code in stored)
    out: list[Finding] = []
    for (i, item, code), n in sorted((want - have).items()):
        out.append(Finding("alert_missing",
                           f"leaf {i}: the custody rules raise {code} for item {item} ({n}x), the alerts table "
                           "lacks it: an alert was deleted or never stored",
                           f"第 {i} 条日志按规则应产生告警 {code}（物品 {item}），告警表中缺失",
                           index=i, item=item or None, expected=code, found="no alert"))
    for (i, item, code), n in sorted((have - want).items()):
        out.append(Finding("alert_extra",
                           f"leaf {i}: the alerts table holds {code} for item {item} ({n}x), which the custody rules "
                           "do not raise", f"第 {i} 条日志的告警 {code}（物品 {item}）无法由规则复现",
                           index=i, item=item or None, expected="no alert", found=code))
    return out[:cap]
