"""Leaves: RFC 8785 canonical JSON, and refusing every other byte form of the same object."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from custody.errors import LeafError
from custody.log.jcs import canonical_json, canonical_plain, canonical_spliced, loads_leaf


def test_rfc_8785_examples(vector: Callable[[str], Any]) -> None:
    for case in vector("jcs_rfc8785.json")["cases"]:
        assert canonical_json(json.loads(case["input"])) == case["canonical"].encode("utf-8"), case["name"]


def test_a_handover_leaf_round_trips() -> None:
    leaf = {
        "type": "handover",
        "item": "ZK2017-0101-03-B",
        "item_prev": None,
        "kid": "00112233aabbccdd",
        "event": {"from": "unit/3601", "to": "room/12", "count": 30, "at": "2017-06-07T07:30:00Z"},
        "received_at": "2017-06-07T07:30:02Z",
    }
    data = canonical_json(leaf)
    assert data.startswith(b'{"event":{"at":')
    assert loads_leaf(data) == leaf


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("whitespace", b'{"type": "x"}'),
        ("unsorted-keys", b'{"type":"x","a":1}'),
        ("float-form-of-an-integer", b'{"n":1.0,"type":"x"}'),
        ("escaped-non-ascii", b'{"type":"\\u00e9"}'),
        ("duplicate-key", b'{"type":"x","type":"y"}'),
        ("not-an-object", b'["type"]'),
        ("no-type", b'{"kind":"x"}'),
        ("type-not-a-string", b'{"type":1}'),
        ("invalid-utf8", b'{"type":"\xff"}'),
        ("nan", b'{"n":NaN,"type":"x"}'),
        ("integer-beyond-2^53", b'{"n":9007199254740993,"type":"x"}'),
        ("truncated-tail", b'{"type":"x"'),
        ("trailing-newline", b'{"type":"x"}\n'),
    ],
)
def test_non_canonical_or_malformed_leaves_are_refused(name: str, data: bytes) -> None:
    with pytest.raises(LeafError):
        loads_leaf(data)


def test_values_jcs_cannot_represent_are_refused() -> None:
    for bad in ({"n": float("nan")}, {"n": 2**60}, {1: "x"}, {"s": {1, 2}}):
        with pytest.raises(LeafError):
            canonical_json(bad)


json_scalars = st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=5), st.text(max_size=10))
def test_every_leaf_round_trips_byte_for_byte(body: dict[str, Any], kind: str) -> None:
    leaf = {**body, "type": kind}
    data = canonical_json(leaf)
    assert loads_leaf(data) == leaf
    assert canonical_json(loads_leaf(data)) == data


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**54), max_value=2**54)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(st.characters(codec="utf-8")),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(st.characters(codec="utf-8"), max_size=4) | st.sampled_from(["\U0001f600", "\ue000"]),
                      inner, max_size=4),
    max_leaves=12)


@given(_json_values)
def test_the_fast_path_writes_exactly_what_the_reference_jcs_writes(value: Any) -> None:
    import rfc8785

    try:
        expected: bytes | None = rfc8785.dumps(value)
    except rfc8785.CanonicalizationError:
        expected = None
    if expected is None:
        with pytest.raises(LeafError):
            canonical_json(value)
    else:
        assert canonical_json(value) == expected


_event_text = st.text(st.characters(codec="utf-8") | st.sampled_from(["\ud800", "\x7f", "\u2028", "\x00"]), max_size=12)
_event_shaped = st.fixed_dictionaries({
    "v": st.just(1), "id": _event_text, "count": st.none() | st.integers(0, 10**6 - 1),
    "people": st.lists(st.fixed_dictionaries({"staff": _event_text, "badge": _event_text}), max_size=3),
    "seal": st.none() | st.fixed_dictionaries({"number": st.none() | _event_text, "condition": _event_text}),
    "flag": st.booleans()})


@given(_event_shaped)
def test_a_checked_event_is_written_exactly_as_the_reference_jcs_writes_it(event: dict[str, Any]) -> None:
    import rfc8785

    try:
        expected: bytes | None = rfc8785.dumps(event)
    except rfc8785.CanonicalizationError:
        expected = None
    if expected is None:  # a lone surrogate: refused, not written some other way
        with pytest.raises(LeafError):
            canonical_plain(event)
    else:
        assert canonical_plain(event) == expected


def test_keys_beyond_the_basic_plane_sort_by_utf16_code_units() -> None:
    # U+1F600 is D83D DE00 in UTF-16, before U+E000; Python's code point order says the opposite.
    assert canonical_json({"\ue000": 1, "\U0001f600": 2}) == '{"\U0001f600":2,"\ue000":1}'.encode()
    expected = b'{"a":[true,null,-5],"b":"\\u0001\\n\xe2\x80\xa8"}'
    assert canonical_json({"b": "\x01\n\u2028", "a": [True, None, -5]}) == expected


_ascii_keys = st.text(st.characters(min_codepoint=0, max_codepoint=127), max_size=8)


@given(st.dictionaries(_ascii_keys, json_values, max_size=6), st.data())
def test_an_object_spliced_from_encoded_members_is_its_jcs_form(body: dict[str, Any], data: st.DataObject) -> None:
    import rfc8785

    given_encoded = data.draw(st.sets(st.sampled_from(sorted(body)), max_size=len(body)) if body else st.just(set()))
    plain = {k: v for k, v in body.items() if k not in given_encoded}
    encoded = {k: canonical_json(body[k]) for k in given_encoded}
    assert canonical_spliced(plain, encoded) == rfc8785.dumps(body) == canonical_json(body)


def test_spliced_members_are_ordered_as_jcs_orders_them_inside() -> None:
    import rfc8785

    # keys past U+FFFF inside a member sort by UTF-16 code units (found by the generated test above)
    body = {"": {"\ue000": None, "\U00010000": None}}
    assert canonical_spliced(body, {}) == rfc8785.dumps(body)


def test_spliced_members_need_distinct_ascii_keys() -> None:
    with pytest.raises(LeafError, match="distinct ASCII"):
        canonical_spliced({"a": 1}, {"a": b"1"})
    with pytest.raises(LeafError, match="distinct ASCII"):
        canonical_spliced({"é": 1}, {})
