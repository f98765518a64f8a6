"""What a scanned QR text means at this handover: green, amber, red or grey, and why.

:func:`judge_text` verifies a label offline against the cached key bundle
(:func:`custody.labels.verify_label`) and then looks at the item's state as
this station knows it:

- **red** — the label is malformed, its key is unknown (forged), its
  signature does not verify (forged or altered), its key was revoked or not
  valid; or the item was already handed over (this station already recorded
  the same action for it, or the server's list of what is held here already
  has it: a copied label), was already opened, or carries another label than
  the one issued for it; or the same label is twice in view (a photocopy);
- **amber** — a valid label that is not on this handover's expected list (an
  item that belongs elsewhere), or a badge of a unit that is not a party;
- **green** — valid and expected (or inside an expected box); a badge of a party;
- **grey** — a QR code that is not a custody label at all (a parcel code).

Nothing here does I/O; the caches and the outbox history are passed in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from custody.errors import (
    BadSignature,
    KeyNotValid,
    KeyRevoked,
    LabelError,
    MalformedLabel,
    NotACustodyLabel,
    UnknownKey,
)
from custody.events import Action
from custody.keyring import KeyRing
from custody.labels import ItemKind, Label, verify_label
from scanners.station.caches import ExpectedEntry
from scanners.station.messages import REASONS, reason_message

#: Actions by which an item comes into the unit (a second one for the same item means a copy).
INCOMING = frozenset({Action.RECEIVE, Action.ARRIVE, Action.RECEIVE_FOR_GRADING, Action.RETURN})
#: After these, an opened item is normal.
AFTER_OPENING = frozenset({Action.SEAL, Action.RETURN, Action.DEPART, Action.RECEIVE, Action.RECEIVE_FOR_GRADING,
                           Action.GRADE, Action.ARCHIVE, Action.DESTROY})
OPENED_STATES = frozenset({"opened"})


@dataclass(frozen=True)
class Verdict:
    """The judgement of one QR text. ``details`` fill the message templates."""

    text: str
    reason: str
    item: str | None = None
    kind: ItemKind | None = None
    label: Label | None = field(default=None, repr=False)
    label_hash: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None  # the verifier's own message (English), for evidence and logs

    @property
    def colour(self) -> str:
        return REASONS[self.reason][0]

    @property
    def is_label(self) -> bool:
        return self.reason != "not_ours"

    @property
    def refused(self) -> bool:
        """A red verdict on something that claims to be ours: kept as refusal evidence."""
        return self.colour == "red" and self.reason != "no_bundle"

    def message(self, lang: str = "zh") -> str:
        return reason_message(self.reason, lang, **self.details)

    def as_json(self) -> dict[str, Any]:
        return {"colour": self.colour, "reason": self.reason, "item": self.item,
                "kind": self.kind.slug if self.kind else None, "message": self.message("zh"),
                "message_en": self.message("en"), **({"error": self.error} if self.error else {})}


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.strip().encode("utf-8")).hexdigest()


_LABEL_ERRORS: tuple[tuple[type[LabelError], str], ...] = (
    (MalformedLabel, "malformed"), (UnknownKey, "unknown_key"), (BadSignature, "bad_signature"),
    (KeyRevoked, "key_revoked"), (KeyNotValid, "key_not_valid"),
)


@dataclass
class Knowledge:
    """What the station knows about items, offline.

    ``expected``: this handover's list (server or manifest), by item;
    ``held``: the server's last list of items held at or below this unit;
    ``history``: this station's own recorded events, by item.
    """

    action: Action
    unit: str
    keyring: KeyRing | None
    expected: dict[str, ExpectedEntry] = field(default_factory=dict)
    held: dict[str, ExpectedEntry] = field(default_factory=dict)
    history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    has_list: bool = False


def judge_text(text: str, k: Knowledge) -> Verdict:
    """The verdict on one decoded QR text (never raises for bad input)."""
    if k.keyring is None:
        try:
            verify_label(text, KeyRing())
        except NotACustodyLabel:
            return Verdict(text, "not_ours")
        except LabelError:
            pass
        return Verdict(text, "no_bundle", error="no key bundle has been fetched yet")
    try:
        label = verify_label(text, k.keyring)
    except NotACustodyLabel:
        return Verdict(text, "not_ours")
    except LabelError as exc:
        reason = next(code for cls, code in _LABEL_ERRORS if isinstance(exc, cls))
        item = _claimed_item(text)
        return Verdict(text, reason, item=item, error=str(exc))
    p = label.payload
    digest = hashlib.sha256(label.cose).hexdigest()
    base = {"item": p.item_id, "kind": p.kind, "label": label, "label_hash": digest}
    if p.kind is ItemKind.BADGE:
        return Verdict(text, "badge_receiving", details={"staff": p.item_id, "name": p.holder_name or "",
                                                         "unit": p.destination}, **base)  # type: ignore[arg-type]
    state = _state_problem(p.item_id, digest, k)
    if state is not None:
        reason, details = state
        return Verdict(text, reason, details={"item": p.item_id, **details}, **base)  # type: ignore[arg-type]
    entry = k.expected.get(p.item_id)
    if entry is not None:
        return Verdict(text, "expected", details={"item": p.item_id}, **base)  # type: ignore[arg-type]
    if p.parent_box and p.parent_box in k.expected:
        return Verdict(text, "in_expected_box", details={"item": p.item_id, "box": p.parent_box},
                       **base)  # type: ignore[arg-type]
    reason = "unexpected" if k.has_list else "unexpected_no_list"
    return Verdict(text, reason, details={"item": p.item_id, "destination": p.destination},
                   **base)  # type: ignore[arg-type]


def _claimed_item(text: str) -> str | None:
    """The item id a refused label claims (unverified: for messages and evidence only)."""
    from custody.labels import parse_unverified_label

    try:
        unverified = parse_unverified_label(text)
    except LabelError:
        return None
    return unverified.payload.item_id if unverified else None


def _state_problem(item: str, digest: str, k: Knowledge) -> tuple[str, dict[str, Any]] | None:
    expected = k.expected.get(item)
    if expected is not None and expected.label and expected.label != digest:
        return "label_mismatch", {}
    held = k.held.get(item)
    if held is not None and held.label and held.label != digest:
        return "label_mismatch", {}
    for past in k.history.get(item, []):
        if past["action"] == k.action.value and (k.action in INCOMING or k.action is Action.OPEN):
            reason = "already_opened" if k.action is Action.OPEN else "already_handed_over"
            return reason, {"when": past["time"], "where": past["id"].rsplit("-", 1)[0], "holder": k.unit}
    if held is not None and held.status in OPENED_STATES and k.action not in AFTER_OPENING - {Action.RECEIVE}:
        return "already_opened", {"holder": held.holder or "?"}
    if held is not None and k.action in INCOMING and expected is None and held.status != "in_transit":
        return "already_here", {"holder": held.holder or k.unit}
    return None
