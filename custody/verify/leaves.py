"""Checks of one leaf on its own: canonical form, station signatures, labels.

These are the expensive checks (Ed25519), independent from leaf to leaf, so
the driver runs :func:`check_leaves` over chunks in a pool of processes.
Everything is a pure function of the leaf bytes and the key ring.

Fast path: a leaf is canonical if ``json.dumps(sort_keys, compact)`` of its
parse gives back its exact bytes and it holds no float, no integer beyond
±(2**53-1) and no character outside the BMP (the three places where that output
may differ from RFC 8785); any other leaf goes through the exact
``custody.log.jcs.loads_leaf``. A handover's signed message is the ``event``
member's bytes inside the canonical leaf (JCS serialises a member exactly as it
would the value alone), so nothing is re-serialised for the signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from custody.errors import BadSignature, CustodyError, KeyNotValid, KeyRevoked, LabelError, UnknownKey
from custody.keyring import KeyRing, Role
from custody.log.jcs import loads_leaf
from custody.verify.findings import Finding

MAX_SAFE_INT = 2**53 - 1
_DECODER = json.JSONDecoder()
_EVENT_PREFIX = '{"event":'
_NON_BMP = re.compile(rb"[\xf0-\xff]")


class _NotFast(Exception):
    pass


def _no_float(text: str) -> Any:
    raise _NotFast


def _checked_int(text: str) -> int:
    value = int(text)
    if not -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
        raise _NotFast
    return value


def parse_canonical_leaf(data: bytes) -> dict[str, Any]:
    """The leaf's object, if ``data`` is exactly its RFC 8785 form; raises ``LeafError`` otherwise."""
    try:
        if _NON_BMP.search(data):  # a 4-byte UTF-8 sequence: a character outside the BMP
            raise _NotFast
        text = data.decode("utf-8")
        obj = json.loads(text, parse_float=_no_float, parse_int=_checked_int)
        if isinstance(obj, dict) and isinstance(obj.get("type"), str):
            again = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
            if again == text:
                return obj
    except (_NotFast, UnicodeDecodeError, ValueError):
        pass
    return loads_leaf(data)  # exact, and raises naming the first differing byte


def parse_utc(text: Any) -> datetime | None:
    """``2017-06-12T02:00:00Z`` as an aware datetime; None for anything else."""
    if not isinstance(text, str) or len(text) != 20 or text[4] != "-" or text[7] != "-" or text[10] != "T" \
            or text[13] != ":" or text[16] != ":" or text[19] != "Z":
        return None
    parts = (text[0:4], text[5:7], text[8:10], text[11:13], text[14:16], text[17:19])
    if not all(p.isascii() and p.isdigit() for p in parts):
        return None
    year, month, day, hour, minute, second = (int(p) for p in parts)
    try:  # strptime is ten times slower, and this runs once per leaf
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None


def event_bytes(data: bytes) -> bytes | None:
    """The exact bytes of a canonical handover leaf's ``event`` member (what the station signed)."""
    text = data.decode("utf-8")
    if not text.startswith(_EVENT_PREFIX):
        return None
    try:
        _, end = _DECODER.raw_decode(text, len(_EVENT_PREFIX))
    except ValueError:
        return None
    return text[len(_EVENT_PREFIX):end].encode("utf-8")


def _finding(code: str, index: int, item: Any, message: str, message_zh: str, **kw: Any) -> Finding:
    return Finding(code, message, message_zh, index=index, item=item if isinstance(item, str) else None, **kw)


def check_handover(index: int, leaf: dict[str, Any], data: bytes, keys: KeyRing) -> list[Finding]:
    """The station signature of a handover leaf, with the key valid at the event's station time."""
    event, item = leaf.get("event"), leaf.get("item")
    if not isinstance(event, dict):
        return [_finding("leaf_malformed", index, item, "handover leaf has no event object", "交接记录缺少事件")]
    station, when = event.get("station"), parse_utc(event.get("station_time"))
    kid_hex, sig64 = leaf.get("kid"), leaf.get("sig")
    if event.get("item") != item:
        return [_finding("leaf_malformed", index, item, f"handover leaf is about item {item!r} but its event "
                         f"names {event.get('item')!r}", "交接记录的物品与事件不符",
                         expected=str(event.get("item")), found=str(item))]
    try:
        kid = bytes.fromhex(kid_hex) if isinstance(kid_hex, str) and len(kid_hex) == 16 else b""
        signature = base64.b64decode(sig64, validate=True) if isinstance(sig64, str) else b""
    except (ValueError, binascii.Error):
        kid, signature = b"", b""
    message = event_bytes(data)
    if len(kid) != 8 or len(signature) != 64 or when is None or not isinstance(station, str) or message is None:
        return [_finding("leaf_malformed", index, item, "handover leaf lacks a well-formed kid, sig, station or "
                         "station_time", "交接记录的密钥标识、签名、交接台或时间格式错误")]
    what = f"leaf {index}: event {event.get('id')} from {station}"
    try:
        key = keys.verify(kid, signature, message, roles=[Role.STATION], signed_at=when, what=what)
    except KeyRevoked as exc:
        # The log's revocation leaves that cover the signing time (the caller tells a revocation the server
        # knew when it accepted the event from one logged afterwards: see store.verification).
        covering = sorted({(idx, at.isoformat()) for at, idx in exc.key.revocation_leaves if at <= when})
        return [_finding("revoked_key_signature", index, item, str(exc),
                         f"事件由已吊销的交接台密钥 {kid_hex} 签名（签名时间 {event.get('station_time')}）",
                         expected=f"a key valid at {event.get('station_time')}", found=f"key {kid_hex} revoked",
                         details={"kid": kid_hex, "station": station,
                                  "revocation_leaves": [[idx, at] for idx, at in covering]})]
    except KeyNotValid as exc:
        return [_finding("key_not_valid", index, item, str(exc), f"签名时间不在密钥 {kid_hex} 的有效期内",
                         found=f"key {kid_hex}")]
    except UnknownKey as exc:
        return [_finding("unknown_key", index, item, str(exc), f"未知的交接台密钥 {kid_hex}", found=f"key {kid_hex}")]
    except BadSignature as exc:
        return [_finding("bad_station_signature", index, item, str(exc),
                         f"交接台 {station} 的签名无法验证：事件内容被改动或伪造",
                         expected=f"a signature by {kid_hex} over the event", found="the signature does not verify")]
    if key.owner != station:
        return [_finding("key_not_valid", index, item, f"{what}: signed by the key of {key.owner}, not of {station}",
                         f"事件声称来自 {station}，但由 {key.owner} 的密钥签名", expected=station, found=key.owner)]
    return []


def check_label_leaf(index: int, leaf: dict[str, Any], keys: KeyRing) -> list[Finding]:
    """A label leaf: the label text verifies, its COSE hash is ``label`` and it names the leaf's item."""
    from custody.labels import cose_from_text, verify_label

    item, text = leaf.get("item"), leaf.get("text")
    if not isinstance(text, str):
        return [_finding("label_invalid", index, item, "label leaf has no label text", "标签记录缺少标签文本")]
    try:
        label = verify_label(text, keys)
        cose = cose_from_text(text)
    except LabelError as exc:
        return [_finding("label_invalid", index, item, f"leaf {index}: {exc}", f"标签验证失败：{exc}")]
    digest = hashlib.sha256(cose or b"").hexdigest()
    if digest != leaf.get("label"):
        return [_finding("label_invalid", index, item, f"leaf {index}: the label's COSE hashes to {digest}, the leaf "
                         f"says {leaf.get('label')}", "标签哈希与记录不符", expected=str(leaf.get("label")),
                         found=digest)]
    if label.payload.item_id != item:
        return [_finding("label_invalid", index, item, f"leaf {index}: the label is for {label.payload.item_id}",
                         "标签所属物品与记录不符", expected=str(item), found=label.payload.item_id)]
    return []


def check_leaf(index: int, data: bytes, keys: KeyRing) -> list[Finding]:
    """Every check of one leaf that needs no other leaf. Returns findings (empty: it holds)."""
    try:
        leaf = parse_canonical_leaf(data)
    except CustodyError as exc:
        return [Finding("leaf_malformed", f"leaf {index}: {exc}", "日志条目不是规范JSON", index=index)]
    kind = leaf["type"]
    if kind == "handover":
        return check_handover(index, leaf, data, keys)
    if kind == "label":
        return check_label_leaf(index, leaf, keys)
    return []


def check_leaves(rows: Iterable[tuple[int, bytes]], keys: KeyRing) -> list[Finding]:
    """:func:`check_leaf` over many rows (a chunk for one worker)."""
    out: list[Finding] = []
    for index, data in rows:
        out.extend(check_leaf(index, data, keys))
    return out
