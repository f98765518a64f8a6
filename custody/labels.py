"""Signed labels: the COSE_Sign1 envelope and the QR text of INTERFACES §1.

A label is the CBOR payload below, signed by the institute's label issuer key
(staff badges: the badge issuer key) as a COSE_Sign1 message (RFC 9052, tag 18,
EdDSA/Ed25519, protected header ``{1: -8}``, key id in the unprotected header
``{4: kid}``). Its QR text is ``CUS1:`` followed by the decimal digits of the
big-endian integer ``0x01 || cose_bytes``.

Payload key table (format version 1). Keys are never renumbered; a new key
means a new format version.

====  ===============  ======  ==========================================
key   field            type    note
====  ===============  ======  ==========================================
1     version          uint    1
2     item id          tstr    e.g. ``YW-P-K037-12``; the staff id for badges
3     kind             uint    :class:`ItemKind` code
4     exam             tstr    e.g. ``zk2017``
5     subject          tstr    subject code, e.g. ``YW``; empty for badges
6     destination      tstr    unit code the item is for (a badge: the holder's unit)
7     count            uint    papers or cards inside; bundles in a box; 1 for a disc
8     issued-at        uint    Unix seconds (UTC) when the label was signed
9     seal number      tstr    optional; the number printed on the tamper seal
10    parent box       tstr    optional; the id of the box the item is packed in
11    holder name      tstr    optional; badges only
====  ===============  ======  ==========================================

Verification is :func:`verify_label`; it raises a distinct exception for text
that is not a label, a malformed label, an unknown key, a bad signature, and a
key that was revoked or not valid when the label was issued.
"""

from __future__ import annotations

import enum
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import cbor2

from custody.errors import MalformedLabel, NotACustodyLabel
from custody.keyring import KeyRing, PublicKey, Role

QR_PREFIX = "CUS1:"
FORMAT_VERSION = 1
COSE_SIGN1_TAG = 18
EDDSA = -8
PROTECTED_HEADER = cbor2.dumps({1: EDDSA})
MAX_DIGITS = 1200  # a version-9 label has about 420; anything near this limit is not ours
MAX_TEXT_FIELD = 64


class ItemKind(enum.IntEnum):
    """What is tracked. The integer is the label's kind code: never renumber."""

    PAPER_BUNDLE = 1
    ANSWER_CARD_BUNDLE = 2
    LISTENING_DISC = 3
    ANSWER_KEY = 4
    BACKUP_PAPER = 5
    BOX = 6
    BADGE = 7

    @property
    def slug(self) -> str:
        return self.name.lower()

    @classmethod
    def from_slug(cls, slug: str) -> ItemKind:
        try:
            return cls[slug.upper()]
        except KeyError:
            raise ValueError(f"unknown item kind {slug!r}; known: {', '.join(k.slug for k in cls)}") from None


class Key(enum.IntEnum):
    VERSION = 1
    ITEM = 2
    KIND = 3
    EXAM = 4
    SUBJECT = 5
    DESTINATION = 6
    COUNT = 7
    ISSUED_AT = 8
    SEAL = 9
    PARENT_BOX = 10
    HOLDER_NAME = 11


REQUIRED_KEYS = frozenset(
    {Key.VERSION, Key.ITEM, Key.KIND, Key.EXAM, Key.SUBJECT, Key.DESTINATION, Key.COUNT, Key.ISSUED_AT}
)


@dataclass(frozen=True)
class LabelPayload:
    """The signed content of a label."""

    item_id: str
    kind: ItemKind
    exam: str
    subject: str
    destination: str
    count: int
    issued_at: datetime
    seal: str | None = None
    parent_box: str | None = None
    holder_name: str | None = None

    def __post_init__(self) -> None:
        problems = _payload_problems(self)
        if problems:
            raise ValueError("; ".join(problems))

    def to_cbor(self) -> bytes:
        """Deterministic CBOR (RFC 8949 §4.2.1): integer keys in ascending order."""
        body: dict[int, object] = {
            Key.VERSION: FORMAT_VERSION,
            Key.ITEM: self.item_id,
            Key.KIND: int(self.kind),
            Key.EXAM: self.exam,
            Key.SUBJECT: self.subject,
            Key.DESTINATION: self.destination,
            Key.COUNT: self.count,
            Key.ISSUED_AT: int(self.issued_at.timestamp()),
        }
        optional = ((Key.SEAL, self.seal), (Key.PARENT_BOX, self.parent_box), (Key.HOLDER_NAME, self.holder_name))
        for key, value in optional:
            if value is not None:
                body[key] = value
        return cbor2.dumps({int(k): v for k, v in body.items()}, canonical=True)

    def as_json(self) -> dict[str, object]:
        return {
            "item": self.item_id,
            "kind": self.kind.slug,
            "exam": self.exam,
            "subject": self.subject,
            "destination": self.destination,
            "count": self.count,
            "issued_at": self.issued_at.isoformat(),
            "seal": self.seal,
            "parent_box": self.parent_box,
            "holder_name": self.holder_name,
        }


def _payload_problems(p: LabelPayload) -> list[str]:
    problems = []
    texts = {"item id": p.item_id, "exam": p.exam, "destination": p.destination}
    for name, value in texts.items():
        if not isinstance(value, str) or not value or len(value) > MAX_TEXT_FIELD:
            problems.append(f"{name} must be 1 to {MAX_TEXT_FIELD} characters, found {value!r}")
    optional = (("subject", p.subject), ("seal", p.seal), ("parent box", p.parent_box), ("holder name", p.holder_name))
    for name, opt in optional:
        if opt is not None and (not isinstance(opt, str) or len(opt) > MAX_TEXT_FIELD):
            problems.append(f"{name} must be text of at most {MAX_TEXT_FIELD} characters, found {opt!r}")
    if not isinstance(p.kind, ItemKind):
        problems.append(f"kind must be an ItemKind, found {p.kind!r}")
    elif p.kind is not ItemKind.BADGE and not p.subject:
        problems.append(f"a {p.kind.slug} label needs a subject")
    if isinstance(p.kind, ItemKind) and p.kind is not ItemKind.BADGE and p.holder_name is not None:
        problems.append("only badges carry a holder name")
    if not isinstance(p.count, int) or isinstance(p.count, bool) or not 0 <= p.count < 2**32:
        problems.append(f"count must be a whole number from 0, found {p.count!r}")
    if not isinstance(p.issued_at, datetime) or p.issued_at.tzinfo is None:
        problems.append("issued-at must be a timezone-aware time")
    elif p.issued_at.microsecond or p.issued_at.timestamp() < 0:
        problems.append("issued-at must be a whole second after 1970")
    return problems


class Signer:
    """Anything that signs for one key: ``kid`` and ``sign(message) -> signature``.

    The private key never enters the core; ``keys`` builds signers.
    """

    kid: bytes

    def __init__(self, kid: bytes, sign: Callable[[bytes], bytes]):
        self.kid = kid
        self._sign = sign

    def sign(self, message: bytes) -> bytes:
        return self._sign(message)


def _sig_structure(protected: bytes, payload: bytes) -> bytes:
    # RFC 9052 §4.4: Sig_structure = ["Signature1", body_protected, external_aad, payload]
    return cbor2.dumps(["Signature1", protected, b"", payload])


def sign_label(payload: LabelPayload, signer: Signer) -> bytes:
    """The COSE_Sign1 bytes of a label."""
    body = payload.to_cbor()
    signature = signer.sign(_sig_structure(PROTECTED_HEADER, body))
    message = cbor2.CBORTag(COSE_SIGN1_TAG, [PROTECTED_HEADER, {4: signer.kid}, body, signature])
    return cbor2.dumps(message)


def label_text(cose: bytes) -> str:
    """The QR text of a label: ``CUS1:`` and the digits of ``0x01 || cose``."""
    return QR_PREFIX + str(int.from_bytes(b"\x01" + cose, "big"))


def cose_from_text(text: str) -> bytes | None:
    """The COSE bytes inside a label text; ``None`` if the text is not ours at all.

    Raises :class:`MalformedLabel` for text that is ours but broken.
    """
    text = text.strip()
    if not text.startswith("CUS"):
        return None
    if not text.startswith(QR_PREFIX):
        head = text.split(":", 1)[0]
        if head[3:].isdigit():
            raise MalformedLabel(f"label format {head!r} is not supported; this software reads {QR_PREFIX!r}")
        return None
    digits = text[len(QR_PREFIX):]
    if not digits:
        raise MalformedLabel("the label text has the prefix CUS1: but no digits")
    if len(digits) > MAX_DIGITS:
        raise MalformedLabel(f"the label text has {len(digits)} digits; a label has at most {MAX_DIGITS}")
    if not (digits.isascii() and digits.isdigit()):
        bad = next(c for c in digits if not ("0" <= c <= "9"))
        raise MalformedLabel(f"the label text must be digits after CUS1:, found {bad!r}")
    if digits[0] == "0":
        raise MalformedLabel("the label digits start with 0; a label number never does")
    number = int(digits)
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    if raw[0] != 0x01:
        raise MalformedLabel(f"the label number must start with byte 0x01, found 0x{raw[0]:02x}")
    return raw[1:]


@dataclass(frozen=True)
class UnverifiedLabel:
    """A label decoded but NOT verified: nothing in it may be trusted yet."""

    kid: bytes
    protected: bytes
    payload_bytes: bytes
    signature: bytes
    payload: LabelPayload
    cose: bytes = field(repr=False)

    @property
    def signed_message(self) -> bytes:
        return _sig_structure(self.protected, self.payload_bytes)


@dataclass(frozen=True)
class Label:
    """A verified label: the payload, the key that signed it, and its text."""

    payload: LabelPayload
    key: PublicKey
    text: str
    cose: bytes = field(repr=False)

    def as_json(self) -> dict[str, object]:
        return {**self.payload.as_json(), "kid": self.key.kid_hex, "signer": self.key.owner, "valid": True}


def _decode_exact(data: bytes, what: str) -> object:
    stream = io.BytesIO(data)
    try:
        value = cbor2.CBORDecoder(stream).decode()
    except Exception as exc:  # cbor2 raises several types for broken input
        raise MalformedLabel(f"{what} is not valid CBOR: {exc}") from None
    if stream.tell() != len(data):
        raise MalformedLabel(f"{what} has {len(data) - stream.tell()} stray byte(s) after its end")
    return value


def parse_unverified_label(text: str) -> UnverifiedLabel | None:
    """Decode a label text without checking its signature.

    Returns ``None`` for text that is not a custody label; raises
    :class:`MalformedLabel` for text that is one but is broken. The structure is
    checked strictly: the bytes must be exactly the deterministic encoding of
    what they decode to, so no byte, signed or not, can change unnoticed.
    """
    cose = cose_from_text(text)
    if cose is None:
        return None
    message = _decode_exact(cose, "the label")
    if not (isinstance(message, cbor2.CBORTag) and message.tag == COSE_SIGN1_TAG):
        raise MalformedLabel("the label is not a COSE_Sign1 message (CBOR tag 18)")
    parts = message.value
    if not (isinstance(parts, (list, tuple)) and len(parts) == 4):
        raise MalformedLabel("a COSE_Sign1 message is an array of 4 elements")
    protected, unprotected, payload_bytes, signature = parts
    if protected != PROTECTED_HEADER:
        raise MalformedLabel(f"the protected header must be {{1: -8}} (EdDSA), found {protected!r}")
    if not (isinstance(unprotected, Mapping) and set(unprotected) == {4} and isinstance(unprotected[4], bytes)):
        raise MalformedLabel("the unprotected header must hold exactly the key id {4: kid}")
    kid = unprotected[4]
    if len(kid) != 8:
        raise MalformedLabel(f"the key id must have 8 bytes, found {len(kid)}")
    if not isinstance(payload_bytes, bytes):
        raise MalformedLabel("the payload must be a byte string")
    if not (isinstance(signature, bytes) and len(signature) == 64):
        raise MalformedLabel("the signature must be 64 bytes of Ed25519")
    if cbor2.dumps(cbor2.CBORTag(COSE_SIGN1_TAG, [protected, {4: kid}, payload_bytes, signature])) != cose:
        raise MalformedLabel("the label is not deterministically encoded")
    payload = payload_from_cbor(payload_bytes)
    return UnverifiedLabel(kid, protected, payload_bytes, signature, payload, cose)


def payload_from_cbor(data: bytes) -> LabelPayload:
    """Decode a payload strictly; raise :class:`MalformedLabel` naming the key at fault."""
    body = _decode_exact(data, "the label payload")
    if not isinstance(body, Mapping):
        raise MalformedLabel("the label payload must be a CBOR map")
    unknown = [k for k in body if not (isinstance(k, int) and not isinstance(k, bool) and k in Key._value2member_map_)]
    if unknown:
        raise MalformedLabel(f"the label payload has unknown key(s) {unknown!r} for format version 1")
    missing = sorted(int(k) for k in REQUIRED_KEYS - set(body))
    if missing:
        raise MalformedLabel(f"the label payload lacks required key(s) {missing}")
    if body[Key.VERSION] != FORMAT_VERSION:
        raise MalformedLabel(f"label format version {body[Key.VERSION]!r} is not supported (expected 1)")
    if cbor2.dumps(body, canonical=True) != data:
        raise MalformedLabel("the label payload is not deterministically encoded")

    def text(key: Key, optional: bool = False) -> str | None:
        value = body.get(key)
        if value is None and optional:
            return None
        if not isinstance(value, str):
            raise MalformedLabel(f"payload key {int(key)} ({key.name.lower()}) must be text, found {value!r}")
        return value

    def number(key: Key) -> int:
        value = body[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise MalformedLabel(f"payload key {int(key)} ({key.name.lower()}) must be a whole number, found {value!r}")
        return value

    try:
        kind = ItemKind(number(Key.KIND))
    except ValueError:
        raise MalformedLabel(f"unknown item kind code {body[Key.KIND]!r}") from None
    try:
        return LabelPayload(
            item_id=text(Key.ITEM) or "",
            kind=kind,
            exam=text(Key.EXAM) or "",
            subject=text(Key.SUBJECT) or "",
            destination=text(Key.DESTINATION) or "",
            count=number(Key.COUNT),
            issued_at=datetime.fromtimestamp(number(Key.ISSUED_AT), UTC),
            seal=text(Key.SEAL, optional=True),
            parent_box=text(Key.PARENT_BOX, optional=True),
            holder_name=text(Key.HOLDER_NAME, optional=True),
        )
    except (ValueError, OverflowError) as exc:
        raise MalformedLabel(f"the label payload is invalid: {exc}") from None


def signing_role(kind: ItemKind) -> Role:
    return Role.BADGE_ISSUER if kind is ItemKind.BADGE else Role.LABEL_ISSUER


def verify_label(text: str, keys: KeyRing) -> Label:
    """Verify a label text against the trusted keys, or raise.

    Raises :class:`NotACustodyLabel`, :class:`MalformedLabel`,
    :class:`UnknownKey`, :class:`BadSignature`, :class:`KeyRevoked` or
    :class:`KeyNotValid`. Only labels of items are accepted from the label
    issuer and only badges from the badge issuer.
    """
    unverified = parse_unverified_label(text)
    if unverified is None:
        shown = text.strip()
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise NotACustodyLabel(f"not a custody label (expected text starting with {QR_PREFIX!r}, found {shown!r})")
    payload = unverified.payload
    key = keys.verify(
        unverified.kid,
        unverified.signature,
        unverified.signed_message,
        roles=[signing_role(payload.kind)],
        signed_at=payload.issued_at,
        what=f"label of {payload.item_id}",
    )
    return Label(payload=payload, key=key, text=text.strip(), cose=unverified.cose)


def issue_label(payload: LabelPayload, signer: Signer) -> str:
    """Sign a payload and return its QR text."""
    return label_text(sign_label(payload, signer))
