"""Leaves as RFC 8785 (JCS) canonical JSON.

A leaf is the exact JCS bytes of a JSON object with at least a string ``type``. The bytes,
not the object, are what the Merkle tree hashes, so a leaf must have exactly one byte form:
``loads_leaf`` accepts only bytes that ``canonical_json`` would have produced.

Numbers: JCS serialises numbers as IEEE 754 doubles (ECMAScript form), so ``1.0`` becomes
``1`` and integers beyond ±(2**53 - 1) are refused by the ``rfc8785`` package rather than
silently rounded. Floats are allowed but discouraged in leaves: store amounts and times
as integers or strings. NaN and infinities are refused.
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

from custody.errors import LeafError


def canonical_json(obj: Any) -> bytes:
    """RFC 8785 canonical UTF-8 bytes of ``obj`` (dicts, lists, str, int, float, bool, None).

    Deterministic: equal objects give equal bytes. Raises ``LeafError`` for values JCS
    cannot represent (non-string keys, NaN, integers outside ±(2**53 - 1), other types).
    """
    try:
        return rfc8785.dumps(obj)
    except rfc8785.CanonicalizationError as exc:
        raise LeafError(f"value cannot be canonicalised as RFC 8785 JSON: {exc}") from exc


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
