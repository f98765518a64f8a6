"""One test per alert code: it fires, and a near miss does not."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from custody.events import ACTION_ZH, Action, SealCondition
from custody.labels import ItemKind
from custody.plan import UnitKind, plan_items
from custody.rules import CODES, ItemInfo, Status, Tracker
from custody.sample import sample_plan
from tests.core.test_rules_scene import (
    BACKUP,
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
    OTHER_COUNTY,
    OTHER_ROOM,
    OTHER_SITE,
    PAPER,
    PAPER2,
    PRINTER,
    ROOM,
    ROOM2,
    SITE,
    YW_END,
    YW_START,
    Desk,
    at,
    codes,
    crew,
    label_hash,
    tiny_items,
)


def ready_in_room(item: str = PAPER, room: str = ROOM) -> Desk:
    """A desk where ``item`` has come through the chain and was distributed to ``room``."""
    desk = Desk()
    desk.deliver_box()
    desk.to_room(item, room)
    return desk


def test_every_code_is_tested_here() -> None:
    tested = {name.removeprefix("test_").split("__")[0] for name in globals() if name.startswith("test_")}
    assert set(CODES) <= tested


def test_unknown_item() -> None:
    desk = Desk()
    outcome = desk.do("YW-P-K999-01", Action.RECEIVE, at(12, 10), frm=PRINTER, to=CITY, handed=PRINTER,
                      received=CITY)
    assert codes(outcome) == ["unknown_item"] and outcome.alerts[0].severity == "critical"
    assert codes(desk.to_city(KEY)) == []  # a known item


def test_label_mismatch() -> None:
    desk = Desk()
    desk.do(KEY, Action.RECEIVE, at(12, 10), frm=PRINTER, to=CITY, handed=PRINTER, received=CITY)
    same = desk.do(KEY, Action.STORE, at(12, 10, 30), frm=CITY, to=CITY_BMS, handed=CITY, received=CITY)
    assert codes(same) == []
    clone = desk.do(KEY, Action.TAKE_OUT, at(12, 11), frm=CITY_BMS, to=CITY, handed=CITY, received=CITY,
                    label=label_hash(KEY, "-reprint"))
    assert codes(clone) == ["label_mismatch"]
    assert desk.state(KEY).seen_labels == (label_hash(KEY), label_hash(KEY, "-reprint"))
    # Every scan of the clone is reported, not only the first.
    again = desk.do(KEY, Action.STORE, at(12, 11, 30), frm=CITY, to=CITY_BMS, handed=CITY, received=CITY,
                    label=label_hash(KEY, "-reprint"))
    assert codes(again) == ["label_mismatch"]


def test_label_mismatch__against_the_issued_label() -> None:
    items = {k: replace(v, label=label_hash(k)) for k, v in tiny_items().items()}
    desk = Desk(items=items)
    first = desk.do(KEY, Action.RECEIVE, at(12, 10), frm=PRINTER, to=CITY, handed=PRINTER, received=CITY,
                    label=label_hash(KEY, "-forged"))
    assert codes(first) == ["label_mismatch"]


def test_seen_elsewhere() -> None:
    desk = Desk()
    desk.to_city(BACKUP)
    desk.to_county(BACKUP)  # stored in 360102-BMS at 16 June 10:20
    elsewhere = desk.do(BACKUP, Action.RECEIVE, at(16, 10, 50), frm=OTHER_COUNTY, to=OTHER_SITE,
                        handed=OTHER_COUNTY, received=OTHER_SITE)
    assert "seen_elsewhere" in codes(elsewhere) and "out_of_sequence" not in codes(elsewhere)
    assert elsewhere.alerts[codes(elsewhere).index("seen_elsewhere")].severity == "critical"


def test_seen_elsewhere__not_at_a_related_place_nor_long_after() -> None:
    desk = Desk()
    desk.to_city(BACKUP)
    desk.to_county(BACKUP)
    # The county office of the secure room it is in: the same ground (a missing take_out, not a clone).
    near = desk.do(BACKUP, Action.DISTRIBUTE, at(16, 10, 50), frm=COUNTY, to=SITE, handed=COUNTY, received=SITE)
    assert "seen_elsewhere" not in codes(near)
    far_later = Desk()
    far_later.to_city(BACKUP)
    far_later.to_county(BACKUP)
    later = far_later.do(BACKUP, Action.RECEIVE, at(16, 13), frm=OTHER_COUNTY, to=OTHER_SITE,
                         handed=OTHER_COUNTY, received=OTHER_SITE)
    assert "seen_elsewhere" not in codes(later) and "out_of_sequence" in codes(later)


def test_outside_jurisdiction() -> None:
    desk = Desk()
    desk.to_city(BOX)
    outcomes = desk.to_county(BOX, county=OTHER_COUNTY)  # a K001 (东湖区) box sent to 西湖区
    # depart to, receive at, store in 西湖区: one alert per event, naming every unit at fault
    assert codes(outcomes) == ["outside_jurisdiction"] * 3
    assert outcomes[-1].alerts[0].details["units"] == [OTHER_COUNTY, f"{OTHER_COUNTY}-BMS"]
    alert = next(a for o in outcomes for a in o.alerts)
    assert alert.severity == "critical" and alert.item == BOX
    assert alert.details["contents"] == sorted(i for i, v in tiny_items().items() if v.parent_box == BOX)
    assert "东湖" not in alert.message_zh or "西湖区" in alert.message_zh


def test_outside_jurisdiction__near_miss_its_own_county_and_the_city() -> None:
    desk = Desk()
    assert codes(desk.to_city(BOX) + desk.to_county(BOX, county=COUNTY)) == []


def test_outside_jurisdiction__a_site_handles_only_its_own() -> None:
    plan = sample_plan("city")
    county = next(c for c in plan.of_kind(UnitKind.COUNTY)
                  if len([s for s in plan.of_kind(UnitKind.SITE) if plan.is_within(s.code, c.code)]) >= 2)
    first, second = [s.code for s in plan.of_kind(UnitKind.SITE) if plan.is_within(s.code, county.code)][:2]
    items = {p.item_id: ItemInfo(p.item_id, p.kind, p.subject, p.destination, p.count, p.seal, p.parent_box)
             for p in plan_items(plan) if p.subject == "YW"}
    tracker = Tracker(plan, items)
    desk = Desk()
    box = f"YW-X-{first}"
    wrong = desk.event(box, Action.RECEIVE, at(20, 7, 15), frm=county.code, to=second, handed=county.code,
                       received=second)
    right = desk.event(box, Action.RECEIVE, at(20, 7, 16), frm=county.code, to=first, handed=county.code,
                       received=first)
    assert "outside_jurisdiction" in codes(tracker.record(wrong, wrong.station_time))
    assert "outside_jurisdiction" not in codes(tracker.record(right, right.station_time))


def test_answer_key_off_route() -> None:
    desk = Desk()
    desk.to_city(KEY)
    outcomes = desk.to_county(KEY)
    assert "answer_key_off_route" in codes(outcomes)
    assert "outside_jurisdiction" not in codes(outcomes) and "unexpected_place" not in codes(outcomes)


def test_answer_key_off_route__near_miss_city_and_grading() -> None:
    desk = Desk()
    outcomes = desk.to_city(KEY)
    outcomes.append(desk.do(KEY, Action.TAKE_OUT, YW_END, frm=CITY_BMS, to=CITY, handed=CITY, received=CITY))
    outcomes.append(desk.do(KEY, Action.DEPART, YW_END, frm=CITY, to=GRADING, handed=CITY, received=CITY))
    assert codes(outcomes) == []


def test_unexpected_place() -> None:
    desk = Desk()
    desk.deliver_box()
    wrong_room = desk.to_room(PAPER, ROOM2)  # the right site and county, the wrong room
    assert codes(wrong_room) == ["unexpected_place"]
    assert wrong_room.alerts[0].details["unit"] == ROOM2


def test_unexpected_place__near_miss_the_right_room() -> None:
    desk = Desk()
    desk.deliver_box()
    assert codes(desk.to_room(PAPER, ROOM)) == []


def test_unexpected_place__papers_never_go_to_grading_but_answer_cards_do() -> None:
    desk = Desk()
    desk.deliver_box()
    paper = desk.do(PAPER, Action.DEPART, YW_END, frm=SITE, to=GRADING, handed=SITE, received=SITE)
    cards = desk.do(CARDS, Action.DEPART, YW_END, frm=SITE, to=GRADING, handed=SITE, received=SITE)
    assert codes(paper) == ["unexpected_place"] and codes(cards) == []


def test_unexpected_place__a_unit_not_in_the_plan() -> None:
    desk = Desk()
    outcome = desk.do(BOX, Action.RECEIVE, at(12, 10), frm=PRINTER, to="3601-XX", handed=PRINTER,
                      received="3601-XX")
    assert "unexpected_place" in codes(outcome)


def test_opened_elsewhere() -> None:
    desk = ready_in_room()
    outcome = desk.open(PAPER, YW_START - timedelta(minutes=5), room=ROOM2)
    assert "opened_elsewhere" in codes(outcome)


def test_opened_elsewhere__near_miss_a_disc_anywhere_in_its_site() -> None:
    start = at(22, 8, 30)
    for place, expected in ((SITE, []), ("K001-02", []), (OTHER_SITE, ["opened_elsewhere"])):
        desk = Desk()
        desk.deliver_box(DISC_BOX, start=start)
        outcome = desk.do(DISC, Action.OPEN, start - timedelta(minutes=12), frm=place, to=place, received=place)
        assert [c for c in codes(outcome) if c.startswith("opened")] == expected, place


@pytest.mark.parametrize(("item", "minutes", "expected"), [
    (PAPER, 11, ["opened_early"]), (PAPER, 10, []), (PAPER, 9, []),
    (CARDS, 16, ["opened_early"]), (CARDS, 14, []),
])
def test_opened_early(item: str, minutes: int, expected: list[str]) -> None:
    desk = ready_in_room(item)
    outcome = desk.open(item, YW_START - timedelta(minutes=minutes))
    assert codes(outcome) == expected


def test_opened_early__an_answer_key_before_the_session_ends() -> None:
    for when, expected in ((YW_END - timedelta(minutes=1), ["opened_early"]), (YW_END, [])):
        desk = Desk()
        desk.to_city(KEY)
        desk.do(KEY, Action.TAKE_OUT, YW_START, frm=CITY_BMS, to=CITY, handed=CITY, received=CITY)
        desk.do(KEY, Action.RECEIVE_FOR_GRADING, YW_START, frm=CITY, to=GRADING, handed=CITY, received=GRADING)
        assert codes(desk.do(KEY, Action.OPEN, when, frm=GRADING, to=GRADING, received=GRADING)) == expected


@pytest.mark.parametrize(("minutes", "expected"), [(6, ["opened_late"]), (5, []), (0, [])])
def test_opened_late(minutes: int, expected: list[str]) -> None:
    desk = ready_in_room()
    outcome = desk.open(PAPER, YW_START + timedelta(minutes=minutes))
    assert codes(outcome) == expected
    assert all(a.severity == "warning" for a in outcome.alerts)


def test_already_opened() -> None:
    desk = ready_in_room()
    assert codes(desk.open(PAPER, YW_START - timedelta(minutes=5))) == []
    again = desk.open(PAPER, YW_START - timedelta(minutes=4))
    assert codes(again) == ["already_opened"]
    assert desk.state(PAPER).opened_at == YW_START - timedelta(minutes=5)


def test_opened_in_box() -> None:
    desk = Desk()
    desk.to_city(BOX)
    desk.to_county(BOX)
    t = YW_START - timedelta(hours=2)
    desk.do(BOX, Action.TAKE_OUT, t, frm=COUNTY_BMS, to=COUNTY, handed=COUNTY, received=COUNTY)
    desk.do(BOX, Action.DISTRIBUTE, t, frm=COUNTY, to=SITE, handed=COUNTY, received=SITE)
    desk.do(BOX, Action.RECEIVE, t + timedelta(minutes=30), frm=COUNTY, to=SITE, handed=COUNTY, received=SITE)
    outcome = desk.open(PAPER, YW_START - timedelta(minutes=5))  # no unpack of the box was recorded
    assert "opened_in_box" in codes(outcome)
    assert desk.state(PAPER).in_box is None and desk.tracker.packed_in(BOX) == sorted(
        i for i, v in tiny_items().items() if v.parent_box == BOX and i != PAPER)


def test_opened_in_box__near_miss_after_unpack() -> None:
    desk = ready_in_room()
    assert "opened_in_box" not in codes(desk.open(PAPER, YW_START - timedelta(minutes=5)))


def backup_in_room(desk: Desk) -> None:
    desk.to_city(BACKUP)
    desk.to_county(BACKUP)
    desk.do(BACKUP, Action.TAKE_OUT, YW_START - timedelta(hours=1), frm=COUNTY_BMS, to=COUNTY, handed=COUNTY,
            received=COUNTY)
    desk.do(BACKUP, Action.DISTRIBUTE, YW_START - timedelta(minutes=50), frm=COUNTY, to=SITE, handed=COUNTY,
            received=SITE)
    desk.do(BACKUP, Action.DISTRIBUTE, YW_START - timedelta(minutes=20), frm=SITE, to=ROOM, handed=SITE,
            received=ROOM)


def test_backup_opened_without_order() -> None:
    desk = Desk()
    backup_in_room(desk)
    outcome = desk.open(BACKUP, YW_START - timedelta(minutes=5))
    assert codes(outcome) == ["backup_opened_without_order"]


def test_backup_opened_without_order__orders_that_do_not_cover_it() -> None:
    for units, when in (({OTHER_COUNTY}, at(19, 20)), ({COUNTY}, YW_START), ({OTHER_SITE}, at(19, 20))):
        desk = Desk()
        backup_in_room(desk)
        desk.tracker.add_backup_order("YW", units, when)
        desk.tracker.add_backup_order("SX", {COUNTY}, at(19, 20))
        assert codes(desk.open(BACKUP, YW_START - timedelta(minutes=5))) == ["backup_opened_without_order"]


def test_backup_opened_without_order__near_miss_with_an_order() -> None:
    for unit in (COUNTY, SITE, ROOM, CITY):
        desk = Desk()
        backup_in_room(desk)
        desk.tracker.add_backup_order("YW", {unit}, at(19, 20))
        assert codes(desk.open(BACKUP, YW_START - timedelta(minutes=5))) == [], unit
        assert desk.state(BACKUP).status is Status.OPENED


def test_single_person() -> None:
    desk = Desk()
    outcome = desk.do(BOX, Action.RECEIVE, at(12, 10), frm=PRINTER, to=CITY, handed=PRINTER,
                      received=crew(CITY, 1))
    assert codes(outcome) == ["single_person"]
    assert outcome.alerts[0].details["received_by"] == [f"{CITY}-S1"]
    # the Chinese message names the action in Chinese, not by its stable code
    assert "的接收操作须至少2人" in outcome.alerts[0].message_zh and "receive" not in outcome.alerts[0].message_zh
    # Storing is inside one unit: the same one person on both sides is still one person.
    one = crew(CITY, 1)
    assert codes(desk.do(BOX, Action.STORE, at(12, 11), frm=CITY, to=CITY_BMS, handed=one, received=one)) == [
        "single_person"]


def test_single_person__near_miss_two_of_one_unit_on_either_side() -> None:
    desk = Desk()
    assert codes(desk.do(BOX, Action.RECEIVE, at(12, 10), frm=PRINTER, to=CITY, handed=PRINTER,
                         received=CITY)) == []
    assert codes(desk.do(BOX, Action.STORE, at(12, 11), frm=CITY, to=CITY_BMS, handed=crew(CITY, 1),
                         received=crew(CITY, 2)[1:])) == []


def test_single_person__opening_needs_two_openers() -> None:
    desk = ready_in_room()
    assert codes(desk.open(PAPER, YW_START - timedelta(minutes=5), received=crew(ROOM, 1))) == ["single_person"]
    desk = ready_in_room()
    assert codes(desk.open(PAPER, YW_START - timedelta(minutes=5), received=crew(ROOM, 2))) == []


def test_seal_damaged() -> None:
    desk = Desk()
    desk.to_city(BOX)
    *outcomes, stored = desk.to_county(BOX, condition=SealCondition.DAMAGED)
    assert codes(outcomes) == [] and codes(stored) == ["seal_damaged"]  # once, for the box, not its contents
    assert stored.alerts[0].severity == "critical" and desk.state(BOX).seal_broken
    # Reported once: the next handover that sees the same broken seal is not a new alert.
    again = desk.do(BOX, Action.TAKE_OUT, at(20, 6, 30), frm=COUNTY_BMS, to=COUNTY, handed=COUNTY,
                    received=COUNTY, condition=SealCondition.DAMAGED)
    assert codes(again) == []


def test_seal_damaged__reported_as_an_exception() -> None:
    desk = Desk()
    desk.to_city(KEY)
    outcome = desk.do(KEY, Action.SEAL_DAMAGED, at(13, 9), frm=CITY_BMS, to=CITY_BMS, reason="封条有划痕",
                      condition=None)
    assert codes(outcome) == ["seal_damaged"] and "封条有划痕" in outcome.alerts[0].message_zh


def test_seal_damaged__near_miss_intact_or_after_opening() -> None:
    desk = ready_in_room()
    assert codes(desk.open(PAPER, YW_START - timedelta(minutes=5))) == []
    # After opening, the seal is broken by design: a later scan saying so is no alert.
    assert codes(desk.do(PAPER, Action.RETURN, YW_END, frm=ROOM, to=SITE, handed=ROOM, received=SITE,
                         condition=SealCondition.MISSING)) == []


def test_seal_number_mismatch() -> None:
    desk = Desk()
    outcome = desk.do(KEY, Action.RECEIVE, at(12, 10), frm=PRINTER, to=CITY, handed=PRINTER, received=CITY,
                      seal="FT9999999")
    assert codes(outcome) == ["seal_number_mismatch"]
    assert outcome.alerts[0].details == {"action": "receive", "seen": "FT9999999",
                                         "expected": tiny_items()[KEY].seal}


def test_seal_number_mismatch__near_miss_the_label_number_or_none_read() -> None:
    desk = Desk()
    assert codes(desk.do(KEY, Action.RECEIVE, at(12, 10), frm=PRINTER, to=CITY, handed=PRINTER, received=CITY)) == []
    assert codes(desk.do(KEY, Action.STORE, at(12, 11), frm=CITY, to=CITY_BMS, handed=CITY, received=CITY,
                         seal=None)) == []


def test_count_mismatch() -> None:
    desk = Desk()
    outcome = desk.do(BACKUP, Action.RECEIVE, at(12, 10), frm=PRINTER, to=CITY, handed=PRINTER, received=CITY,
                      count=58)
    assert codes(outcome) == ["count_mismatch"] and outcome.alerts[0].severity == "critical"
    # The count seen becomes the count expected: the next scan of 58 is no new alert.
    assert codes(desk.do(BACKUP, Action.STORE, at(12, 11), frm=CITY, to=CITY_BMS, handed=CITY, received=CITY,
                         count=58)) == []


def test_count_mismatch__answer_cards_short_after_the_exam_are_a_warning() -> None:
    desk = ready_in_room(CARDS)
    desk.open(CARDS, YW_START - timedelta(minutes=12))
    sealed = desk.do(CARDS, Action.SEAL, YW_END + timedelta(minutes=10), frm=ROOM, to=ROOM, handed=ROOM,
                     received=ROOM, count=28)
    assert [(a.code, a.severity) for a in sealed.alerts] == [("count_mismatch", "warning")]
    # The room's own report of the same shortfall is not a second alert.
    report = desk.do(CARDS, Action.COUNT_MISMATCH, YW_END + timedelta(minutes=11), frm=ROOM, to=ROOM,
                     handed=ROOM, received=ROOM, count=28, reason="1 名考生缺考")
    assert codes(report) == []


def test_count_mismatch__reported_as_an_exception() -> None:
    desk = Desk()
    desk.to_city(BACKUP)
    report = desk.do(BACKUP, Action.COUNT_MISMATCH, at(13, 9), frm=CITY_BMS, to=CITY_BMS, reason="少一份")
    assert [(a.code, a.severity) for a in report.alerts] == [("count_mismatch", "critical")]


def test_count_mismatch__near_miss_the_same_count() -> None:
    desk = Desk()
    assert codes(desk.do(BACKUP, Action.RECEIVE, at(12, 10), frm=PRINTER, to=CITY, handed=PRINTER,
                         received=CITY, count=59)) == []


def test_time_reversal() -> None:
    desk = Desk()
    desk.do(KEY, Action.RECEIVE, at(12, 10), frm=PRINTER, to=CITY, handed=PRINTER, received=CITY)
    outcome = desk.do(KEY, Action.STORE, at(12, 9, 59), frm=CITY, to=CITY_BMS, handed=CITY, received=CITY)
    assert codes(outcome) == ["time_reversal"] and outcome.alerts[0].severity == "warning"
    # Not a backlog (it synced at once): it still moves custody.
    assert desk.state(KEY).status is Status.STORED and outcome.alerts[0].details["applied"] is True


def test_time_reversal__near_miss_the_same_second() -> None:
    desk = Desk()
    desk.do(KEY, Action.RECEIVE, at(12, 10), frm=PRINTER, to=CITY, handed=PRINTER, received=CITY)
    assert codes(desk.do(KEY, Action.STORE, at(12, 10), frm=CITY, to=CITY_BMS, handed=CITY, received=CITY)) == []


def test_time_reversal__a_late_backlog_does_not_move_custody_back() -> None:
    desk = Desk()
    desk.to_city(KEY)  # stored at 12 June 10:30
    desk.do(KEY, Action.TAKE_OUT, at(20, 11), frm=CITY_BMS, to=CITY, handed=CITY, received=CITY)
    desk.do(KEY, Action.RECEIVE_FOR_GRADING, at(20, 11, 45), frm=CITY, to=GRADING, handed=CITY, received=GRADING)
    # A city station offline since the morning syncs a take_out and a store from before.
    stale = desk.do(KEY, Action.STORE, at(20, 9), frm=CITY, to=CITY_BMS, handed=CITY, received=CITY,
                    delay=timedelta(hours=4))
    assert codes(stale) == ["late_sync", "time_reversal"]
    assert stale.alerts[1].details["applied"] is False
    assert (desk.state(KEY).holder, desk.state(KEY).status) == (GRADING, Status.GRADING)


def test_late_sync() -> None:
    desk = Desk()
    outcome = desk.do(KEY, Action.RECEIVE, at(12, 10), frm=PRINTER, to=CITY, handed=PRINTER, received=CITY,
                      delay=timedelta(minutes=31))
    assert codes(outcome) == ["late_sync"] and outcome.alerts[0].details["delay_seconds"] == 31 * 60
    assert desk.state(KEY).holder == CITY  # nothing newer is known: it applies


def test_late_sync__near_miss() -> None:
    desk = Desk()
    assert codes(desk.do(KEY, Action.RECEIVE, at(12, 10), frm=PRINTER, to=CITY, handed=PRINTER, received=CITY,
                         delay=timedelta(minutes=29))) == []


def test_clock_ahead() -> None:
    desk = Desk()
    outcome = desk.do(KEY, Action.RECEIVE, at(12, 10), frm=PRINTER, to=CITY, handed=PRINTER, received=CITY,
                      delay=timedelta(minutes=-6))
    assert codes(outcome) == ["clock_ahead"]
    # The item's time is the server's, not the fast clock's: the next honest scan is no reversal.
    assert desk.state(KEY).last_time == at(12, 9, 54)
    assert codes(desk.do(KEY, Action.STORE, at(12, 9, 58), frm=CITY, to=CITY_BMS, handed=CITY,
                         received=CITY)) == []


def test_clock_ahead__near_miss() -> None:
    desk = Desk()
    assert codes(desk.do(KEY, Action.RECEIVE, at(12, 10), frm=PRINTER, to=CITY, handed=PRINTER, received=CITY,
                         delay=timedelta(minutes=-4))) == []


@pytest.mark.parametrize("case", ["receive_twice", "arrive_without_depart", "depart_in_transit",
                                  "take_out_not_stored", "after_destroyed", "store_outside_secure_room",
                                  "skipped_take_out", "seal_unopened", "grade_unreceived", "found_not_missing",
                                  "unsealed_cards_returned", "scanned_inside_box"])
def test_out_of_sequence(case: str) -> None:
    desk = Desk()
    desk.to_city(KEY)  # stored in the city secure room
    k: dict[str, Any] = dict(handed=CITY, received=CITY)
    t = at(20, 12)
    if case == "receive_twice":
        desk.do(KEY, Action.TAKE_OUT, t, frm=CITY_BMS, to=CITY, **k)
        outcome = desk.do(KEY, Action.RECEIVE, t, frm=CITY_BMS, to=CITY, **k)
    elif case == "arrive_without_depart":
        outcome = desk.do(KEY, Action.ARRIVE, t, frm=CITY, to=GRADING, handed=CITY, received=GRADING)
    elif case == "depart_in_transit":
        desk.do(KEY, Action.TAKE_OUT, t, frm=CITY_BMS, to=CITY, **k)
        desk.do(KEY, Action.DEPART, t, frm=CITY, to=GRADING, **k)
        outcome = desk.do(KEY, Action.DEPART, t, frm=CITY, to=GRADING, **k)
    elif case == "take_out_not_stored":
        desk.do(KEY, Action.TAKE_OUT, t, frm=CITY_BMS, to=CITY, **k)
        outcome = desk.do(KEY, Action.TAKE_OUT, t, frm=CITY_BMS, to=CITY, **k)
    elif case == "after_destroyed":
        desk.do(KEY, Action.DESTROY, t, frm=CITY_BMS, to=CITY_BMS, **k)
        outcome = desk.do(KEY, Action.TAKE_OUT, t, frm=CITY_BMS, to=CITY, **k)
    elif case == "store_outside_secure_room":
        desk.do(KEY, Action.TAKE_OUT, t, frm=CITY_BMS, to=CITY, **k)
        outcome = desk.do(KEY, Action.STORE, t, frm=CITY, to=GRADING, handed=CITY, received=GRADING)
    elif case == "skipped_take_out":
        outcome = desk.do(KEY, Action.DEPART, t, frm=CITY, to=GRADING, **k)
    elif case == "seal_unopened":
        outcome = desk.do(KEY, Action.SEAL, t, frm=CITY_BMS, to=CITY_BMS, **k)
    elif case == "grade_unreceived":
        outcome = desk.do(KEY, Action.GRADE, t, frm=CITY_BMS, to=GRADING, **k)
    elif case == "found_not_missing":
        outcome = desk.do(KEY, Action.FOUND, t, frm=CITY_BMS, to=CITY_BMS, reason="盘点")
    elif case == "unsealed_cards_returned":
        desk = ready_in_room(CARDS)
        desk.open(CARDS, YW_START - timedelta(minutes=12))
        outcome = desk.do(CARDS, Action.RETURN, YW_END, frm=ROOM, to=SITE, handed=ROOM, received=SITE)
    else:
        desk = Desk()
        desk.to_city(BOX)
        outcome = desk.do(PAPER, Action.TAKE_OUT, at(13, 9), frm=CITY_BMS, to=CITY, **k)
        assert desk.state(PAPER).in_box is None and PAPER not in desk.tracker.packed_in(BOX)
    assert "out_of_sequence" in codes(outcome), case
    alert = next(a for a in outcome.alerts if a.code == "out_of_sequence")
    assert alert.severity == "warning" and alert.details["reasons"]
    action = Action(alert.details["action"])
    assert f"的{ACTION_ZH[action]}操作顺序异常" in alert.message_zh and action.value not in alert.message_zh


def test_out_of_sequence__near_miss_the_usual_order() -> None:
    desk = Desk()
    outcomes = desk.to_city(KEY)
    k: dict[str, Any] = dict(handed=CITY, received=CITY)
    outcomes += [desk.do(KEY, Action.TAKE_OUT, at(20, 11), frm=CITY_BMS, to=CITY, **k),
                 desk.do(KEY, Action.DEPART, at(20, 11, 5), frm=CITY, to=GRADING, **k),
                 desk.do(KEY, Action.ARRIVE, at(20, 11, 30), frm=CITY, to=GRADING, handed=CITY, received=GRADING),
                 desk.do(KEY, Action.RECEIVE_FOR_GRADING, at(20, 11, 31), frm=CITY, to=GRADING, handed=CITY,
                         received=GRADING)]
    assert codes(outcomes) == []


def test_reported_missing() -> None:
    desk = Desk()
    desk.to_city(KEY)
    outcome = desk.do(KEY, Action.MISSING, at(13, 9), frm=CITY_BMS, to=CITY_BMS, reason="盘点时未找到")
    assert [(a.code, a.severity) for a in outcome.alerts] == [("reported_missing", "critical")]
    state = desk.state(KEY)
    assert (state.status, state.holder) == (Status.MISSING, CITY_BMS)
    assert outcome.alerts[0].details["people"] == [f"{CITY}-S1", f"{CITY}-S2"]
    # Scanned again with no found recorded.
    assert "out_of_sequence" in codes(desk.do(KEY, Action.TAKE_OUT, at(13, 10), frm=CITY_BMS, to=CITY,
                                              handed=CITY, received=CITY))


def test_found() -> None:
    desk = Desk()
    desk.to_city(KEY)
    desk.do(KEY, Action.MISSING, at(13, 9), frm=CITY_BMS, to=CITY_BMS, reason="盘点时未找到")
    outcome = desk.do(KEY, Action.FOUND, at(13, 11), frm=CITY, to=CITY, reason="在档案柜找到",
                      received=CITY)
    assert [(a.code, a.severity) for a in outcome.alerts] == [("found", "info")]
    assert (desk.state(KEY).status, desk.state(KEY).holder) == (Status.HELD, CITY)


def test_found__near_miss_nothing_to_report_without_the_exception() -> None:
    desk = Desk()
    desk.to_city(KEY)
    assert codes(desk.do(KEY, Action.TAKE_OUT, at(13, 9), frm=CITY_BMS, to=CITY, handed=CITY,
                         received=CITY)) == []
    assert desk.state(KEY).status is Status.HELD


def test_other_kinds_are_judged_by_their_own_path() -> None:
    # The answer-card bundle of a K002 room may go up through 西湖区 to grading; a 东湖区 one may not.
    desk = Desk()
    mine, theirs = f"YW-C-{OTHER_ROOM}", CARDS
    at_grading = [desk.do(i, Action.RECEIVE_FOR_GRADING, YW_END, frm=OTHER_COUNTY, to=GRADING,
                          handed=OTHER_COUNTY, received=GRADING) for i in (mine, theirs)]
    assert "outside_jurisdiction" not in codes(at_grading[0])
    assert "outside_jurisdiction" in codes(at_grading[1])
    assert tiny_items()[mine].kind is ItemKind.ANSWER_CARD_BUNDLE
    assert PAPER2 in tiny_items()
