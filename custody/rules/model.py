"""The data of the custody rules: configuration, what a label says, alerts, and an item's state.

Everything here is a frozen value. :class:`ItemState` converts to and from a
plain JSON-able dict (:meth:`ItemState.to_json`, :meth:`ItemState.from_json`)
so that the storage layer can persist it per item between batches; the round
trip is exact (``from_json(s.to_json()) == s``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from custody.events import Action
from custody.labels import ItemKind

STATE_VERSION = 1


class Status(enum.StrEnum):
    """Where an item stands in its custody chain. Values are stable: they are stored."""

    ISSUED = "issued"            # printed and sealed; at the printer (or handed over by it, not yet received)
    IN_TRANSIT = "in_transit"    # departed with escorts; the sender answers until it is received
    STORED = "stored"            # in a secure room
    HELD = "held"                # held by a unit (received, taken out, arrived, found)
    DISTRIBUTED = "distributed"  # distributed to the next tier, not yet confirmed received there
    OPENED = "opened"            # opened (启封); for a box: unpacked
    SEALED = "sealed"            # sealed (封装), answer cards after the exam
    RETURNED = "returned"        # returned up the chain, on its way to (or just handed to) the unit above
    GRADING = "grading"          # received for grading
    GRADED = "graded"
    ARCHIVED = "archived"
    DESTROYED = "destroyed"
    MISSING = "missing"          # reported missing; the last holder still answers for it


#: Statuses in which the item is on its way to ``heading`` and a receive there is expected.
PENDING = frozenset({Status.ISSUED, Status.IN_TRANSIT, Status.DISTRIBUTED, Status.RETURNED})


class Sides(enum.StrEnum):
    """Which people an action needs (双人)."""

    EACH = "each"            # handed_by and received_by each name at least min_people
    RECEIVERS = "receivers"  # received_by names at least min_people (opening: those who open)
    TOGETHER = "together"    # at least min_people distinct staff in handed_by and received_by together:
    #                          an action inside one unit, whose two officers may be listed on either side


DEFAULT_TWO_PERSON: Mapping[Action, Sides] = MappingProxyType({
    Action.RECEIVE: Sides.EACH,
    Action.DISTRIBUTE: Sides.EACH,
    Action.DEPART: Sides.EACH,
    Action.ARRIVE: Sides.EACH,
    Action.RETURN: Sides.EACH,
    Action.RECEIVE_FOR_GRADING: Sides.EACH,
    Action.OPEN: Sides.RECEIVERS,
    Action.SEAL: Sides.TOGETHER,
    Action.STORE: Sides.TOGETHER,
    Action.TAKE_OUT: Sides.TOGETHER,
})

DEFAULT_OPEN_WINDOWS: Mapping[ItemKind, timedelta] = MappingProxyType({
    ItemKind.PAPER_BUNDLE: timedelta(minutes=10),
    ItemKind.ANSWER_CARD_BUNDLE: timedelta(minutes=15),
    ItemKind.LISTENING_DISC: timedelta(minutes=15),
})


@dataclass(frozen=True)
class RuleConfig:
    """The thresholds of the rules. The defaults are the practice of the 2017 plan.

    ``open_windows``: how long before its subject's session starts an item of
    each kind may be opened; a kind not listed has no such window (answer
    keys: not before the session *ends*; backup papers: governed by the
    backup order, since an exam that falls back on them may be rescheduled).
    ``two_person``: the people each action needs (:class:`Sides`); an action
    not listed needs nobody in particular.
    """

    open_windows: Mapping[ItemKind, timedelta] = field(default_factory=lambda: DEFAULT_OPEN_WINDOWS, hash=False)
    open_late_tolerance: timedelta = timedelta(minutes=5)
    late_sync: timedelta = timedelta(minutes=30)
    clock_ahead: timedelta = timedelta(minutes=5)
    #: Seen at two unrelated places this close in time, with no handover between: a cloned label.
    seen_elsewhere_window: timedelta = timedelta(minutes=60)
    min_people: int = 2
    two_person: Mapping[Action, Sides] = field(default_factory=lambda: DEFAULT_TWO_PERSON, hash=False)


@dataclass(frozen=True)
class ItemInfo:
    """What an item's label says (the item table). ``label``: the SHA-256 hex of the COSE bytes of the
    label issued last (its latest ``label`` leaf), when known; without it the first label seen is the reference."""

    item_id: str
    kind: ItemKind
    subject: str
    destination: str
    count: int
    seal: str | None = None
    parent_box: str | None = None
    label: str | None = None


@dataclass(frozen=True)
class Alert:
    """A rule broken by one event, about one item.

    ``code`` is stable snake_case (see :data:`custody.rules.codes.CODES`);
    ``severity`` is ``critical``, ``warning`` or ``info``; ``message`` is English
    and ``message_zh`` Chinese; ``details`` is a JSON-able dict.
    """

    code: str
    severity: str
    item: str
    event_id: str
    message: str
    message_zh: str
    details: Mapping[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class BackupOrder:
    """An order activating the backup papers (副题) of ``subject`` in ``units`` and everything under them."""

    subject: str
    units: frozenset[str]
    at: datetime


@dataclass(frozen=True)
class ItemState:
    """An item's custody state after the events recorded so far.

    ``holder`` is the unit accountable now and ``people`` its staff ids;
    ``heading`` and ``sender`` are set while the item is on its way
    (:data:`PENDING` statuses; ``sender`` also after an arrive, until the receive).
    ``last_time``, ``last_place``, ``last_action`` and ``last_event`` describe the last
    event that moved custody (a backlog event does not: see :mod:`custody.rules`). ``seal`` and ``count`` are what
    the next scan should show; ``seal_expected`` is False while the item is
    open; ``seal_broken`` once a damaged or missing seal was reported (until
    the item is sealed again); ``bad_seal`` the wrong seal number last reported.
    """

    item: str
    holder: str | None = None
    status: Status = Status.ISSUED
    people: tuple[str, ...] = ()
    in_box: str | None = None
    opened_at: datetime | None = None
    last_time: datetime | None = None
    last_place: str | None = None
    seen_labels: tuple[str, ...] = ()
    heading: str | None = None
    sender: str | None = None
    last_action: str | None = None
    last_event: str | None = None
    seal: str | None = None
    seal_expected: bool = True
    seal_broken: bool = False
    bad_seal: str | None = None
    count: int | None = None

    def evolve(self, **changes: Any) -> ItemState:
        """``dataclasses.replace`` without its per-call field walk: the tracker makes one per item per event."""
        return ItemState.updater(changes)(self)

    @staticmethod
    def updater(changes: Mapping[str, Any]) -> Callable[[ItemState], ItemState]:
        """A function applying ``changes`` to a state, their names checked once: a box's scan makes
        the same change to every item packed in it."""
        if not changes.keys() <= _STATE_FIELDS:
            raise TypeError(f"ItemState has no field {sorted(changes.keys() - _STATE_FIELDS)[0]!r}")
        changes = dict(changes)

        def apply(state: ItemState) -> ItemState:
            new = object.__new__(ItemState)
            values = state.__dict__.copy()  # a copy keeps the class's shared keys: no bigger than before
            values.update(changes)
            _set_dict(new, "__dict__", values)  # the frozen dataclass refuses its own __setattr__
            return new

        return apply

    def to_json(self) -> dict[str, Any]:
        """A plain dict of str, int, bool, None and lists; times as RFC 3339 UTC."""
        out: dict[str, Any] = {"v": STATE_VERSION, **self.__dict__}  # the fields (a dataclass's __dict__)
        for name, convert in _CONVERT.items():  # each field's type is fixed: convert by name, not by testing values
            value = out[name]
            if value is not None:
                out[name] = convert(value)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ItemState:
        """The inverse of :meth:`to_json`; raises ``ValueError`` for data it did not write."""
        if not isinstance(data, Mapping) or data.get("v") != STATE_VERSION:
            raise ValueError(f"not an item state of version {STATE_VERSION}: {data!r:.80}")
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names - {"v"}
        if unknown or "item" not in data:
            raise ValueError(f"item state: unknown fields {sorted(unknown)}" if unknown else "item state has no item")
        values: dict[str, Any] = {}
        try:
            for name in names & set(data):
                value = data[name]
                if name == "status":
                    value = Status(value)
                elif name in ("opened_at", "last_time") and value is not None:
                    value = datetime.fromisoformat(value)
                elif name in ("people", "seen_labels"):
                    value = tuple(value)
                values[name] = value
        except (TypeError, ValueError) as exc:
            raise ValueError(f"item state of {data.get('item')!r} is malformed: {exc}") from None
        return cls(**values)


_set_dict = object.__setattr__
_STATE_NAMES = tuple(f.name for f in fields(ItemState))
_STATE_FIELDS = frozenset(_STATE_NAMES)
#: How :meth:`ItemState.to_json` writes the fields that are not plain JSON values already.
_CONVERT: dict[str, Callable[[Any], Any]] = {
    "status": lambda status: Status(status).value,
    "opened_at": lambda when: when.astimezone(UTC).isoformat(),
    "last_time": lambda when: when.astimezone(UTC).isoformat(),
    "people": list,
    "seen_labels": list,
}


@dataclass(frozen=True)
class Outcome:
    """What one event did: the alerts it raised and the new state of every item it changed
    (for an event on a closed box: the box and the items packed in it)."""

    alerts: list[Alert]
    changed: dict[str, ItemState]

    @property
    def codes(self) -> list[str]:
        return [a.code for a in self.alerts]
