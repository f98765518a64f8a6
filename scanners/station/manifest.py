"""Handover manifests: the list of items the sending station printed, signed by its station key.

When the receiving desk cannot fetch its expected list (offline), the sending
side's station prints a manifest QR at confirm; the receiving station scans it
and gets a list it can trust offline: it is a COSE_Sign1 message (the same
envelope as labels, INTERFACES §1) signed by the sending *station's* key,
which the receiver finds in its cached key bundle (role ``station``, owner =
the manifest's station code, valid at the manifest's time).

Payload: a CBOR map with small integer keys (never renumbered; a new key
means a new version):

====  ==========  ======  =====================================================
key   field       type    note
====  ==========  ======  =====================================================
1     version     uint    1
2     manifest    tstr    the sending session id, e.g. ``ST-3601-S00012``
3     from unit   tstr    unit handing over
4     to unit     tstr    unit receiving
5     action      tstr    the sender's action (``distribute``, ``depart``, ...)
6     created-at  uint    Unix seconds (UTC) of the sender's confirm
7     station     tstr    the sending station's code (must own the signing key)
8     items       array   of ``[item id, kind code, count, label SHA-256 (32 bytes), box id or null]``
9     part        uint    1-based part number
10    parts       uint    number of parts (a manifest of many items is printed as several QRs)
====  ==========  ======  =====================================================

QR text: ``CUSM1:`` followed by the decimal digits of the big-endian integer
``0x01 || cose_bytes``, encoded like a label (alphanumeric prefix, numeric
digits, ECC M). At most :data:`ITEMS_PER_PART` items a part keeps the symbol
at about version 20, which a 720p webcam reads at arm's length.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import cbor2

from custody.errors import LabelError
from custody.keyring import KeyRing, Role
from custody.labels import ItemKind, Signer
from scanners.station.errors import ManifestError

PREFIX = "CUSM1:"
VERSION = 1
ITEMS_PER_PART = 8
MAX_DIGITS = 4000
_PROTECTED = cbor2.dumps({1: -8})


@dataclass(frozen=True)
class ManifestItem:
    item: str
    kind: ItemKind
    count: int
    label: str  # SHA-256 hex of the label's COSE bytes
    box: str | None = None


@dataclass(frozen=True)
class Manifest:
    id: str
    from_unit: str
    to_unit: str
    action: str
    created_at: datetime
    station: str
    items: tuple[ManifestItem, ...]
    part: int = 1
    parts: int = 1

    def to_cbor(self) -> bytes:
        body = {1: VERSION, 2: self.id, 3: self.from_unit, 4: self.to_unit, 5: self.action,
                6: int(self.created_at.timestamp()), 7: self.station,
                8: [[i.item, int(i.kind), i.count, bytes.fromhex(i.label), i.box] for i in self.items],
                9: self.part, 10: self.parts}
        return cbor2.dumps(body, canonical=True)


def _sig_structure(payload: bytes) -> bytes:
    return cbor2.dumps(["Signature1", _PROTECTED, b"", payload])


def sign_manifest(manifest: Manifest, signer: Signer) -> str:
    """The QR text of a signed manifest part."""
    payload = manifest.to_cbor()
    cose = cbor2.dumps(cbor2.CBORTag(18, [_PROTECTED, {4: signer.kid}, payload, signer.sign(_sig_structure(payload))]))
    return PREFIX + str(int.from_bytes(b"\x01" + cose, "big"))


def make_manifests(*, id: str, from_unit: str, to_unit: str, action: str, created_at: datetime, station: str,
                   items: Sequence[ManifestItem], signer: Signer) -> list[str]:
    """The QR texts of a manifest, :data:`ITEMS_PER_PART` items a part."""
    chunks = [list(items[i:i + ITEMS_PER_PART]) for i in range(0, len(items), ITEMS_PER_PART)] or [[]]
    when = created_at.astimezone(UTC).replace(microsecond=0)
    return [sign_manifest(Manifest(id, from_unit, to_unit, action, when, station, tuple(chunk), n, len(chunks)),
                          signer) for n, chunk in enumerate(chunks, 1)]


def is_manifest_text(text: str) -> bool:
    return text.strip().startswith(PREFIX)


def _decode(data: bytes, what: str) -> object:
    stream = io.BytesIO(data)
    try:
        value = cbor2.CBORDecoder(stream).decode()
    except Exception as exc:  # cbor2 raises several types for broken input
        raise ManifestError(f"{what} is not valid CBOR: {exc}") from None
    if stream.tell() != len(data):
        raise ManifestError(f"{what} has stray bytes after its end")
    return value


def _text(body: Mapping[int, object], key: int, name: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value or len(value) > 64:
        raise ManifestError(f"manifest field {key} ({name}) must be text of 1 to 64 characters")
    return value


def _uint(value: object, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ManifestError(f"manifest {name} must be a whole number")
    return value


def verify_manifest(text: str, keys: KeyRing) -> Manifest:
    """Decode and verify a manifest QR text, or raise :class:`ManifestError` saying what is wrong."""
    text = text.strip()
    if not text.startswith(PREFIX):
        raise ManifestError(f"not a handover manifest (expected text starting with {PREFIX!r})")
    digits = text[len(PREFIX):]
    if not digits or len(digits) > MAX_DIGITS or not (digits.isascii() and digits.isdigit()) or digits[0] == "0":
        raise ManifestError("the manifest text must be up to 4000 digits after CUSM1:, not starting with 0")
    number = int(digits)
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    if raw[0] != 1:
        raise ManifestError("the manifest number must start with byte 0x01")
    message = _decode(raw[1:], "the manifest")
    # cbor2 decodes an array inside a tag as a tuple and a map as a frozendict (both hashable)
    if not (isinstance(message, cbor2.CBORTag) and message.tag == 18 and isinstance(message.value, (list, tuple))
            and len(message.value) == 4):
        raise ManifestError("the manifest is not a COSE_Sign1 message")
    protected, unprotected, payload, signature = message.value
    if protected != _PROTECTED or not (isinstance(unprotected, Mapping) and set(unprotected) == {4}
                                       and isinstance(unprotected[4], bytes) and len(unprotected[4]) == 8):
        raise ManifestError("the manifest's COSE headers must be {1: -8} and {4: 8-byte kid}")
    if not isinstance(payload, bytes) or not (isinstance(signature, bytes) and len(signature) == 64):
        raise ManifestError("the manifest's payload or signature is malformed")
    if cbor2.dumps(cbor2.CBORTag(18, [protected, {4: unprotected[4]}, payload, signature])) != raw[1:]:
        raise ManifestError("the manifest is not deterministically encoded")
    body = _decode(payload, "the manifest payload")
    if not isinstance(body, Mapping) or body.get(1) != VERSION:
        raise ManifestError(f"manifest version {body.get(1) if isinstance(body, Mapping) else None!r} is not supported")
    if cbor2.dumps(body, canonical=True) != payload:
        raise ManifestError("the manifest payload is not deterministically encoded")
    station = _text(body, 7, "station")
    created = datetime.fromtimestamp(_uint(body.get(6), "created-at"), UTC)
    try:
        key = keys.verify(unprotected[4], signature, _sig_structure(payload), roles=[Role.STATION],
                          signed_at=created, what=f"manifest of {station}")
    except LabelError as exc:
        raise ManifestError(str(exc)) from None
    if key.owner != station:
        raise ManifestError(f"the manifest claims station {station} but is signed by the key of {key.owner}")
    entries = body.get(8)
    if not isinstance(entries, (list, tuple)):
        raise ManifestError("manifest field 8 (items) must be an array")
    items = []
    for entry in entries:
        if not (isinstance(entry, (list, tuple)) and len(entry) == 5 and isinstance(entry[0], str) and entry[0]
                and isinstance(entry[3], bytes) and len(entry[3]) == 32
                and (entry[4] is None or isinstance(entry[4], str))):
            raise ManifestError(f"a manifest item must be [id, kind, count, 32-byte label hash, box], found {entry!r}")
        try:
            kind = ItemKind(_uint(entry[1], "item kind"))
        except ValueError:
            raise ManifestError(f"unknown item kind {entry[1]!r} in the manifest") from None
        items.append(ManifestItem(entry[0], kind, _uint(entry[2], "item count"), entry[3].hex(), entry[4]))
    return Manifest(_text(body, 2, "manifest"), _text(body, 3, "from unit"), _text(body, 4, "to unit"),
                    _text(body, 5, "action"), created, station, tuple(items), _uint(body.get(9), "part"),
                    _uint(body.get(10), "parts"))


def manifest_image(text: str, module_px: int = 6, border: int = 4) -> object:
    """A PIL image of a manifest QR (prefix alphanumeric, digits numeric, ECC M), as labels are printed."""
    from printing.qr import qr_image

    return qr_image(text, module_px, border, prefix=PREFIX)
