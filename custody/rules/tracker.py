"""The tracker: every item's custody state, advanced one handover event at a time."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from operator import attrgetter
from typing import Any

from custody.errors import NotFound
from custody.events import Action, Event
from custody.labels import ItemKind
from custody.plan import ExamPlan, Subject, UnitKind
from custody.rules.judge import Judgement
from custody.rules.model import Alert, BackupOrder, ItemInfo, ItemState, Outcome, RuleConfig, Status
from custody.rules.places import Geography

#: Actions on a box that move everything packed in it (transitively, for boxes in boxes).
PROPAGATING = frozenset({Action.ISSUE, Action.RECEIVE, Action.STORE, Action.TAKE_OUT, Action.DEPART, Action.ARRIVE,
                         Action.DISTRIBUTE, Action.RETURN, Action.RECEIVE_FOR_GRADING, Action.GRADE, Action.ARCHIVE,
                         Action.DESTROY, Action.MISSING, Action.FOUND})


#: What an item's judgement as a box's content depends on, besides the item's kind and destination.
_course = attrgetter("status", "holder", "heading", "sender", "last_time", "last_place", "last_action", "people")
_lockstep = attrgetter("holder", "status", "heading", "sender", "last_time")


def _same_course(a: ItemState, b: ItemState) -> bool:
    """Whether an item has moved in lockstep with its box (so the box's verdicts are its own)."""
    return _lockstep(a) == _lockstep(b)


class Tracker:
    """Custody states of an exam's items, advanced by :meth:`record` in log order.

    ``states`` are those stored after earlier batches (an item without one is
    in its initial state: issued, held by the printer, in its label's box).
    The tracker's whole memory is these states, the items' current labels
    (:meth:`issue_label`) and the backup orders, so a tracker rebuilt from the
    stored states, the labels issued so far and the orders judges the next
    event exactly as one that ran straight through. Nothing reads a clock.
    """

    def __init__(self, plan: ExamPlan, items: Mapping[str, ItemInfo], config: RuleConfig | None = None,
                 states: Mapping[str, ItemState] | None = None, backup_orders: Iterable[BackupOrder] = ()):
        self.plan = plan
        self.items = dict(items)
        self.config = config or RuleConfig()
        self.geo = Geography(plan)
        self._states: dict[str, ItemState] = dict(states or {})
        self._orders: list[BackupOrder] = list(backup_orders)
        printers = plan.of_kind(UnitKind.PRINTER)
        self._printer = printers[0].code if len(printers) == 1 else None
        self._subjects = {s.code: s for s in plan.subjects}
        self._packed: dict[str, set[str]] = {}
        #: Everything packed in a box, transitively, as :meth:`_contents` lists it: kept until a pack or an
        #: unpack changes what is in which box (a box is scanned many times on its way, its contents the same).
        self._inside: dict[str, list[str]] = {}
        kinds: dict[tuple[ItemKind, str], int] = {}
        #: Each item's class: its kind and destination, all that the verdicts on the units it is at depend on...
        self._classes = {item_id: kinds.setdefault((info.kind, info.destination), len(kinds))
                         for item_id, info in self.items.items()}
        #: ...and those verdicts by the units an event names, then by class (the plan is fixed: kept for good).
        self._places: dict[tuple[str, ...], dict[int, tuple[bool, tuple[Any, ...]]]] = {}
        for item_id in self.items:
            box = self.state(item_id).in_box
            if box is not None:
                self._packed.setdefault(box, set()).add(item_id)

    # --- reading ---------------------------------------------------------------------

    def state(self, item_id: str) -> ItemState:
        """The item's state now; raises :class:`NotFound` for an item not in the item table."""
        state = self._states.get(item_id)
        if state is not None:
            return state
        info = self.items.get(item_id)
        if info is None:
            raise NotFound(f"item {item_id} is not in the item table")
        return ItemState(item=item_id, holder=self._printer, in_box=info.parent_box, seal=info.seal,
                         count=info.count)

    def changed_states(self) -> dict[str, ItemState]:
        """The states of the items that have left their initial state (a copy)."""
        return dict(self._states)

    def packed_in(self, box: str) -> list[str]:
        """The items packed in ``box`` now (not unpacked), sorted."""
        return sorted(self._packed.get(box, ()))

    @property
    def backup_orders(self) -> tuple[BackupOrder, ...]:
        return tuple(self._orders)

    def add_backup_order(self, subject: str, units: set[str] | frozenset[str], at: datetime) -> None:
        """Activate the backup papers of ``subject`` in ``units`` (and under them) from ``at`` on."""
        if at.tzinfo is None:
            raise ValueError("a backup order's time must be timezone-aware")
        self._orders.append(BackupOrder(subject, frozenset(units), at))

    def issue_label(self, item_id: str, label: str) -> bool:
        """The institute issued ``item_id`` the label whose COSE bytes hash to ``label`` (a ``label`` leaf):
        scans from now on are judged against it, and a scan of the label it replaced is a mismatch.
        False for an item not in this tracker's item table (added since it was built)."""
        info = self.items.get(item_id)
        if info is None:
            return False
        self.items[item_id] = replace(info, label=label)
        return True

    def order_covers(self, subject: str, place: str | None, at: datetime) -> bool:
        return place is not None and any(
            o.subject == subject and o.at <= at and any(self.geo.within(place, u) for u in o.units)
            for o in self._orders)

    def subject(self, code: str) -> Subject | None:
        return self._subjects.get(code)

    # --- recording -------------------------------------------------------------------

    def record(self, event: Event, received_at: datetime) -> Outcome:
        """Judge ``event`` (received by the server at ``received_at``) and advance the states.

        The event counts whatever it breaks (the caller has logged it already):
        the alerts say what is wrong; ``changed`` holds the new state of every
        item whose state changed (the scanned item first, then what was packed in
        it). The order of alerts is deterministic.
        """
        if received_at.tzinfo is None:
            raise ValueError("received_at must be timezone-aware")
        judge = Judgement(self, event, received_at)
        judge.times()
        info = self.items.get(event.item)
        if info is None:
            judge.unknown()
            return Outcome(judge.alerts, {})
        scanned = self.state(event.item)
        subject = self.subject(info.subject)
        judge.label(info, scanned)
        judge.people()
        judge.seal(info, scanned)
        judge.opened(info, scanned)
        judge.count(info, scanned, subject)
        judge.reports(scanned)
        # A box is opened by unpacking it: an open on a box means just that.
        action = Action.UNPACK if event.action is Action.OPEN and info.kind is ItemKind.BOX else event.action
        affected = [event.item] + self._contents(event.item, action)
        changed: dict[str, ItemState] = {}
        alerts = judge.item(info, scanned, action, True, subject)
        box_codes = {a.code for a in alerts}
        if len(affected) > 1:
            alerts = [replace(a, details={**a.details, "contents": affected[1:]}) for a in alerts]
        judge.alerts.extend(alerts)
        new = self._advance(scanned, action, event, judge, scanned=True)
        if new is not scanned and new.__dict__ != scanned.__dict__:  # the fields (the dataclass's __eq__, faster)
            changed[event.item] = new
        # The contents of a box: most share their inputs (they moved together), so one content's
        # judgement and transition stand for every content with the same inputs. Only judgements
        # that raised nothing are shared; a content with an alert is judged on its own, by name.
        # A box carries up to hundreds of bundles: this loop is most of the cost of a box scan.
        # by course: the changes (an updater, or None for a backlog event) and the verdicts judged quiet
        plans: dict[tuple[Any, ...], tuple[Any, set[tuple[Any, ...]]]] = {}
        units = tuple(u for u in dict.fromkeys((event.from_unit, event.to_unit)) if u is not None)
        items, classes, states, initial = self.items, self._classes, self._states, self.state
        # by item class (kind, destination): whether it holds answer cards and the units' verdicts
        places = self._places.get(units)
        if places is None:
            places = self._places[units] = {}
        for item_id in affected[1:]:
            state = states.get(item_id) or initial(item_id)
            where = places.get(classes[item_id])
            if where is None:
                item_info = items[item_id]
                where = places[classes[item_id]] = (item_info.kind is ItemKind.ANSWER_CARD_BUNDLE,
                                                    self.geo.judge_units(units, item_info))
            course = _course(state)
            plan = plans.get(course)
            if plan is None:
                # the changes depend on fewer fields than the course (see _changes): keyed by the course,
                # contents that moved together share them
                changes = self._changes(state, action, event, judge, scanned=False)
                plan = plans[course] = (None if changes is None else ItemState.updater(changes), set())
            apply, quiet = plan
            if where not in quiet:
                item_info = items[item_id]
                alerts = judge.item(item_info, state, action, False, self.subject(item_info.subject))
                if _same_course(state, scanned):
                    alerts = [a for a in alerts if a.code not in box_codes]
                if alerts:
                    judge.alerts.extend(alerts)
                else:
                    quiet.add(where)
            if apply is not None:
                new = apply(state)
                if new.last_event != state.last_event or new.__dict__ != state.__dict__:
                    changed[item_id] = new
                    if new.in_box == state.in_box:  # still packed in its box: _store without the call (2.7 %)
                        states[item_id] = new
                    else:
                        self._store(state, new)
        if event.item in changed:
            self._store(scanned, changed[event.item])
        return Outcome(judge.alerts, changed)

    def _contents(self, item_id: str, action: Action) -> list[str]:
        if action is Action.UNPACK:
            return self.packed_in(item_id)
        if action not in PROPAGATING:
            return []
        found = self._inside.get(item_id)
        if found is None:
            found = self._inside[item_id] = self._packed_within(item_id)
        return found

    def _packed_within(self, item_id: str) -> list[str]:
        """What is packed in ``item_id``, transitively: breadth first, each box's contents sorted."""
        found: list[str] = []
        queue, seen, packed = [item_id], {item_id}, self._packed
        while queue:
            inside = packed.get(queue.pop(0))
            if not inside:  # a bundle, or an empty box
                continue
            for inner in sorted(inside):
                if inner not in seen and inner in self.items:
                    seen.add(inner)
                    found.append(inner)
                    queue.append(inner)
        return found

    def _store(self, old: ItemState, new: ItemState) -> None:
        self._states[new.item] = new
        if old.in_box != new.in_box:
            self._inside.clear()
            if old.in_box is not None:
                self._packed.get(old.in_box, set()).discard(new.item)
            if new.in_box is not None:
                self._packed.setdefault(new.in_box, set()).add(new.item)

    def _advance(self, state: ItemState, action: Action, event: Event, judge: Judgement, *,
                 scanned: bool) -> ItemState:
        """The state after ``event``: the facts of the scanned item always; custody unless a backlog."""
        changes = self._changes(state, action, event, judge, scanned=scanned)
        if scanned and judge.facts:  # custody's changes are worked out from the state before the facts
            changes = judge.facts if changes is None else {**judge.facts, **changes}
        return state if not changes else state.evolve(**changes)

    def _changes(self, state: ItemState, action: Action, event: Event, judge: Judgement, *,
                 scanned: bool) -> dict[str, Any] | None:
        """What ``event`` changes in custody (None for a backlog event, which changes none).

        For an item not scanned itself (packed in the scanned box) the changes depend only on
        its ``last_time``, ``holder``, ``people`` and ``sender``: :meth:`record` shares them.
        """
        if judge.backlog(state):
            return None
        cfg = self.config
        to, frm, holder = event.to_unit, event.from_unit, state.holder
        received = tuple([p.staff for p in event.received_by])
        handed = tuple([p.staff for p in event.handed_by])
        accountable = received or handed or state.people
        place = (frm or to or holder) if action is Action.DEPART else (to or frm or holder)
        when = event.station_time
        if when - judge.received_at > cfg.clock_ahead:
            when = judge.received_at  # a clock that runs ahead must not push the item's time ahead
        changes: dict[str, Any] = dict(
            last_time=when if state.last_time is None else max(state.last_time, when),
            last_place=place, last_action=event.action.value, last_event=event.id)
        if scanned and state.in_box is not None and action is not Action.PACK:
            changes["in_box"] = None  # scanned on its own: it is out of its box
        arrived: dict[str, Any] = dict(heading=None, sender=None, people=accountable)
        if action is Action.ISSUE:
            changes.update(holder=to or frm or holder, status=Status.ISSUED, heading=to,
                           sender=(frm or holder) if to else None, people=accountable)
        elif action is Action.RECEIVE:
            changes.update(holder=to or holder, status=Status.HELD, **arrived)
        elif action is Action.ARRIVE:  # the escorts are there; the sender still hands it over
            changes.update(holder=to or holder, status=Status.HELD, heading=None, sender=state.sender or frm,
                           people=accountable)
        elif action is Action.FOUND:
            changes.update(holder=to or frm or holder, status=Status.HELD, **arrived)
        elif action is Action.RECEIVE_FOR_GRADING:
            changes.update(holder=to or holder, status=Status.GRADING, **arrived)
        elif action is Action.STORE:
            changes.update(holder=to or holder, status=Status.STORED, **arrived)
        elif action is Action.TAKE_OUT:
            changes.update(holder=to or self.geo.parent(holder) or holder, status=Status.HELD, **arrived)
        elif action is Action.DEPART:
            changes.update(holder=frm or holder, status=Status.IN_TRANSIT, heading=to, sender=frm or holder,
                           people=handed or state.people)
        elif action is Action.DISTRIBUTE:
            changes.update(holder=to or holder, status=Status.DISTRIBUTED, heading=to, sender=frm or holder,
                           people=accountable)
        elif action is Action.RETURN:
            changes.update(holder=(to if received else frm) or holder, status=Status.RETURNED, heading=to,
                           sender=frm or holder, people=accountable)
        elif action is Action.OPEN:
            changes.update(holder=place, status=Status.OPENED, **arrived)
        elif action is Action.SEAL:
            changes.update(holder=place, status=Status.SEALED, **arrived)
        elif action in (Action.GRADE, Action.ARCHIVE, Action.DESTROY):
            status = {Action.GRADE: Status.GRADED, Action.ARCHIVE: Status.ARCHIVED,
                      Action.DESTROY: Status.DESTROYED}[action]
            changes.update(holder=to or frm or holder, status=status, **arrived)
        elif action is Action.MISSING:
            changes.update(status=Status.MISSING)
        elif action is Action.UNPACK:
            changes["in_box"] = None
            if scanned and self.items[state.item].kind is ItemKind.BOX:
                changes.update(status=Status.OPENED, holder=holder or place)
        elif action is Action.PACK:
            box = self.items.get(event.box or "")
            if box is not None and box.kind is ItemKind.BOX and box.item_id != state.item:
                changes["in_box"] = box.item_id
        return changes


def alert_codes(alerts: Iterable[Alert]) -> list[str]:
    """The codes of ``alerts``, in order (a convenience for callers and tests)."""
    return [a.code for a in alerts]
