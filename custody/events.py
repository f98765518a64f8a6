"""Handover events: what a station signs at each scan, and how it is checked.

An event is a JSON object (the station signs its RFC 8785 canonical bytes):

=============  =============================================================
field          meaning
=============  =============================================================
``v``          format version, 1
``id``         the station's unique id for this event (idempotency key)
``item``       item id (or box id) the label names
``label``      SHA-256 (hex) of the label's COSE bytes, as scanned
``action``     an :class:`Action` value
``from_unit``  unit handing over (may be null, e.g. for a store or an open)
``to_unit``    unit receiving / where it happens
``handed_by``  people handing over: ``[{"staff": id, "badge": sha256 hex}]``
``received_by`` people receiving, same shape (两人 each side where required)
``station``    station code
``station_time`` the station clock, RFC 3339 UTC with ``Z``, whole seconds
``seal``       ``{"number": str|null, "condition": "intact"|"damaged"|"missing"}`` or null
``count``      the count seen, or null
``reason``     for exceptions: why (null otherwise)
``note``       free text (null or up to 500 characters)
``photo``      SHA-256 (hex) of a photo taken at the scan, or null
``box``        for ``pack``: the box the item goes into (null otherwise)
=============  =============================================================

:func:`parse_event` checks shape and types strictly and raises
:class:`MalformedEvent` naming the field; :func:`verify_event` also checks the
station's signature with the key valid at the station time.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from custody.errors import CustodyError, LeafError
from custody.keyring import KeyRing, PublicKey, Role
from custody.log.jcs import canonical_json, canonical_plain

EVENT_VERSION = 1
MAX_EVENT_BYTES = 8192
MAX_NOTE = 500
#: A SHA-256 digest in lowercase hex (labels, badges, photos), matched to the end of the text (``\Z``: ``$``
#: also matches before a final newline).
HEX64 = re.compile(r"^[0-9a-f]{64}\Z")
#: An id of an event, item, station, unit or person: what the event format and every form take.
ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}\Z")


class EventError(CustodyError):
    """An event was refused. Subclasses say why."""


class MalformedEvent(EventError):
    """The event is not well-formed: a field is missing, unknown or of the wrong type."""

    exit_code = 2


class EventSignatureError(EventError):
    """The station's signature is missing, unknown, wrong, or by a revoked key."""


class Action(str, enum.Enum):
    """What happened at a scan. Values are stable: they are in signed events."""

    ISSUE = "issue"                      # the printer hands the sealed item over
    PACK = "pack"                        # put into a box
    UNPACK = "unpack"                    # taken out of its box (the box is opened)
    RECEIVE = "receive"                  # 接收
    STORE = "store"                      # into a secure room 保管
    TAKE_OUT = "take_out"                # out of a secure room
    DEPART = "depart"                    # leaves with escorts 押运
    ARRIVE = "arrive"                    # arrives with escorts
    DISTRIBUTE = "distribute"            # 分发, county or site to the next tier
    OPEN = "open"                        # 启封, in the exam room
    SEAL = "seal"                        # 封装, answer cards after the exam
    RETURN = "return"                    # back up the chain
    RECEIVE_FOR_GRADING = "receive_for_grading"
    GRADE = "grade"                      # 评阅
    ARCHIVE = "archive"
    DESTROY = "destroy"
    # exceptions
    SEAL_DAMAGED = "seal_damaged"
    COUNT_MISMATCH = "count_mismatch"
    MISSING = "missing"
    FOUND = "found"

    @property
    def is_exception(self) -> bool:
        return self in EXCEPTIONS


EXCEPTIONS = frozenset({Action.SEAL_DAMAGED, Action.COUNT_MISMATCH, Action.MISSING, Action.FOUND})
#: Handovers whose sender scans them before anyone at the other end has signed (a depart always).
_SENT = frozenset({"distribute", "return", "issue"})


def scan_place(action: str, from_unit: str | None, to_unit: str | None, received: bool) -> str | None:
    """Where a scan was made, whose finding it is: the sender for a depart, and for a distribute, return
    or issue nobody at the other end signed for (still in the sender's hands); else the receiving unit,
    else the giving one. ``action`` is an :class:`Action` or its value."""
    if from_unit and (action == "depart" or (action in _SENT and not received)):
        return from_unit
    return to_unit or from_unit


#: Each action's Chinese name, as the plan's wording has it (接收, 保管, 分发, 启封, 封装, 评阅): for messages
#: the rules and stations write in Chinese, where the stable English value would stand out.
ACTION_ZH: dict[Action, str] = {
    Action.ISSUE: "发出", Action.PACK: "装箱", Action.UNPACK: "开箱", Action.RECEIVE: "接收",
    Action.STORE: "入保密室", Action.TAKE_OUT: "出保密室", Action.DEPART: "押运出发", Action.ARRIVE: "押运到达",
    Action.DISTRIBUTE: "分发", Action.OPEN: "启封", Action.SEAL: "封装", Action.RETURN: "回收",
    Action.RECEIVE_FOR_GRADING: "评卷点接收", Action.GRADE: "评阅", Action.ARCHIVE: "归档", Action.DESTROY: "销毁",
    Action.SEAL_DAMAGED: "封条破损", Action.COUNT_MISMATCH: "数量不符", Action.MISSING: "丢失", Action.FOUND: "找回",
}


class SealCondition(str, enum.Enum):
    INTACT = "intact"
    DAMAGED = "damaged"
    MISSING = "missing"


@dataclass(frozen=True)
class Person:
    staff: str
    badge: str  # SHA-256 hex of the badge label's COSE bytes

    def as_json(self) -> dict[str, str]:
        return {"staff": self.staff, "badge": self.badge}

    @classmethod
    def of(cls, staff: str, badge: str) -> Person:
        """``Person(staff, badge)`` for values already checked, without the frozen dataclass's ``__init__``
        (each event names two to four people, parsed in a signature worker and rebuilt in the server)."""
        person = object.__new__(cls)
        person.__dict__.update(staff=staff, badge=badge)
        return person


@dataclass(frozen=True)
class Event:
    """A parsed handover event. ``raw`` is the exact JSON object that was signed."""

    id: str
    item: str
    label: str
    action: Action
    from_unit: str | None
    to_unit: str | None
    handed_by: tuple[Person, ...]
    received_by: tuple[Person, ...]
    station: str
    station_time: datetime
    seal_number: str | None
    seal_condition: SealCondition | None
    count: int | None
    reason: str | None
    note: str | None
    photo: str | None
    box: str | None
    raw: Mapping[str, Any]
    #: The JCS bytes of ``raw``, worked out once by :func:`parse_event` (what the station signed).
    _canonical: bytes = dataclasses.field(default=b"", repr=False, compare=False)

    @property
    def people(self) -> tuple[Person, ...]:
        return self.handed_by + self.received_by

    def canonical(self) -> bytes:
        """The RFC 8785 bytes of ``raw`` as parsed (the signed message)."""
        return self._canonical or canonical_json(dict(self.raw))

    @classmethod
    def of(cls, **values: Any) -> Event:
        """``Event(**values)`` for values already checked, without the frozen dataclass's ``__init__``
        (0.4 µs against 3.5 µs: every submission makes one in a signature worker and one in the server).
        Every field must be given."""
        if values.keys() != _EVENT_FIELDS:
            raise TypeError(f"Event.of needs exactly the fields {sorted(_EVENT_FIELDS)}")
        event = object.__new__(cls)
        event.__dict__.update(values)
        return event


_EVENT_FIELDS = frozenset(f.name for f in dataclasses.fields(Event))


def format_time(when: datetime) -> str:
    """RFC 3339 UTC with a ``Z`` and whole seconds: the one time format in events and leaves."""
    if when.tzinfo is None:
        raise ValueError("times in events must be timezone-aware")
    return when.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def parse_time(text: str, field: str) -> datetime:
    if not isinstance(text, str) or not _TIME.fullmatch(text):
        raise MalformedEvent(f"{field} must be a UTC time like 2017-06-20T00:20:00Z, found {text!r}")
    try:
        return datetime.fromisoformat(text)  # the pattern above leaves only the 'Z' form (UTC)
    except ValueError:
        raise MalformedEvent(f"{field} is not a real time: {text!r}") from None


def label_hash(cose: bytes) -> str:
    return hashlib.sha256(cose).hexdigest()


def make_event(*, id: str, item: str, label: str, action: Action, station: str, station_time: datetime,
               from_unit: str | None = None, to_unit: str | None = None,
               handed_by: tuple[Person, ...] = (), received_by: tuple[Person, ...] = (),
               seal_number: str | None = None, seal_condition: SealCondition | None = None,
               count: int | None = None, reason: str | None = None, note: str | None = None,
               photo: str | None = None, box: str | None = None) -> dict[str, Any]:
    """The JSON object of an event, ready to sign. Checked by :func:`parse_event`."""
    raw: dict[str, Any] = {
        "v": EVENT_VERSION, "id": id, "item": item, "label": label, "action": action.value,
        "from_unit": from_unit, "to_unit": to_unit,
        "handed_by": [p.as_json() for p in handed_by], "received_by": [p.as_json() for p in received_by],
        "station": station, "station_time": format_time(station_time),
        "seal": None if seal_number is None and seal_condition is None else
        {"number": seal_number, "condition": seal_condition.value if seal_condition else None},
        "count": count, "reason": reason, "note": note, "photo": photo, "box": box,
    }
    parse_event(raw)
    return raw


FIELDS = frozenset({"v", "id", "item", "label", "action", "from_unit", "to_unit", "handed_by", "received_by",
                    "station", "station_time", "seal", "count", "reason", "note", "photo", "box"})
#: Each action and seal condition by its value (faster than calling the enum, for plain strings).
ACTION_BY_VALUE = {a.value: a for a in Action}
CONDITION_BY_VALUE = {c.value: c for c in SealCondition}


#: Control characters no text of an event may hold (tab, line feed and carriage return may be in a note):
#: PostgreSQL refuses a NUL in a text column (the alert quoting a reason failed its whole batch), and an
#: escape sequence in a reason would act on the terminal of whoever lists the alerts.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def control_character(text: str) -> str | None:
    """The first control character of ``text`` that no text of custody's may hold (see ``_CONTROL``), as
    ``U+0000``; None if there is none."""
    bad = _CONTROL.search(text)
    return None if bad is None else f"U+{ord(bad.group()):04X}"


def _opt_text(raw: Mapping[str, Any], field: str, limit: int = 64) -> str | None:
    value = raw.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > limit:
        raise MalformedEvent(f"{field} must be null or text of 1 to {limit} characters, found {value!r}")
    bad = control_character(value)
    if bad is not None:
        raise MalformedEvent(f"{field} holds the control character {bad}; expected text")
    return value


_PERSON_FIELDS = frozenset({"staff", "badge"})
_SEAL_FIELDS = frozenset({"number", "condition"})
#: People already checked, by (staff id, badge hash): a station's staff sign event after event, so most
#: people of an event were checked before (a person is a frozen value, shared). Emptied when full.
_PEOPLE: dict[tuple[str, str], Person] = {}
_PEOPLE_MAX = 4096


def _people(raw: Mapping[str, Any], field: str) -> tuple[Person, ...]:
    value = raw.get(field)
    if not isinstance(value, list) or len(value) > 8:
        raise MalformedEvent(f"{field} must be a list of at most 8 people")
    people, names = [], []
    for entry in value:
        if not ((type(entry) is dict or isinstance(entry, Mapping)) and entry.keys() == _PERSON_FIELDS):
            raise MalformedEvent(f"each of {field} must be {{staff: id, badge: sha256 hex}}, found {entry!r}")
        staff, badge = entry["staff"], entry["badge"]
        plain = type(staff) is str and type(badge) is str  # a str subclass could hash and compare as it likes
        person = _PEOPLE.get((staff, badge)) if plain else None
        if person is None:
            if not (isinstance(staff, str) and ID.match(staff) and isinstance(badge, str) and HEX64.match(badge)):
                raise MalformedEvent(f"each of {field} must be {{staff: id, badge: sha256 hex}}, found {entry!r}")
            person = Person.of(staff, badge)
            if plain:
                if len(_PEOPLE) >= _PEOPLE_MAX:
                    _PEOPLE.clear()
                _PEOPLE[(staff, badge)] = person
        people.append(person)
        names.append(staff)
    if len(set(names)) != len(names):
        raise MalformedEvent(f"{field} names the same person twice")
    return tuple(people)


def parse_event(raw: Any) -> Event:
    """Check an event's shape strictly; raise :class:`MalformedEvent` naming the field."""
    if not (type(raw) is dict or isinstance(raw, Mapping)):
        raise MalformedEvent("an event must be a JSON object")
    if raw.keys() != FIELDS:
        unknown, missing = set(raw) - FIELDS, FIELDS - set(raw)
        raise MalformedEvent(f"event fields: unknown {sorted(unknown)}, missing {sorted(missing)}")
    if type(raw["v"]) is not int or raw["v"] != EVENT_VERSION:
        raise MalformedEvent(f"event version must be 1, found {raw['v']!r}")
    for field in ("id", "item", "station"):
        if not isinstance(raw[field], str) or not ID.match(raw[field]):
            raise MalformedEvent(f"{field} must be an id of letters, digits and ._:- (max 64), found {raw[field]!r}")
    if not isinstance(raw["label"], str) or not HEX64.match(raw["label"]):
        raise MalformedEvent("label must be the SHA-256 (hex) of the scanned label")
    action = ACTION_BY_VALUE.get(raw["action"]) if type(raw["action"]) is str else None
    if action is None:  # not a plain string: the enum decides, as it always did
        try:
            action = Action(raw["action"])
        except ValueError:
            raise MalformedEvent(f"unknown action {raw['action']!r}") from None
    seal = raw["seal"]
    seal_number = seal_condition = None
    if seal is not None:
        if not ((type(seal) is dict or isinstance(seal, Mapping)) and seal.keys() == _SEAL_FIELDS):
            raise MalformedEvent("seal must be null or {number, condition}")
        seal_number = _opt_text(seal, "number")
        condition = seal["condition"]
        if condition is not None:
            seal_condition = CONDITION_BY_VALUE.get(condition) if type(condition) is str else None
            if seal_condition is None:  # not a plain string of a condition: the enum decides, as it always did
                try:
                    seal_condition = SealCondition(condition)
                except ValueError:
                    raise MalformedEvent(f"seal condition must be intact, damaged or missing, found {condition!r}") \
                        from None
    count = raw["count"]
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or not 0 <= count < 10**6):
        raise MalformedEvent(f"count must be null or a whole number, found {count!r}")
    photo = raw["photo"]
    if photo is not None and not (isinstance(photo, str) and HEX64.match(photo)):
        raise MalformedEvent("photo must be null or a SHA-256 hex digest")
    reason = _opt_text(raw, "reason", 200)
    if action.is_exception and reason is None:
        raise MalformedEvent(f"a {action.value} exception needs a reason")
    box = _opt_text(raw, "box")
    if (action is Action.PACK) != (box is not None):
        raise MalformedEvent("box is given for pack events and only for them")
    try:
        # Every value was checked above to be text, null, a small whole number, or lists and objects of
        # them with ASCII keys: JCS writes those exactly as the plain encoder does (see custody.log.jcs).
        canonical = canonical_plain(raw)
    except LeafError:
        raise MalformedEvent("event text must be valid Unicode (it holds a lone surrogate)") from None
    event = Event.of(
        id=raw["id"], item=raw["item"], label=raw["label"], action=action,
        from_unit=_opt_text(raw, "from_unit"), to_unit=_opt_text(raw, "to_unit"),
        handed_by=_people(raw, "handed_by"), received_by=_people(raw, "received_by"),
        station=raw["station"], station_time=parse_time(raw["station_time"], "station_time"),
        seal_number=seal_number, seal_condition=seal_condition, count=count, reason=reason,
        note=_opt_text(raw, "note", MAX_NOTE), photo=photo, box=box, raw=raw,
        _canonical=canonical,
    )
    if len(event.canonical()) > MAX_EVENT_BYTES:
        raise MalformedEvent(f"an event may have at most {MAX_EVENT_BYTES} bytes")
    return event


@dataclass(frozen=True)
class SignedEvent:
    """An event with the station's key id (hex) and Ed25519 signature (base64)."""

    event: Event
    kid: str
    sig: str

    def as_json(self) -> dict[str, Any]:
        return {"event": dict(self.event.raw), "kid": self.kid, "sig": self.sig}


def sign_event(raw: Mapping[str, Any], kid: bytes, sign: Any) -> dict[str, Any]:
    """A submission: the event, the station key id (hex) and the signature (base64) over its JCS bytes."""
    event = parse_event(raw)
    return {"event": dict(raw), "kid": kid.hex(), "sig": base64.b64encode(sign(event.canonical())).decode("ascii")}


_SUBMISSION = frozenset({"event", "kid", "sig"})
_KID = re.compile(r"[0-9a-f]{16}")


def parse_submission(submission: Any) -> tuple[Event, str, bytes]:
    """Split a submission into its event, key id and signature, checking shapes only."""
    if not ((type(submission) is dict or isinstance(submission, Mapping)) and submission.keys() == _SUBMISSION):
        raise MalformedEvent("a submission is an object with exactly event, kid and sig")
    kid, sig = submission["kid"], submission["sig"]
    if not (isinstance(kid, str) and _KID.fullmatch(kid)):
        raise MalformedEvent("kid must be 16 lowercase hex digits")
    try:
        signature = base64.b64decode(sig, validate=True) if isinstance(sig, str) else b""
    except ValueError:
        signature = b""
    if len(signature) != 64:
        raise MalformedEvent("sig must be a base64 Ed25519 signature (64 bytes)")
    return parse_event(submission["event"]), kid, signature


def verify_submission(submission: Any, keys: KeyRing) -> tuple[SignedEvent, PublicKey]:
    """Parse and verify a station's submission; raise :class:`MalformedEvent` or :class:`EventSignatureError`.

    The signing key must be a station key registered for the event's station,
    valid (and not revoked) at the event's station time.
    """
    event, kid, signature = parse_submission(submission)
    from custody.errors import LabelError

    try:
        key = keys.verify(bytes.fromhex(kid), signature, event.canonical(), roles=[Role.STATION],
                          signed_at=event.station_time, what=f"event {event.id} from {event.station}")
    except LabelError as exc:
        raise EventSignatureError(str(exc)) from None
    if key.owner != event.station:
        raise EventSignatureError(f"event {event.id} claims station {event.station} but is signed by the key of "
                                  f"{key.owner}")
    return SignedEvent(event, kid, submission["sig"]), key
