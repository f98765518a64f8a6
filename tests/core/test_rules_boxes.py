"""Boxes: a scan of a closed box vouches for, and moves, what is packed in it."""

from __future__ import annotations

from datetime import datetime, timedelta

from custody.events import Action
from custody.rules import Status
from tests.core.test_rules_scene import (
    BOX,
    CARDS,
    CITY,
    CITY_BMS,
    COUNTY,
    DISC_BOX,
    OTHER_COUNTY,
    PAPER,
    PAPER2,
    PRINTER,
    ROOM,
    SITE,
    YW_START,
    Desk,
    at,
    codes,
    crew,
    tiny_items,
)

CONTENTS = sorted(i for i, v in tiny_items().items() if v.parent_box == BOX)


def test_items_start_in_their_labels_box() -> None:
    desk = Desk()
    assert desk.tracker.packed_in(BOX) == CONTENTS and len(CONTENTS) == 4
    assert desk.state(PAPER).in_box == BOX
    assert "YY-D-K001" in desk.tracker.packed_in(DISC_BOX)


def test_receiving_a_box_moves_everything_in_it() -> None:
    desk = Desk()
    outcome = desk.do(BOX, Action.RECEIVE, at(12, 10), frm=PRINTER, to=CITY, handed=PRINTER, received=CITY)
    assert list(outcome.changed) == [BOX, *CONTENTS]
    for item in CONTENTS:
        state = desk.state(item)
        assert (state.holder, state.status, state.in_box) == (CITY, Status.HELD, BOX)
        assert state.people == (f"{CITY}-S1", f"{CITY}-S2") and state.last_event == "EV-00001"
    # The box's label was scanned, not theirs.
    assert desk.state(BOX).seen_labels and not desk.state(PAPER).seen_labels


def test_after_unpack_a_box_scan_no_longer_moves_its_contents() -> None:
    desk = Desk()
    desk.deliver_box()
    assert desk.tracker.packed_in(BOX) == []
    assert desk.state(BOX).status is Status.OPENED and desk.state(PAPER).holder == SITE
    outcome = desk.do(BOX, Action.RETURN, YW_START, frm=SITE, to=COUNTY, handed=SITE, received=COUNTY)
    assert list(outcome.changed) == [BOX]
    assert desk.state(BOX).holder == COUNTY and desk.state(PAPER).holder == SITE


def test_unpacking_one_item_leaves_the_rest_in_the_box() -> None:
    desk = Desk()
    desk.to_city(BOX)
    outcome = desk.do(PAPER, Action.UNPACK, at(13, 9), frm=CITY_BMS, to=CITY_BMS, handed=CITY, received=CITY)
    assert codes(outcome) == [] and list(outcome.changed) == [PAPER]
    assert desk.tracker.packed_in(BOX) == [i for i in CONTENTS if i != PAPER]
    desk.to_county(BOX)
    assert desk.state(PAPER).holder == CITY_BMS and desk.state(PAPER2).holder == f"{COUNTY}-BMS"


def test_packing_an_item_makes_it_move_with_the_box() -> None:
    desk = Desk()
    desk.to_city(BOX)
    desk.do(PAPER, Action.UNPACK, at(13, 9), frm=CITY_BMS, to=CITY_BMS, handed=CITY, received=CITY)
    outcome = desk.do(PAPER, Action.PACK, at(13, 9, 30), frm=CITY_BMS, to=CITY_BMS, handed=CITY, received=CITY,
                      box=BOX)
    assert codes(outcome) == [] and desk.state(PAPER).in_box == BOX
    desk.to_county(BOX)
    assert desk.state(PAPER).holder == f"{COUNTY}-BMS"


def test_packing_into_what_is_not_a_box_is_out_of_sequence() -> None:
    desk = Desk()
    desk.to_city(BOX)
    desk.do(PAPER, Action.UNPACK, at(13, 9), frm=CITY_BMS, to=CITY_BMS, handed=CITY, received=CITY)
    outcome = desk.do(PAPER, Action.PACK, at(13, 9, 30), frm=CITY_BMS, to=CITY_BMS, box=CARDS)
    assert codes(outcome) == ["out_of_sequence"] and desk.state(PAPER).in_box is None


def test_a_boxs_alerts_are_not_repeated_for_what_moved_with_it() -> None:
    desk = Desk()
    desk.to_city(BOX)
    outcome = desk.do(BOX, Action.TAKE_OUT, at(16, 8), frm=CITY_BMS, to=OTHER_COUNTY,
                      handed=crew(CITY, 1), received=crew(CITY, 1), count=3, seal="FT0")
    # Event-level (people, seal, count) and the box's place verdict: once each, all on the box.
    assert codes(outcome) == ["single_person", "seal_number_mismatch", "count_mismatch", "outside_jurisdiction"]
    assert {a.item for a in outcome.alerts} == {BOX}
    assert outcome.alerts[-1].details["contents"] == CONTENTS


def test_an_item_that_left_its_box_is_judged_on_its_own() -> None:
    desk = Desk()
    desk.to_city(BOX)
    desk.do(PAPER, Action.UNPACK, at(13, 9), frm=CITY_BMS, to=CITY_BMS, handed=CITY, received=CITY)
    desk.do(PAPER, Action.PACK, at(13, 9, 1), frm=CITY_BMS, to=CITY_BMS, handed=CITY, received=CITY, box=BOX)
    # The paper's own history differs from the box's now (it was handled at 9:01): its verdicts are its own.
    outcome = desk.do(BOX, Action.TAKE_OUT, at(16, 8), frm=CITY_BMS, to=OTHER_COUNTY, handed=CITY, received=CITY)
    assert [(a.code, a.item) for a in outcome.alerts] == [("outside_jurisdiction", BOX),
                                                         ("outside_jurisdiction", PAPER)]


def test_a_box_reported_missing_takes_its_contents_with_it() -> None:
    desk = Desk()
    desk.to_city(BOX)
    outcome = desk.do(BOX, Action.MISSING, at(13, 9), frm=CITY_BMS, to=CITY_BMS, reason="盘点时未找到")
    assert codes(outcome) == ["reported_missing"]
    assert {desk.state(i).status for i in CONTENTS} == {Status.MISSING}
    found = desk.do(BOX, Action.FOUND, at(13, 10), frm=CITY, to=CITY_BMS, reason="找到")
    assert codes(found) == ["found"] and {desk.state(i).status for i in CONTENTS} == {Status.HELD}


def test_opening_a_box_is_unpacking_it() -> None:
    desk = Desk()
    desk.to_city(BOX)
    desk.to_county(BOX)
    outcome = desk.do(BOX, Action.OPEN, at(20, 7), frm=f"{COUNTY}-BMS", to=f"{COUNTY}-BMS", received=COUNTY)
    assert codes(outcome) == [] and desk.tracker.packed_in(BOX) == []
    assert desk.state(BOX).status is Status.OPENED and desk.state(PAPER).status is Status.STORED
    assert desk.state(BOX).opened_at == at(20, 7) and desk.state(PAPER).opened_at is None


def test_unpacking_a_box_twice_is_out_of_sequence() -> None:
    desk = Desk()
    desk.deliver_box()
    again = desk.do(BOX, Action.UNPACK, YW_START - timedelta(minutes=30), frm=SITE, to=SITE)
    assert codes(again) == ["out_of_sequence"]


def test_a_contents_place_verdicts_are_those_of_the_units_each_scan_names() -> None:
    # The verdicts on units are kept by units and item class across events. Two papers for two rooms,
    # handled together apart from their box, share one judgement where the units suit both; where
    # they suit only one, each is judged on its own (a verdict kept from the earlier scan would let
    # the second share the first's silence).
    desk = Desk()
    desk.to_city(BOX)
    desk.to_county(BOX)
    bms = f"{COUNTY}-BMS"

    def handle_papers(when: datetime, place: str) -> None:
        for action in (Action.UNPACK, Action.PACK):
            for paper in (PAPER, PAPER2):
                desk.do(paper, action, when, frm=place, to=place, handed=COUNTY, received=COUNTY,
                        box=BOX if action is Action.PACK else None)
            when += timedelta(minutes=1)

    start = YW_START - timedelta(hours=3)
    handle_papers(start, bms)
    taken = desk.do(BOX, Action.TAKE_OUT, start + timedelta(minutes=10), frm=bms, to=COUNTY, handed=COUNTY,
                    received=COUNTY)
    assert codes(taken) == []
    handle_papers(start + timedelta(minutes=20), COUNTY)
    sent = desk.do(BOX, Action.DISTRIBUTE, start + timedelta(minutes=30), frm=COUNTY, to=ROOM, handed=COUNTY,
                   received=ROOM)
    assert ROOM == desk.tracker.items[PAPER].destination != desk.tracker.items[PAPER2].destination
    assert ("unexpected_place", PAPER2) in [(a.code, a.item) for a in sent.alerts]
    assert PAPER not in {a.item for a in sent.alerts}
