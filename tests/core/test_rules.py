"""Custody rules: the clean chains raise nothing, and states follow the holder (分级负责)."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

import pytest

from custody.events import Action
from custody.labels import ItemKind
from custody.plan import UnitKind
from custody.rules import CODES, ItemState, Outcome, Status, Tracker
from tests.core.test_rules_scene import (
    BOX,
    CARDS,
    CITY,
    CITY_BMS,
    COUNTY,
    COUNTY_BMS,
    DISC,
    DISC_BOX,
    GRADING,
    KEY,
    PAPER,
    PRINTER,
    ROOM,
    SITE,
    YW_END,
    YW_START,
    Desk,
    at,
    codes,
    tiny_items,
    tiny_plan,
)


def test_a_paper_bundle_from_the_printer_to_its_room_raises_nothing() -> None:
    desk = Desk()
    assert desk.state(PAPER).status is Status.ISSUED and desk.state(PAPER).holder == PRINTER
    outcomes = desk.deliver_box()
    outcomes.append(desk.to_room(PAPER))
    assert desk.state(PAPER).holder == ROOM and desk.state(PAPER).status is Status.DISTRIBUTED
    outcomes.append(desk.open(PAPER, YW_START - timedelta(minutes=8)))
    assert codes(outcomes) == []
    state = desk.state(PAPER)
    assert state.status is Status.OPENED and state.holder == ROOM
    assert state.people == (f"{ROOM}-S1", f"{ROOM}-S2")
    assert state.opened_at == YW_START - timedelta(minutes=8) and state.in_box is None


def test_an_answer_card_bundle_through_seal_return_and_grading_raises_nothing() -> None:
    desk = Desk()
    outcomes = desk.deliver_box()
    outcomes.append(desk.to_room(CARDS))
    outcomes.append(desk.open(CARDS, YW_START - timedelta(minutes=12)))
    after = YW_END
    outcomes += [
        desk.do(CARDS, Action.SEAL, after + timedelta(minutes=10), frm=ROOM, to=ROOM, handed=ROOM, received=ROOM,
                count=29),
        desk.do(CARDS, Action.RETURN, after + timedelta(minutes=20), frm=ROOM, to=SITE, handed=ROOM, received=SITE),
        desk.do(CARDS, Action.DEPART, after + timedelta(minutes=40), frm=SITE, to=COUNTY, handed=SITE,
                received=SITE),
    ]
    assert desk.state(CARDS).status is Status.IN_TRANSIT and desk.state(CARDS).holder == SITE
    assert desk.state(CARDS).people == (f"{SITE}-S1", f"{SITE}-S2")
    outcomes += [
        desk.do(CARDS, Action.RECEIVE, after + timedelta(minutes=90), frm=SITE, to=COUNTY, handed=SITE,
                received=COUNTY),
        desk.do(CARDS, Action.DEPART, after + timedelta(hours=3), frm=COUNTY, to=GRADING, handed=COUNTY,
                received=COUNTY),
        desk.do(CARDS, Action.RECEIVE_FOR_GRADING, after + timedelta(hours=5), frm=COUNTY, to=GRADING,
                handed=COUNTY, received=GRADING, count=29),
        desk.do(CARDS, Action.GRADE, after + timedelta(days=3), frm=GRADING, to=GRADING, handed=GRADING,
                received=GRADING),
        desk.do(CARDS, Action.ARCHIVE, after + timedelta(days=10), frm=GRADING, to=CITY, handed=GRADING,
                received=CITY),
    ]
    assert codes(outcomes) == []
    assert desk.state(CARDS).status is Status.ARCHIVED and desk.state(CARDS).holder == CITY


def test_an_answer_key_from_the_printer_to_grading_raises_nothing() -> None:
    desk = Desk()
    outcomes = desk.to_city(KEY)
    outcomes += [
        desk.do(KEY, Action.TAKE_OUT, YW_END, frm=CITY_BMS, to=CITY, handed=CITY, received=CITY),
        desk.do(KEY, Action.RECEIVE_FOR_GRADING, YW_END + timedelta(minutes=45), frm=CITY, to=GRADING,
                handed=CITY, received=GRADING),
        desk.do(KEY, Action.OPEN, YW_END + timedelta(hours=1), frm=GRADING, to=GRADING, received=GRADING),
    ]
    assert codes(outcomes) == []
    assert desk.state(KEY).holder == GRADING and desk.state(KEY).status is Status.OPENED


def test_a_listening_disc_is_opened_at_its_site() -> None:
    desk = Desk()
    start = at(22, 8, 30)
    outcomes = desk.deliver_box(DISC_BOX, start=start)
    outcomes.append(desk.do(DISC, Action.OPEN, start - timedelta(minutes=12), frm=SITE, to=SITE, received=SITE))
    assert codes(outcomes) == []
    assert desk.state(DISC).status is Status.OPENED


def test_holders_along_the_chain() -> None:
    desk = Desk()
    desk.do(BOX, Action.RECEIVE, at(12, 10), frm=PRINTER, to=CITY, handed=PRINTER, received=CITY)
    assert (desk.state(BOX).holder, desk.state(BOX).status) == (CITY, Status.HELD)
    desk.do(BOX, Action.STORE, at(12, 10, 30), frm=CITY, to=CITY_BMS, handed=CITY, received=CITY)
    assert (desk.state(BOX).holder, desk.state(BOX).status) == (CITY_BMS, Status.STORED)
    desk.do(BOX, Action.TAKE_OUT, at(16, 8), frm=CITY_BMS, to=CITY, handed=CITY, received=CITY)
    desk.do(BOX, Action.DEPART, at(16, 8, 5), frm=CITY, to=COUNTY, handed=CITY, received=CITY)
    state = desk.state(BOX)
    assert (state.holder, state.status, state.heading) == (CITY, Status.IN_TRANSIT, COUNTY)
    desk.do(BOX, Action.ARRIVE, at(16, 9, 50), frm=CITY, to=COUNTY, handed=CITY, received=COUNTY)
    outcome = desk.do(BOX, Action.RECEIVE, at(16, 10), frm=CITY, to=COUNTY, handed=CITY, received=COUNTY)
    assert codes(outcome) == []  # a receive after an arrive is the handover, not a second receive
    desk.do(BOX, Action.STORE, at(16, 10, 20), frm=COUNTY, to=COUNTY_BMS, handed=COUNTY, received=COUNTY)
    assert (desk.state(BOX).holder, desk.state(BOX).status) == (COUNTY_BMS, Status.STORED)
    assert desk.state(BOX).people == (f"{COUNTY}-S1", f"{COUNTY}-S2")


def test_a_whole_subject_on_the_tiny_exam_raises_only_the_absent_candidates() -> None:
    """Every box, bundle, disc, key and backup paper of one subject, as the simulation sends them."""
    desk = Desk()
    plan, items = tiny_plan(), tiny_items()
    subject = plan.subject("YW")
    start, end = subject.starts_at, subject.ends_at
    mine = [i for i in items.values() if i.subject == "YW"]
    outcomes: list[Outcome] = []
    for item in mine:
        if item.parent_box is None:
            outcomes += desk.to_city(item.item_id)
    for item in mine:
        if item.kind in (ItemKind.BOX, ItemKind.BACKUP_PAPER):
            county = plan.nearest(item.destination, UnitKind.COUNTY)
            assert county is not None
            outcomes += desk.to_county(item.item_id, county.code)
    for box in (i for i in mine if i.kind is ItemKind.BOX):
        site = box.destination
        county = plan.nearest(site, UnitKind.COUNTY)
        assert county is not None
        outcomes += desk.to_site(box.item_id, site, county.code, start)
        contents = sorted((i for i in mine if i.parent_box == box.item_id), key=lambda i: i.item_id)
        for n, bundle in enumerate(contents):
            room = bundle.destination
            outcomes.append(desk.to_room(bundle.item_id, room, site, start, timedelta(minutes=25, seconds=-2 * n)))
            before = timedelta(minutes=8 if bundle.kind is ItemKind.PAPER_BUNDLE else 12)
            outcomes.append(desk.open(bundle.item_id, start - before, room))
            if bundle.kind is not ItemKind.ANSWER_CARD_BUNDLE:
                continue
            cards = bundle.count - 1 if bundle.item_id == CARDS else bundle.count
            outcomes += [
                desk.do(bundle.item_id, Action.SEAL, end + timedelta(minutes=10), frm=room, to=room, handed=room,
                        received=room, count=cards),
                desk.do(bundle.item_id, Action.RETURN, end + timedelta(minutes=20), frm=room, to=site, handed=room,
                        received=site, count=cards),
                desk.do(bundle.item_id, Action.DEPART, end + timedelta(minutes=40), frm=site, to=county.code,
                        handed=site, received=site, count=cards),
                desk.do(bundle.item_id, Action.RECEIVE, end + timedelta(minutes=90), frm=site, to=county.code,
                        handed=site, received=county.code, count=cards),
                desk.do(bundle.item_id, Action.DEPART, end + timedelta(hours=3), frm=county.code, to=GRADING,
                        handed=county.code, received=county.code, count=cards),
                desk.do(bundle.item_id, Action.RECEIVE_FOR_GRADING, end + timedelta(hours=5), frm=county.code,
                        to=GRADING, handed=county.code, received=GRADING, count=cards),
                desk.do(bundle.item_id, Action.GRADE, end + timedelta(days=3), frm=GRADING, to=GRADING,
                        handed=GRADING, received=GRADING, count=cards),
            ]
    outcomes += [desk.do(KEY, Action.TAKE_OUT, end, frm=CITY_BMS, to=CITY, handed=CITY, received=CITY),
                 desk.do(KEY, Action.RECEIVE_FOR_GRADING, end + timedelta(minutes=45), frm=CITY, to=GRADING,
                         handed=CITY, received=GRADING)]
    alerts = [a for o in outcomes for a in o.alerts]
    assert [(a.code, a.severity, a.item) for a in alerts] == [("count_mismatch", "warning", CARDS)]
    assert {desk.state(i.item_id).status for i in mine if i.kind is ItemKind.ANSWER_CARD_BUNDLE} == {Status.GRADED}


def test_every_alert_has_a_known_code_severity_and_both_messages() -> None:
    desk = Desk()
    outcome = desk.do("NO-SUCH-ITEM", Action.RECEIVE, at(12, 10), frm=PRINTER, to=CITY, received=(),
                      delay=timedelta(hours=2))
    assert codes(outcome) == ["late_sync", "unknown_item"]
    for alert in outcome.alerts:
        assert alert.severity == CODES[alert.code].severity
        assert alert.message and alert.message_zh and alert.event_id == "EV-00001"
        json.dumps(dict(alert.details))  # plain JSON, no default= needed
    assert outcome.changed == {}


def test_changed_holds_every_changed_state_and_round_trips() -> None:
    desk = Desk()
    outcomes = desk.deliver_box()
    for outcome in outcomes:
        for item, state in outcome.changed.items():
            assert desk.state(item) is state or outcome is not outcomes[-1]
            text = json.dumps(state.to_json(), ensure_ascii=False, sort_keys=True)
            assert ItemState.from_json(json.loads(text)) == state


def test_a_tracker_rebuilt_from_stored_states_carries_on_the_same() -> None:
    desk = Desk()
    stored: dict[str, dict[str, object]] = {}
    for outcome in desk.deliver_box():
        stored.update({item: state.to_json() for item, state in outcome.changed.items()})
    rebuilt = Tracker(tiny_plan(), tiny_items(), states={i: ItemState.from_json(s) for i, s in stored.items()})
    assert rebuilt.packed_in(BOX) == [] and desk.tracker.packed_in(BOX) == []
    event = desk.event(PAPER, Action.DISTRIBUTE, YW_START - timedelta(minutes=25), frm=SITE, to="K001-02",
                       handed=SITE, received="K001-02")
    received = event.station_time + timedelta(seconds=5)
    assert rebuilt.record(event, received) == desk.tracker.record(event, received)


def test_a_state_update_checks_its_field_names_once_and_applies_to_any_state() -> None:
    apply = ItemState.updater({"holder": "3601", "status": Status.HELD})
    a, b = ItemState(item="A", people=("p1",)), ItemState(item="B", count=30)
    assert apply(a) == ItemState(item="A", holder="3601", status=Status.HELD, people=("p1",))
    assert apply(b) == ItemState(item="B", holder="3601", status=Status.HELD, count=30)
    assert a.holder is None  # the original is untouched
    assert a.evolve(holder="3601", status=Status.HELD) == apply(a)
    with pytest.raises(dataclasses.FrozenInstanceError):
        apply(a).holder = "3602"  # type: ignore[misc]
    with pytest.raises(TypeError, match="no field 'holdr'"):
        ItemState.updater({"holdr": "3601"})
    with pytest.raises(TypeError, match="no field 'holdr'"):
        a.evolve(holdr="3601")
