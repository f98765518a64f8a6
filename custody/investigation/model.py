"""The values of an investigation: what goes in (scans, items, stored alerts) and what comes out.

Inputs are read from the log by the storage layer and passed in; nothing here
reads a clock, a file or a database. Every output value names the log leaves
it rests on (``index``), so a report can point at the evidence for each line.
Times are timezone-aware UTC ``datetime`` s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, NamedTuple

from custody.events import scan_place
from custody.labels import ItemKind

CRITICAL, WARNING, INFO = "critical", "warning", "info"

#: Item kinds that carry the subject's questions or answers: what a leak exposes.
CONTENT_KINDS = frozenset({ItemKind.PAPER_BUNDLE, ItemKind.LISTENING_DISC, ItemKind.ANSWER_KEY,
                           ItemKind.BACKUP_PAPER})


class Scan(NamedTuple):
    """One handover leaf as the investigation needs it (see :func:`custody.investigation.scan_from_leaf`).

    ``time`` is the station time of the scan, ``received_at`` when the log
    received it; people are staff ids. (Named tuples here and below: a
    report makes a few of them per scan, and they are the cheapest immutable
    records Python has.)
    """

    index: int  # type: ignore[assignment]  # a field named like tuple.index, on purpose: the leaf index
    item: str
    action: str
    time: datetime
    received_at: datetime
    from_unit: str | None
    to_unit: str | None
    handed_by: tuple[str, ...]
    received_by: tuple[str, ...]
    station: str
    event_id: str
    label: str
    seal_condition: str | None = None
    seal_number: str | None = None
    count: int | None = None  # type: ignore[assignment]  # the count seen (shadows tuple.count)
    reason: str | None = None
    box: str | None = None
    #: The key id (hex) of the station key that signed the scan.
    kid: str | None = None

    @property
    def place(self) -> str | None:
        """Where the scan was made: the sender of a handover nobody received yet (a depart; a distribute,
        return or issue nobody signed for at the other end), else the receiving unit, else the giving one."""
        return scan_place(self.action, self.from_unit, self.to_unit, bool(self.received_by))


@dataclass(frozen=True, slots=True)
class ItemRecord:
    """An item of the subject as the item table and its label leaf describe it."""

    item_id: str
    kind: ItemKind
    subject: str
    destination: str
    count: int
    seal: str | None = None
    parent_box: str | None = None
    #: SHA-256 hex of the issued label, when its label leaf is in the log.
    label: str | None = None
    issued_at: datetime | None = None
    label_index: int | None = None


@dataclass(frozen=True, slots=True)
class StoredAlert:
    """A row of the ledger's alert table (raised by the custody rules when the leaf was appended)."""

    index: int
    item: str | None
    unit: str | None
    code: str
    severity: str
    message: str
    message_zh: str
    details: Mapping[str, Any] = field(default_factory=dict, hash=False)


class Revocation(NamedTuple):
    """A station key revoked in the log: from ``at`` (the earliest its ``revocation`` leaves give), logged at
    leaf ``index``. Scans it signed at or after ``at`` were made by whoever held the key then."""

    kid: str
    at: datetime
    index: int  # type: ignore[assignment]  # the revocation's leaf index (shadows tuple.index)
    reason: str | None = None


@dataclass(frozen=True)
class InvestigationConfig:
    """Thresholds of the investigation's own checks. Defaults are documented in docs/investigation.md."""

    #: A scan that reached the log this long after its station time was synced late.
    late_sync: timedelta = timedelta(minutes=30)
    #: Seen at two unrelated places this close in time: the same label in two places at once.
    clone_window: timedelta = timedelta(minutes=60)
    #: In transit (departed, not received) longer than this at the report's time: a gap.
    transit_limit: timedelta = timedelta(hours=6)
    #: Local hours (Asia/Shanghai) in which taking out, unpacking or opening is night access.
    night_from: int = 22
    night_until: int = 6
    #: Gap hours counted in the score, at most.
    gap_hours_cap: float = 24.0


# --- results ------------------------------------------------------------------------


class Window(NamedTuple):
    """A period in which one unit held the item.

    ``unit`` is where it was (a secure room, a county office, a room);
    ``accountable`` the unit that answers for it (a secure room's parent);
    ``kind``: ``held``, ``stored`` (in a secure room), ``transit`` (departed
    with escorts, the sender answers until it is received), ``opened``, or
    ``before_first_scan`` (from the label's issue to the first handover, the
    giver of that handover). ``end`` is None while it still holds it.
    ``via_box``: the scans that evidence this window are of the box the item
    was packed in; ``item`` is then that box (else the item itself).
    """

    item: str
    unit: str
    accountable: str
    kind: str
    start: datetime
    end: datetime | None
    start_index: int | None
    end_index: int | None
    people: tuple[str, ...] = ()
    heading: str | None = None
    via_box: str | None = None


class Gap(NamedTuple):
    """Time with no accountable holder: no handover links ``after_unit`` to ``next_unit``.

    ``end`` is None when nothing was seen since. ``code``: ``unlinked_move``
    (seen next somewhere no recorded handover leads to), ``no_arrival``
    (departed, never received), ``reported_missing``, ``no_first_handover``.
    """

    item: str
    code: str
    start: datetime
    end: datetime | None
    after_unit: str | None
    after_accountable: str | None
    next_unit: str | None
    start_index: int | None
    end_index: int | None
    message: str
    message_zh: str

    def hours(self, until: datetime) -> float:
        return max(0.0, ((self.end or until) - self.start).total_seconds() / 3600)


class Anomaly(NamedTuple):
    """Something wrong in an item's history, at one leaf.

    ``source``: ``rules`` (the ledger's stored alert) or ``investigation`` (a
    check of this package). ``unit`` is where it happened and ``accountable``
    who answers for it. ``via_box``: raised on the box the item was packed in.
    """

    item: str
    index: int  # type: ignore[assignment]  # the leaf index (shadows tuple.index)
    code: str
    severity: str
    unit: str | None
    accountable: str | None
    time: datetime | None
    message: str
    message_zh: str
    source: str
    via_box: str | None = None
    details: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class ItemCustody:
    """The custody of one item: its windows, gaps and anomalies, and hours held before the start."""

    item: ItemRecord
    windows: tuple[Window, ...]
    gaps: tuple[Gap, ...]
    anomalies: tuple[Anomaly, ...]
    #: Leaf indexes of every scan that counts for the item (its own and its box's while packed), in order.
    indexes: tuple[int, ...]
    #: accountable unit -> hours it held the item sealed before the cut-off (the start, or the leak).
    hours_before_start: Mapping[str, float]
    #: ``(token, start, stop)``: ``windows[start:stop]`` are the very windows of every custody with the
    #: same token (the items of one box, while packed): a summary may count them once. Not compared.
    shared: tuple[object, int, int] | None = field(default=None, compare=False)

    @property
    def current(self) -> Window | None:
        return self.windows[-1] if self.windows else None

    @property
    def clean(self) -> bool:
        return not self.gaps and not any(a.severity in (CRITICAL, WARNING) for a in self.anomalies)
