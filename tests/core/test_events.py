"""Parsed events: the signed bytes are the RFC 8785 form of the event, whatever its text holds."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from custody.events import (
    Action,
    Event,
    MalformedEvent,
    Person,
    SealCondition,
    make_event,
    parse_event,
    parse_submission,
)

BADGE = "ab" * 32


def _event(**changes: object) -> dict[str, object]:
    raw = make_event(id="ST-1-000001", item="ZK17-EN-K001-01-01", label="cd" * 32, action=Action.RECEIVE,
                     station="ST-1", station_time=datetime(2017, 6, 12, 1, 30, tzinfo=UTC), from_unit="3601",
                     to_unit="K001", handed_by=(Person("P1", BADGE), Person("P2", BADGE)),
                     received_by=(Person("P3", BADGE),), seal_number="FT17-000001",
                     seal_condition=SealCondition.INTACT, count=30)
    return {**raw, **changes}


#: Any text an event may hold: everything but lone surrogates and control characters (tab, line feed and
#: carriage return aside).
TEXT = st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from("\t\n\r")


@given(note=st.text(TEXT, max_size=60), reason=st.text(TEXT, min_size=1, max_size=60))
def test_the_signed_bytes_are_the_jcs_bytes(note: str, reason: str) -> None:
    raw = _event(note=note or None, reason=reason)
    assert parse_event(raw).canonical() == rfc8785.dumps(raw)


def test_a_lone_surrogate_is_a_malformed_event() -> None:
    with pytest.raises(MalformedEvent, match="surrogate"):
        parse_event(_event(note="\ud800 broken"))


@pytest.mark.parametrize("field", ["note", "reason", "from_unit", "box"])
@pytest.mark.parametrize("char", ["\x00", "\x1b", "\x7f", "\x9b"])
def test_a_control_character_in_an_events_text_is_malformed(field: str, char: str) -> None:
    with pytest.raises(MalformedEvent, match=f"{field} holds the control character U\\+{ord(char):04X}"):
        parse_event(_event(**{field: f"text{char}more"}))


def test_tabs_and_line_breaks_may_be_in_a_note() -> None:
    assert parse_event(_event(note="line one\n\tline two\r\n")).note == "line one\n\tline two\r\n"


def test_station_time_is_parsed_as_utc() -> None:
    assert parse_event(_event()).station_time == datetime(2017, 6, 12, 1, 30, tzinfo=UTC)
    for bad in ("2017-02-30T01:00:00Z", "2017-06-12T01:30:00+08:00", "2017-06-12 01:30:00Z"):
        with pytest.raises(MalformedEvent):
            parse_event(_event(station_time=bad))


@pytest.mark.parametrize("version", [1.0, True, "1", 2])
def test_the_version_is_the_whole_number_1(version: object) -> None:
    # 1.0 would be signed as "1" by RFC 8785 but read back as a float: refused, not guessed at
    with pytest.raises(MalformedEvent, match="version"):
        parse_event(_event(v=version))


@pytest.mark.parametrize(("changes", "message"), [
    ({"action": ["receive"]}, "unknown action"),
    ({"action": "Receive"}, "unknown action"),
    ({"handed_by": [{"staff": "P1", "badge": BADGE, "role": "x"}]}, "staff: id, badge"),
    ({"handed_by": [["P1", BADGE]]}, "staff: id, badge"),
    ({"handed_by": [{"staff": "P1", "badge": "AB" * 32}]}, "staff: id, badge"),
    ({"received_by": [{"staff": "P3", "badge": BADGE}, {"staff": "P3", "badge": "cd" * 32}]}, "same person twice"),
    ({"extra": 1}, r"unknown \['extra'\], missing \[\]"),
])
def test_a_malformed_field_is_named(changes: dict[str, object], message: str) -> None:
    with pytest.raises(MalformedEvent, match=message):
        parse_event(_event(**changes))


@pytest.mark.parametrize("changes", [
    {"id": "ST-1-000001\n"}, {"item": "ZK17-EN-K001-01-01\n"}, {"station": "ST-1\n"}, {"label": "cd" * 32 + "\n"},
    {"photo": "ef" * 32 + "\n"}, {"handed_by": [{"staff": "P1\n", "badge": BADGE}]},
    {"received_by": [{"staff": "P3", "badge": BADGE + "\n"}]},
])
def test_an_id_or_digest_with_a_trailing_newline_is_malformed(changes: dict[str, object]) -> None:
    # a regular expression's $ also matches before a final newline: "ST-1\n" is not the id "ST-1"
    with pytest.raises(MalformedEvent):
        parse_event(_event(**changes))


def test_people_checked_once_are_shared_and_a_near_copy_is_still_checked() -> None:
    first, second = parse_event(_event()), parse_event(_event(id="ST-1-000002"))
    assert first.handed_by[0] is second.handed_by[0] and first.handed_by == (Person("P1", BADGE), Person("P2", BADGE))

    class Sneaky(str):  # a str subclass is checked every time, never looked up
        pass

    for person in ({"staff": "P1", "badge": BADGE.upper()}, {"staff": "P1", "badge": BADGE + "\n"},
                   {"staff": "P1 ", "badge": BADGE}, {"staff": Sneaky("P1\n"), "badge": BADGE}):
        with pytest.raises(MalformedEvent, match="staff: id, badge"):
            parse_event(_event(handed_by=[person]))


@pytest.mark.parametrize(("seal", "condition"), [
    ({"number": "FT17-1", "condition": "damaged"}, SealCondition.DAMAGED),
    ({"number": None, "condition": None}, None),
    ({"number": "FT17-1", "condition": SealCondition.MISSING}, SealCondition.MISSING),
])
def test_a_seal_condition_is_read_by_its_value(seal: dict[str, object], condition: object) -> None:
    assert parse_event(_event(seal=seal)).seal_condition is condition


@pytest.mark.parametrize("seal", [{"number": "FT17-1", "condition": "broken"}, {"number": "FT17-1", "condition": 1},
                                  {"number": "FT17-1"}, ["FT17-1", "intact"]])
def test_a_malformed_seal_is_named(seal: object) -> None:
    with pytest.raises(MalformedEvent, match="seal"):
        parse_event(_event(seal=seal))


def test_a_missing_field_is_named() -> None:
    raw = _event()
    del raw["photo"]
    with pytest.raises(MalformedEvent, match=r"missing \['photo'\]"):
        parse_event(raw)


def test_a_parsed_event_is_the_event_its_fields_make() -> None:
    event = parse_event(_event())
    fields = {f.name: getattr(event, f.name) for f in dataclasses.fields(Event)}
    assert Event.of(**fields) == Event(**fields) == event
    assert event.handed_by == (Person("P1", BADGE), Person("P2", BADGE)) and event.action is Action.RECEIVE
    assert parse_event(_event(action=Action.RECEIVE)).action is Action.RECEIVE  # the member itself, as before
    with pytest.raises(TypeError, match="exactly the fields"):
        Event.of(**{k: v for k, v in fields.items() if k != "box"})


def test_a_person_made_without_init_is_the_same_frozen_value() -> None:
    person = Person.of("P1", BADGE)
    assert person == Person("P1", BADGE) and hash(person) == hash(Person("P1", BADGE))
    assert repr(person) == repr(Person("P1", BADGE)) and person.as_json() == {"staff": "P1", "badge": BADGE}
    with pytest.raises(dataclasses.FrozenInstanceError):
        person.staff = "P2"  # type: ignore[misc]


@pytest.mark.parametrize("submission", [
    {"event": {}, "kid": "00" * 8},
    {"event": {}, "kid": "00" * 8, "sig": "", "extra": 1},
    {"event": {}, "kid": "00" * 7, "sig": "A" * 88},
    {"event": {}, "kid": "AB" * 8, "sig": "A" * 88},
    ["event", "kid", "sig"],
])
def test_a_submission_of_the_wrong_shape_is_malformed(submission: object) -> None:
    with pytest.raises(MalformedEvent, match="submission|kid"):
        parse_submission(submission)
