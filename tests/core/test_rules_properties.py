"""Properties of the custody rules over random event sequences (Hypothesis).

Random sequences never crash; every alert is well formed; states round-trip
through JSON; and a tracker rebuilt mid-sequence from the stored states (as the
storage layer does between batches) judges the rest exactly as one that ran
straight through.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from custody.events import Action, Event, SealCondition
from custody.rules import CODES, Alert, BackupOrder, ItemState, Tracker
from tests.core.test_rules_scene import (
    BACKUP,
    BOX,
    CARDS,
    DISC,
    DISC_BOX,
    KEY,
    PAPER,
    PAPER2,
    Desk,
    at,
    crew,
    label_hash,
    tiny_items,
    tiny_plan,
)

ITEMS = [BOX, PAPER, CARDS, PAPER2, KEY, BACKUP, DISC, DISC_BOX, "YW-X-K002", "YW-P-K002-01", "ZZ-P-K009-01"]
UNITS = [u.code for u in tiny_plan().units] + ["XX-1"]
START = at(12, 8)


@dataclass(frozen=True)
class Step:
    item: str
    action: Action
    advance: timedelta
    delay: timedelta
    frm: str | None
    to: str | None
    handed: tuple[str, int]
    received: tuple[str, int]
    seal: str | None | bool
    condition: SealCondition | None
    count: int | None
    clone: bool
    box: str
    order: tuple[str, frozenset[str]] | None


steps = st.builds(
    Step,
    item=st.sampled_from(ITEMS),
    action=st.sampled_from(list(Action)),
    advance=st.timedeltas(min_value=timedelta(hours=-2), max_value=timedelta(days=2)),
    delay=st.timedeltas(min_value=timedelta(minutes=-15), max_value=timedelta(hours=8)),
    frm=st.none() | st.sampled_from(UNITS),
    to=st.none() | st.sampled_from(UNITS),
    handed=st.tuples(st.sampled_from(UNITS), st.integers(0, 3)),
    received=st.tuples(st.sampled_from(UNITS), st.integers(0, 3)),
    seal=st.sampled_from([True, None, "FT0"]),
    condition=st.none() | st.sampled_from(list(SealCondition)),
    count=st.none() | st.integers(0, 60),
    clone=st.booleans(),
    box=st.sampled_from([BOX, DISC_BOX, PAPER, "NOPE"]),
    order=st.none() | st.tuples(st.sampled_from(["YW", "YY", "SX"]),
                                st.frozensets(st.sampled_from(UNITS), min_size=1, max_size=2)),
)


def build(steps_: list[Step]) -> list[tuple[Event, datetime, BackupOrder | None]]:
    """The events of ``steps_`` (with the server time they arrive, and any backup order issued before)."""
    desk, clock, out = Desk(), START, []
    for s in steps_:
        clock = clock + s.advance
        event = desk.event(s.item, s.action, clock, frm=s.frm, to=s.to, handed=crew(*s.handed),
                           received=crew(*s.received), seal=s.seal, condition=s.condition, count=s.count,
                           label=label_hash(s.item, "-clone") if s.clone else None,
                           box=s.box if s.action is Action.PACK else None)
        order = BackupOrder(s.order[0], s.order[1], clock - timedelta(hours=1)) if s.order else None
        out.append((event, event.station_time + s.delay, order))
    return out


def run(tracker: Tracker, events: list[tuple[Event, datetime, BackupOrder | None]],
        stored: dict[str, object] | None = None) -> list[Alert]:
    alerts: list[Alert] = []
    for event, received_at, order in events:
        if order is not None:
            tracker.add_backup_order(order.subject, order.units, order.at)
        outcome = tracker.record(event, received_at)
        alerts += outcome.alerts
        if stored is not None:
            stored.update({i: json.dumps(s.to_json(), sort_keys=True) for i, s in outcome.changed.items()})
    return alerts


@settings(max_examples=300, deadline=None)
@given(st.lists(steps, max_size=40))
def test_random_sequences_never_crash_and_alerts_are_well_formed(steps_: list[Step]) -> None:
    tracker = Tracker(tiny_plan(), tiny_items())
    for event, received_at, order in build(steps_):
        if order is not None:
            tracker.add_backup_order(order.subject, order.units, order.at)
        outcome = tracker.record(event, received_at)
        for alert in outcome.alerts:
            assert alert.code in CODES and alert.severity in ("critical", "warning", "info")
            assert alert.event_id == event.id and alert.message and alert.message_zh
            json.dumps(dict(alert.details), ensure_ascii=False)
        for item, state in outcome.changed.items():
            assert tracker.state(item) == state
            again = ItemState.from_json(json.loads(json.dumps(state.to_json())))
            assert again == state and again.to_json() == state.to_json()
        if event.item not in tiny_items():
            assert [a.code for a in outcome.alerts if a.code != "late_sync" and a.code != "clock_ahead"] == [
                "unknown_item"]


@settings(max_examples=300, deadline=None)
@given(st.lists(steps, min_size=1, max_size=40), st.data())
def test_a_tracker_rebuilt_from_stored_states_mid_sequence_judges_the_same(steps_: list[Step],
                                                                           data: st.DataObject) -> None:
    events = build(steps_)
    split = data.draw(st.integers(0, len(events)), label="split")
    straight = Tracker(tiny_plan(), tiny_items())
    expected = run(straight, events)

    first = Tracker(tiny_plan(), tiny_items())
    stored: dict[str, object] = {}
    head = run(first, events[:split], stored)
    states = {i: ItemState.from_json(json.loads(str(text))) for i, text in stored.items()}
    rebuilt = Tracker(tiny_plan(), tiny_items(), states=states, backup_orders=first.backup_orders)
    tail = run(rebuilt, events[split:])
    assert head + tail == expected
    for item in tiny_items():
        assert rebuilt.state(item) == straight.state(item)
        assert rebuilt.packed_in(item) == straight.packed_in(item)


@settings(max_examples=100, deadline=None)
@given(st.lists(steps, max_size=30))
def test_the_same_log_gives_the_same_judgement(steps_: list[Step]) -> None:
    events = build(steps_)
    assert run(Tracker(tiny_plan(), tiny_items()), events) == run(Tracker(tiny_plan(), tiny_items()), events)
