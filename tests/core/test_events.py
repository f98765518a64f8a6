"""Parsed events: the signed bytes are the RFC 8785 form of the event, whatever its text holds."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from custody.events import Action, MalformedEvent, Person, SealCondition, make_event, parse_event

BADGE = "ab" * 32


def _event(**changes: object) -> dict[str, object]:
    raw = make_event(id="ST-1-000001", item="ZK17-EN-K001-01-01", label="cd" * 32, action=Action.RECEIVE,
                     station="ST-1", station_time=datetime(2017, 6, 12, 1, 30, tzinfo=UTC), from_unit="3601",
                     to_unit="K001", handed_by=(Person("P1", BADGE), Person("P2", BADGE)),
                     received_by=(Person("P3", BADGE),), seal_number="FT17-000001",
                     seal_condition=SealCondition.INTACT, count=30)
    return {**raw, **changes}


@given(note=st.text(max_size=60), reason=st.text(min_size=1, max_size=60))
def test_the_signed_bytes_are_the_jcs_bytes(note: str, reason: str) -> None:
    raw = _event(note=note or None, reason=reason)
    assert parse_event(raw).canonical() == rfc8785.dumps(raw)


def test_a_lone_surrogate_is_a_malformed_event() -> None:
    with pytest.raises(MalformedEvent, match="surrogate"):
        parse_event(_event(note="\ud800 broken"))


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
