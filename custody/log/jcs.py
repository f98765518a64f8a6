"""Leaves as RFC 8785 (JCS) canonical JSON.

A leaf is the exact JCS bytes of a JSON object with at least a string ``type``. The bytes,
not the object, are what the Merkle tree hashes, so a leaf must have exactly one byte form:
``loads_leaf`` accepts only bytes that ``canonical_json`` would have produced.

Plain values (see ``_plain``) are written by orjson, several times as fast as the standard encoder
and byte for byte what RFC 8785 writes for them (generated tests hold it to the reference
implementation); anything else goes through the ``rfc8785`` package.

Numbers: JCS serialises numbers as IEEE 754 doubles (ECMAScript form), so ``1.0`` becomes
``1`` and integers beyond ±(2**53 - 1) are refused by the ``rfc8785`` package rather than
silently rounded. Floats are allowed but discouraged in leaves: store amounts and times
as integers or strings. NaN and infinities are refused.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson
import rfc8785

from custody.errors import LeafError

_SAFE_INT = 2**53 - 1
_SORTED = orjson.OPT_SORT_KEYS


def _encode(obj: Any) -> bytes:
    """Compact UTF-8 JSON with keys in code point order; raises ``orjson.JSONEncodeError`` (a ``TypeError``)
    for what it cannot write (a lone surrogate, a non-string key, an integer beyond 64 bits)."""
    return orjson.dumps(obj, option=_SORTED)


def _plain(obj: Any) -> bool:
    """True when orjson writes ``obj`` exactly as RFC 8785 does.

    That holds for strings, booleans, null, integers within ±(2**53 - 1), and lists and
    objects of them whose keys hold no character beyond U+FFFF: Python sorts keys by code
    point (orjson too), JCS by UTF-16 code unit, and the two orders differ only for such characters.
    Both escape exactly ``"``, ``\\`` and U+0000..U+001F, with the same short forms and
    lowercase ``\\u00xx``, and write everything else as UTF-8. Floats (ECMAScript number form) go to
    the reference encoder.
    """
    kind = type(obj)
    if kind is str or kind is bool or obj is None:
        return True
    if kind is int:
        return bool(-_SAFE_INT <= obj <= _SAFE_INT)
    if kind is dict:
        return all(type(k) is str and (k.isascii() or max(k) < "\U00010000") and _plain(v) for k, v in obj.items())
    if kind is list:
        return all(_plain(v) for v in obj)
    return False


def canonical_json(obj: Any) -> bytes:
    """RFC 8785 canonical UTF-8 bytes of ``obj`` (dicts, lists, str, int, float, bool, None).

    Deterministic: equal objects give equal bytes. Raises ``LeafError`` for values JCS
    cannot represent (non-string keys, NaN, integers outside ±(2**53 - 1), other types).
    Leaves (strings, small integers) take a fast path through orjson; anything else goes
    through the ``rfc8785`` reference implementation.
    """
    if _plain(obj):
        try:
            return _encode(obj)
        except orjson.JSONEncodeError:
            pass  # a lone surrogate, or nested too deep: let the reference encoder name the problem
    try:
        return rfc8785.dumps(obj)
    except rfc8785.CanonicalizationError as exc:
        raise LeafError(f"value cannot be canonicalised as RFC 8785 JSON: {exc}") from exc


def canonical_plain(obj: Mapping[str, Any]) -> bytes:
    """:func:`canonical_json` for an object its caller has checked to be plain (see ``_plain``).

    Skips the walk that checks it; for shapes validated field by field, like a parsed
    event. Anything the plain encoder cannot write still goes the reference way.
    """
    try:
        return _encode(obj)
    except orjson.JSONEncodeError:
        return canonical_json(obj)


def canonical_spliced(members: dict[str, Any], encoded: dict[str, bytes]) -> bytes:
    """The JCS bytes of the object with the members of ``members`` and of ``encoded``.

    ``encoded`` values are given as their JCS bytes already, and are trusted to be: a signed
    event inside a handover leaf is the event's own canonical bytes, not encoded a second
    time (it was most of the cost of a leaf). ``members`` values are encoded here, as by
    :func:`canonical_json`. JCS is compositional: an object's form is its members' forms, in
    key order, so the result is what :func:`canonical_json` gives for the whole object.
    Keys must be ASCII (for which JCS order is Python's) and appear once.
    """
    if members.keys() & encoded.keys() or not all(key.isascii() for key in (*members, *encoded)):
        raise LeafError("spliced members need distinct ASCII keys")
    if _plain(members):  # one call: orjson places the encoded members (fragments) as they are
        try:
            return _encode({**members, **{key: orjson.Fragment(value) for key, value in encoded.items()}})
        except orjson.JSONEncodeError:
            pass  # let the reference encoder name the problem
    parts = []
    for key in sorted((*members, *encoded)):
        value = encoded.get(key)
        if value is None:
            value = canonical_json(members[key])
        parts.append(_encode(key) + b":" + value)
    return b"{" + b",".join(parts) + b"}"


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise LeafError(f"leaf has duplicate key {key!r}; expected each key once")
        obj[key] = value
    return obj


def _no_constant(name: str) -> Any:
    raise LeafError(f"leaf contains {name}; expected only finite JSON numbers")


def loads_leaf(data: bytes) -> dict[str, Any]:
    """Parse a leaf, checking it is canonical: an object, with a string ``type``.

    Returns the object; ``canonical_json(loads_leaf(b)) == b`` always holds. Raises
    ``LeafError`` saying what was expected and what was found.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LeafError(f"leaf is not UTF-8: byte {exc.start} is {data[exc.start : exc.start + 1].hex()}") from exc
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise LeafError(f"leaf is not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise LeafError(f"leaf is a JSON {type(obj).__name__}, expected an object")
    if not isinstance(obj.get("type"), str):
        raise LeafError(f"leaf has type {obj.get('type')!r}, expected a string 'type' member")
    canonical = canonical_json(obj)
    if canonical != data:
        at = next((i for i, (a, b) in enumerate(zip(canonical, data, strict=False)) if a != b), None)
        at = min(len(canonical), len(data)) if at is None else at
        raise LeafError(
            f"leaf is not RFC 8785 canonical JSON: differs at byte {at}, "
            f"expected {canonical[at : at + 16]!r}, found {data[at : at + 16]!r}"
        )
    return obj
