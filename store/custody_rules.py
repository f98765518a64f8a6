"""Runs the core's custody rules (``custody.rules``) over the ledger's accepted handovers.

The tracker keeps every item's custody state in memory between batches of one
process. The alerts of a batch are stored in the same transaction as its
leaves. The states are derived data: the log alone determines them. They are
stored as a *snapshot* (``item_heads.state`` plus the ``rules_state_size``
setting, the log size the snapshot is current at) at most every
``SNAPSHOT_SECONDS`` or ``SNAPSHOT_LEAVES``, not after every batch: a box scan
changes the state of every bundle packed in it, and rewriting thousands of
states per batch was most of the cost of an append.

A snapshot is taken in two steps so that the writer does not stall for it: when
one is due, the states changed so far are handed to a background thread that
turns them into JSON (the larger part of a snapshot's time: about a quarter of a
second for a city's states); a later batch writes those rows, with the states
changed since encoded on the spot, in its own transaction. A snapshot is therefore
still current at the end of the batch that writes it, as before. A tracker that
is dropped (a failed batch, a rebuild) drops its pending snapshot with it.

A tracker that may be stale (none in this process yet, or another writer
appended since) is rebuilt from the snapshot and the handover and label leaves
after it, replayed in log order exactly as they were first judged (with the
received time stored beside each leaf). So a crash between snapshots loses
nothing: the replay recomputes what the snapshot lacks.

An item's label is the one its latest ``label`` leaf names, as of each scan
(not the item table's current text): scans before a reissue are judged against
the old label, later ones against the new.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from operator import itemgetter
from typing import Any, cast

import orjson
from sqlalchemy import Table, func, select
from sqlalchemy.orm import Session

from custody.events import Event, parse_event, scan_place
from custody.labels import ItemKind
from custody.rules import ItemInfo, ItemState, Tracker
from custody.verify.shares import judged_at
from store.db import placeholder
from store.models import KEY_LEAF_TYPES, AlertRecord, IssuedLabel, Item, ItemHead, LogLeaf, Setting
from store.plans import load_plan

#: The setting that names the log size the stored states are current at.
STATE_SIZE = "rules_state_size"
#: Store the states when this long has passed since the last snapshot (a snapshot writes every
#: state changed since the last one: up to one row per item, about a second for a city's items)...
SNAPSHOT_SECONDS = 10.0
#: ...or when this many leaves were appended since (bounds the replay after a restart).
SNAPSHOT_LEAVES = 50_000


#: Turns states into snapshot rows off the writer's thread (one at a time).
_ENCODER = ThreadPoolExecutor(1, thread_name_prefix="custody-states")


def _encode_states(states: Mapping[str, ItemState]) -> dict[str, str]:
    """Each state as the JSON text ``item_heads.state`` holds (orjson: a fifth of the standard encoder's
    time, which this thread takes from the writer's under the interpreter lock)."""
    dumps, option = orjson.dumps, orjson.OPT_SORT_KEYS
    return {item: dumps(state.to_json(), option=option).decode() for item, state in states.items()}


class CachedTracker:
    """The tracker of one exam, current at log size ``size``; ``dirty`` holds states newer than the snapshot.

    ``handed`` holds states handed to the encoder for the next snapshot (``encoding``), newer than
    the stored snapshot and older than ``dirty``.
    """

    def __init__(self, tracker: Tracker, size: int, exam: str, snapshot_size: int):
        self.tracker = tracker
        self.size = size
        self.exam = exam
        self.snapshot_size = snapshot_size
        self.snapshot_at = time.monotonic()
        self.dirty: dict[str, ItemState] = {}
        self.handed: dict[str, ItemState] = {}
        self.encoding: Future[dict[str, str]] | None = None

    @property
    def unsaved(self) -> bool:
        """Whether some state is newer than the stored snapshot."""
        return bool(self.dirty or self.handed)

    def start_encoding(self) -> None:
        """Hand the states changed so far to the encoder (a later batch writes them: :func:`store_states`)."""
        self.handed, self.dirty = self.dirty, {}
        self.encoding = _ENCODER.submit(_encode_states, self.handed)

    def snapshot_rows(self) -> dict[str, str]:
        """Every state newer than the stored snapshot, as JSON by item (waits for the encoder if it runs)."""
        rows: dict[str, str] = {}
        if self.encoding is not None:
            try:
                rows = self.encoding.result()
            except Exception:  # the encoder failed (it should not): encode those states here
                rows = _encode_states(self.handed)
        rows.update(_encode_states(self.dirty))  # newer than what was handed
        return rows

    def current(self, size: int, exam: str) -> bool:
        """Whether this tracker is the one at log size ``size`` for ``exam`` (else rebuild it)."""
        return self.size == size and self.exam == exam

    def states_json(self) -> dict[str, dict[str, Any]]:
        """Every item's state that differs from its initial one, as JSON (what ``item_heads.state`` holds)."""
        return {item: state.to_json() for item, state in self.tracker.changed_states().items()}


def snapshot_size(session: Session) -> int:
    """The log size the stored states are current at (an instance from before snapshots: the largest stored)."""
    row = session.get(Setting, STATE_SIZE)
    if row is not None:
        return int(row.value)
    return int(session.scalar(select(func.max(ItemHead.state_size))) or 0)


def labels_before(session: Session, size: int) -> dict[str, str]:
    """Each item's label as of log size ``size``: the hash its latest label leaf before ``size`` names."""
    latest = (select(IssuedLabel.item, func.max(IssuedLabel.leaf_idx).label("idx"))
              .where(IssuedLabel.leaf_idx < size).group_by(IssuedLabel.item).subquery())
    return dict(session.execute(select(IssuedLabel.item, IssuedLabel.label_hash)
                                .join(latest, (IssuedLabel.item == latest.c.item)
                                      & (IssuedLabel.leaf_idx == latest.c.idx))).all())


def load_tracker(session: Session, exam: str, size: int) -> CachedTracker:
    """The tracker at log size ``size``: the stored snapshot, then the handovers and labels after it replayed."""
    plan = load_plan(session, exam)
    stored = min(snapshot_size(session), size)
    labels = labels_before(session, stored)
    items = {r.item_id: ItemInfo(item_id=r.item_id, kind=ItemKind(r.kind), subject=r.subject,
                                 destination=r.destination, count=r.count, seal=r.seal, parent_box=r.parent_box,
                                 label=labels.get(r.item_id))
             for r in session.scalars(select(Item).where(Item.exam == exam))}
    states = {item: ItemState.from_json(json.loads(cast(str, state)))
              for item, state in session.execute(select(ItemHead.item, ItemHead.state)
                                                 .where(ItemHead.state.is_not(None)))}
    tracker = Tracker(plan, items, states=states)
    for (data,) in session.execute(select(LogLeaf.data).where(LogLeaf.type == "backup_order").order_by(LogLeaf.idx)):
        order = json.loads(data)
        tracker.add_backup_order(order["subject"], set(order["units"]),
                                 datetime.fromisoformat(order["at"].replace("Z", "+00:00")))
    cached = CachedTracker(tracker, size, exam, stored)
    _replay(session, cached, stored, size, stop_on_new_item=False)
    return cached


#: Leaves a tracker can catch up on: those it replays and those that leave its memory as it was
#: (a backup order changes more: the tracker learns the orders when it is built).
_CATCHABLE = ("handover", "label", "refusal", "scan_refusal", *KEY_LEAF_TYPES)


def catch_up(session: Session, cached: CachedTracker, exam: str, size: int, *, past_snapshots: bool = False) -> bool:
    """Bring a tracker that fell behind (another process appended) to ``size`` by replaying what it missed.

    Cheaper than :func:`load_tracker` when the tracker is newer than the stored snapshot: with
    several writer processes each replays only the others' handovers, not everything since the
    snapshot. False when it cannot (the tracker must then be rebuilt): another exam, a snapshot
    newer than the tracker (unless ``past_snapshots``: the replay from the tracker's own size is
    exact whatever was stored since, and a reader behind a writer's snapshots need not rebuild),
    a leaf in between that changes more than states, or the label of an item added to the plan
    since the tracker was built.
    """
    if cached.exam != exam or cached.size > size or (not past_snapshots and snapshot_size(session) > cached.size):
        return False
    others = session.scalar(select(LogLeaf.idx).where(LogLeaf.idx >= cached.size, LogLeaf.idx < size,
                                                      LogLeaf.type.not_in(_CATCHABLE)).limit(1))
    if others is not None or not _replay(session, cached, cached.size, size, stop_on_new_item=True):
        return False
    cached.size = size
    return True


def follow(session: Session, cached: CachedTracker | None, exam: str, size: int) -> CachedTracker:
    """The tracker at log size ``size`` for a reader of a log another process writes: ``cached`` moved
    forward over what was appended since (up to :data:`SNAPSHOT_LEAVES` leaves), else built anew."""
    if cached is not None and (cached.current(size, exam) or (
            0 <= size - cached.size <= SNAPSHOT_LEAVES and catch_up(session, cached, exam, size, past_snapshots=True))):
        return cached
    return load_tracker(session, exam, size)


def _replay(session: Session, cached: CachedTracker, start: int, end: int, *, stop_on_new_item: bool) -> bool:
    """Judge the handover leaves in ``[start, end)`` again, as they were first judged (states only), with
    the labels issued in that range taking effect where they are in the log. False if it stopped at
    the label of an item the tracker does not know (with ``stop_on_new_item``)."""
    tracker = cached.tracker
    # a label leaf's item and hash from the issued-labels index (parsing a city's labels took seconds)
    issued = {idx: (item, label) for idx, item, label in session.execute(
        select(IssuedLabel.leaf_idx, IssuedLabel.item, IssuedLabel.label_hash)
        .where(IssuedLabel.leaf_idx >= start, IssuedLabel.leaf_idx < end))}
    tail = (select(LogLeaf.idx, LogLeaf.type, LogLeaf.data, LogLeaf.received_at)
            .where(LogLeaf.type.in_(("handover", "label")), LogLeaf.idx >= start, LogLeaf.idx < end)
            .order_by(LogLeaf.idx).execution_options(yield_per=2000))
    for idx, kind, data, received_at in session.execute(tail):
        if kind == "label":
            item, label = issued.get(idx) or itemgetter("item", "label")(json.loads(data))
            if not tracker.issue_label(item, label) and stop_on_new_item:
                return False
            continue
        leaf = json.loads(data)
        outcome = tracker.record(parse_event(leaf["event"]), judged_at(received_at, leaf))
        cached.dirty.update(outcome.changed)
    return True


def store_states(session: Session, cached: CachedTracker) -> None:
    """Write the states changed since the last snapshot, and the size they are current at.

    One upsert per state in the driver's own SQL (PostgreSQL: one statement over arrays): a
    snapshot of a city's states holds up the writer while it runs. The rows handed to the
    encoder earlier are written here too (waiting for it if it has not finished).
    """
    rows = cached.snapshot_rows()
    connection = session.connection()
    if rows and connection.dialect.name == "postgresql":  # one statement, the rows as two arrays
        connection.exec_driver_sql(
            f"INSERT INTO {ItemHead.__tablename__} (item, leaf_hash, idx, state, state_size) "
            "SELECT v.item, NULL, NULL, v.state, %s FROM unnest(%s::text[], %s::text[]) AS v(item, state) "
            "ON CONFLICT (item) DO UPDATE SET state = excluded.state, state_size = excluded.state_size",
            (cached.size, list(rows.keys()), list(rows.values())))
    elif rows:
        mark = placeholder(connection)
        connection.exec_driver_sql(
            f"INSERT INTO {ItemHead.__tablename__} (item, leaf_hash, idx, state, state_size) "
            f"VALUES ({mark}, NULL, NULL, {mark}, {mark}) "
            "ON CONFLICT (item) DO UPDATE SET state = excluded.state, state_size = excluded.state_size",
            [(item, state, cached.size) for item, state in rows.items()])
    row = session.get(Setting, STATE_SIZE)
    if row is None:
        session.add(Setting(name=STATE_SIZE, value=str(cached.size)))
    else:
        row.value = str(cached.size)
    session.flush()
    cached.dirty, cached.handed, cached.encoding = {}, {}, None
    cached.snapshot_size = cached.size
    cached.snapshot_at = time.monotonic()


def judge(session: Session, exam: str, first: int, end: int, accepted: list[tuple[int, Event, datetime]],
          cached: CachedTracker | None, *, labels: Sequence[tuple[int, str, str]] = (),
          snapshot: bool | None = None) -> CachedTracker | None:
    """Judge ``accepted`` (leaf index, event, received at), store alerts; return the tracker.

    ``first`` and ``end`` bound the batch's leaves; ``labels`` are its label leaves (leaf index,
    item, label hash), which take effect in log order. A batch without handovers only moves a
    current tracker forward; it builds none. The states are stored when a snapshot is due
    (``snapshot=None``: handed to the encoder when due, written by the first batch after it
    finished), always (``True``) or not (``False``).
    """
    if not accepted:
        # a label of an item added since the tracker was built: the next batch builds one that knows it
        if cached is not None and cached.size == first and all(cached.tracker.issue_label(item, label)
                                                               for _, item, label in labels):
            cached.size = end
            return cached
        return None
    new_item = cached is not None and any(item not in cached.tracker.items for _, item, _ in labels)
    if cached is None or new_item or not cached.current(first, exam):
        if cached is None or new_item or not catch_up(session, cached, exam, first):
            cached = load_tracker(session, exam, first)
    tracker = cached.tracker
    pending = sorted(labels, reverse=True)
    alerts: list[dict[str, Any]] = []
    for index, event, received_at in accepted:
        while pending and pending[-1][0] < index:
            _, item, label = pending.pop()
            tracker.issue_label(item, label)
        outcome = tracker.record(event, received_at)
        cached.dirty.update(outcome.changed)
        if outcome.alerts:  # the unit whose finding they are, whose officers see them: where the scan was made
            place = scan_place(event.action, event.from_unit, event.to_unit, bool(event.received_by))
        for alert in outcome.alerts:
            alerts.append({"leaf_idx": index, "item": alert.item, "unit": place,
                           "code": alert.code, "severity": alert.severity, "message": alert.message,
                           "message_zh": alert.message_zh, "details": json.dumps(alert.details, ensure_ascii=False,
                                                                                  default=str),
                           "created_at": received_at})
    for _, item, label in reversed(pending):
        tracker.issue_label(item, label)
    if alerts:
        session.execute(cast(Table, AlertRecord.__table__).insert(), alerts)
    cached.size = end
    if snapshot or (snapshot is None and cached.encoding is not None and cached.encoding.done()):
        store_states(session, cached)
    elif snapshot is None and cached.encoding is None and (
            end - cached.snapshot_size >= SNAPSHOT_LEAVES or time.monotonic() - cached.snapshot_at >= SNAPSHOT_SECONDS):
        cached.start_encoding()
    return cached


def current_states(session: Session, exam: str, size: int) -> dict[str, dict[str, Any]]:
    """Every changed item's custody state at log size ``size`` (snapshot plus replay), as JSON."""
    return load_tracker(session, exam, size).states_json()
