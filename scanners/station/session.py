"""A handover session: who hands over to whom, what is expected, what was scanned, and the events it makes.

A :class:`HandoverSession` is fed the readings of each frame
(:meth:`~HandoverSession.observe`); it judges each new text once
(:func:`~scanners.station.verdict.judge_text`), sorts badges into the two sides
(双人), counts expected, scanned, missing and unexpected items (逐袋清点; a box
stands for the bundles packed in it), keeps refused scans as evidence, and
takes exceptions (seal damaged, count differs, items missing) with a reason.
:meth:`~HandoverSession.problems` says what still stops a confirm;
:meth:`~HandoverSession.event_drafts` gives the events to sign. The session
does no I/O: the station saves its :meth:`~HandoverSession.to_json` as a
draft after every change.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from custody.events import Action, Person, SealCondition
from custody.labels import ItemKind
from custody.rules.model import DEFAULT_TWO_PERSON, Sides
from scanners.decode import Reading
from scanners.station.caches import ExpectedEntry
from scanners.station.manifest import Manifest, is_manifest_text, verify_manifest
from scanners.station.messages import SIDES, problem_message
from scanners.station.verdict import Knowledge, Verdict, judge_text, text_sha256

OWN, OTHER = "own", "counterpart"

#: action -> (from_unit, to_unit, handing people, receiving people), each the station's own unit,
#: the counterpart, or nobody. Mirrors how the exam simulation records each action.
ROLES: dict[Action, tuple[str | None, str | None, str | None, str | None]] = {
    Action.RECEIVE: (OTHER, OWN, OTHER, OWN),
    Action.ARRIVE: (OTHER, OWN, OTHER, OWN),
    Action.RECEIVE_FOR_GRADING: (OTHER, OWN, OTHER, OWN),
    Action.RETURN: (OTHER, OWN, OTHER, OWN),
    Action.DISTRIBUTE: (OWN, OTHER, OWN, OTHER),
    Action.ISSUE: (OWN, OTHER, OWN, OTHER),
    Action.DEPART: (OWN, OTHER, OWN, OWN),
    Action.STORE: (OWN, OTHER, OWN, OWN),
    Action.TAKE_OUT: (OTHER, OWN, OWN, OWN),
    Action.OPEN: (OWN, OWN, None, OWN),
}
DEFAULT_ROLES = (OWN, OWN, OWN, OWN)
#: Actions a session can be run for (exceptions are recorded inside a session).
SESSION_ACTIONS = tuple(a for a in Action if not a.is_exception and a is not Action.PACK)
OUTGOING = frozenset({Action.DISTRIBUTE, Action.ISSUE, Action.DEPART})
MAX_PEOPLE = 2
UNEXPECTED = ("unexpected", "unexpected_no_list")


@dataclass
class ItemScan:
    item: str
    kind: str
    label_hash: str
    count: int
    seal: str | None
    box: str | None
    destination: str
    reason: str
    first_frame: str
    last_frame: str
    frames: int = 1


@dataclass
class BadgeScan:
    staff: str
    badge: str
    name: str
    unit: str
    side: str  # "handed", "received" or "together"


@dataclass
class Refusal:
    text_sha256: str
    reason: str
    item: str | None
    message: str
    message_en: str
    frame: str
    error: str | None


@dataclass(frozen=True)
class Outcome:
    """Something new to tell the user (and the JSON lines): one per newly seen text."""

    verdict: Verdict
    frame: str
    kind: str  # "item", "badge", "manifest", "refused", "other"
    side: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"type": "scan", "frame": self.frame, "what": self.kind, **self.verdict.as_json(),
                **({"side": self.side} if self.side else {})}


@dataclass(frozen=True)
class Marked:
    """A reading drawn on the picture: its corners, colour and a short tag."""

    polygon: tuple[tuple[float, float], ...]
    colour: str
    tag: str
    tag_en: str


@dataclass
class FrameView:
    marks: list[Marked]
    blurred: bool
    outcomes: list[Outcome]


@dataclass
class HandoverSession:
    id: str
    action: Action
    unit: str
    station: str
    counterpart: str | None
    knowledge: Knowledge
    expected_source: str = "none"  # "server", "manifest", "none"
    expected_fetched_at: str | None = None
    items: dict[str, ItemScan] = field(default_factory=dict)
    people: dict[str, BadgeScan] = field(default_factory=dict)
    refused: dict[str, Refusal] = field(default_factory=dict)
    others: set[str] = field(default_factory=set)
    manifests: list[str] = field(default_factory=list)
    seal_damaged: dict[str, str] = field(default_factory=dict)
    recounted: dict[str, tuple[int, str]] = field(default_factory=dict)
    missing_reason: str | None = None
    accept_unexpected: bool = False
    #: SHA-256 of the item labels the previous session at this desk recorded: still on the desk, in view,
    #: they are shown grey ("recorded by the previous handover"), neither counted nor kept as refusal evidence
    carried_over: set[str] = field(default_factory=set)
    _verdicts: dict[str, Verdict] = field(default_factory=dict, repr=False)
    _changed: bool = field(default=False, repr=False)

    # --- who is who -----------------------------------------------------------------

    @property
    def roles(self) -> tuple[str | None, str | None, str | None, str | None]:
        return ROLES.get(self.action, DEFAULT_ROLES)

    def _unit_of(self, role: str | None) -> str | None:
        if role is None:
            return None
        return self.unit if role == OWN else (self.counterpart or self.unit)

    @property
    def from_unit(self) -> str | None:
        return self._unit_of(self.roles[0])

    @property
    def to_unit(self) -> str | None:
        return self._unit_of(self.roles[1])

    @property
    def sides(self) -> Sides:
        return DEFAULT_TWO_PERSON.get(self.action, Sides.TOGETHER)

    def _side_for(self, unit: str) -> str | None:
        _, _, handed, received = self.roles
        if handed == received or handed is None:
            # one unit on both sides (or receivers only): its officers sign together
            parties = {self.unit} | ({self.counterpart} if self.counterpart and handed == received else set())
            return ("together" if handed is not None else "received") if unit in parties else None
        for side, role in (("handed", handed), ("received", received)):
            if self._unit_of(role) == unit:
                return side
        return None

    def side_people(self, side: str) -> list[BadgeScan]:
        return [p for p in self.people.values() if p.side == side]

    def handed_by(self) -> tuple[Person, ...]:
        if self.roles[2] is None:
            return ()
        return tuple(Person(p.staff, p.badge) for p in self.people.values() if p.side in ("handed", "together"))

    def received_by(self) -> tuple[Person, ...]:
        return tuple(Person(p.staff, p.badge) for p in self.people.values() if p.side in ("received", "together"))

    # --- scanning ---------------------------------------------------------------------

    def observe(self, frame: str | int, readings: Sequence[Reading], blurred: bool = False) -> FrameView:
        """Judge the readings of one frame; returns what to draw and what is new."""
        ref = str(frame)
        marks: list[Marked] = []
        outcomes: list[Outcome] = []
        in_frame: dict[str, int] = {}
        for r in readings:
            in_frame[r.text] = in_frame.get(r.text, 0) + 1
        for reading in readings:
            text = reading.text
            verdict = self._verdicts.get(text)
            if verdict is None or (in_frame[text] > 1 and verdict.kind not in (None, ItemKind.BADGE)
                                   and verdict.reason != "copy_in_view" and verdict.colour != "red"):
                outcome = self._first_sight(text, ref, copies=in_frame[text])
                verdict = outcome.verdict if outcome else self._verdicts[text]
                if outcome:
                    outcomes.append(outcome)
            else:
                self._seen_again(verdict, ref)
            marks.append(Marked(tuple(reading.polygon), verdict.colour, self._tag(verdict, "zh"),
                                self._tag(verdict, "en")))
        return FrameView(marks, blurred, outcomes)

    def _tag(self, verdict: Verdict, lang: str) -> str:
        head = verdict.item or ""
        if verdict.reason.startswith("badge_"):
            person = self.people.get(verdict.item or "")
            head = f"{verdict.details.get('name') or ''} {verdict.item}" if person else (verdict.item or "")
        # √ and × are in every CJK font (GB 2312); ✓ and ✗ are not in WenQuanYi
        short = {"zh": {"green": "√", "amber": "?", "red": "×", "grey": ""},
                 "en": {"green": "OK", "amber": "?", "red": "X", "grey": ""}}[lang][verdict.colour]
        label = f"{short} {head}".strip()
        if verdict.colour == "green":
            return label
        return " · ".join(part for part in (label, verdict.message(lang)) if part)

    def _seen_again(self, verdict: Verdict, ref: str) -> None:
        scan = self.items.get(verdict.item or "") if verdict.colour in ("green", "amber") else None
        if scan is not None:
            scan.last_frame = ref
            scan.frames += 1

    def _first_sight(self, text: str, ref: str, copies: int) -> Outcome | None:
        if is_manifest_text(text):
            return self.scan_manifest(text, ref)
        verdict = judge_text(text, self.knowledge)
        if text_sha256(text) in self.carried_over and verdict.kind is not ItemKind.BADGE:
            # this desk's last confirm recorded it a moment ago; the bags are simply still on the desk
            verdict = Verdict(text, "recorded_before", item=verdict.item, kind=verdict.kind,
                              details={"item": verdict.item})
            self._verdicts[text] = verdict
            return Outcome(verdict, ref, "other")
        if copies > 1 and verdict.item and verdict.kind is not ItemKind.BADGE and verdict.colour != "red":
            verdict = Verdict(text, "copy_in_view", item=verdict.item, kind=verdict.kind, label=verdict.label,
                              label_hash=verdict.label_hash, details={"item": verdict.item})
            self.items.pop(verdict.item or "", None)
        elif verdict.item and verdict.kind is not ItemKind.BADGE and verdict.colour in ("green", "amber") \
                and verdict.item in self.items:
            # the same item under another text was already taken: nothing new
            self._verdicts[text] = verdict
            return None
        if verdict.kind is ItemKind.BADGE and verdict.label is not None:
            verdict = self._badge(verdict)
        self._verdicts[text] = verdict
        self._changed = True
        if verdict.reason == "not_ours":
            self.others.add(text_sha256(text))
            return Outcome(verdict, ref, "other")
        if verdict.colour == "red":
            self.refused[text_sha256(text)] = Refusal(text_sha256(text), verdict.reason, verdict.item,
                                                      verdict.message("zh"), verdict.message("en"), ref, verdict.error)
            return Outcome(verdict, ref, "refused")
        if verdict.kind is ItemKind.BADGE:
            person = self.people.get(verdict.item or "")
            return Outcome(verdict, ref, "badge", person.side if person else None)
        assert verdict.label is not None and verdict.item is not None
        p = verdict.label.payload
        self.items[verdict.item] = ItemScan(verdict.item, p.kind.slug, verdict.label_hash or "", p.count, p.seal,
                                            p.parent_box, p.destination, verdict.reason, ref, ref)
        return Outcome(verdict, ref, "item")

    def _badge(self, verdict: Verdict) -> Verdict:
        assert verdict.label is not None
        p = verdict.label.payload
        details = {"staff": p.item_id, "name": p.holder_name or "", "unit": p.destination}
        if p.item_id in self.people:
            return Verdict(verdict.text, _badge_reason(self.people[p.item_id].side), item=p.item_id,
                           kind=ItemKind.BADGE, label=verdict.label, label_hash=verdict.label_hash, details=details)
        side = self._side_for(p.destination)
        if side is None:
            return Verdict(verdict.text, "badge_other_unit", item=p.item_id, kind=ItemKind.BADGE, label=verdict.label,
                           label_hash=verdict.label_hash, details=details)
        limit = MAX_PEOPLE * (2 if side == "together" else 1)
        if len(self.side_people(side)) >= limit:
            zh, en = SIDES[side]
            return Verdict(verdict.text, "badge_extra", item=p.item_id, kind=ItemKind.BADGE, label=verdict.label,
                           label_hash=verdict.label_hash, details={**details, "side": zh, "side_en": en, "n": limit})
        self.people[p.item_id] = BadgeScan(p.item_id, verdict.label_hash or "", p.holder_name or "", p.destination,
                                           side)
        return Verdict(verdict.text, _badge_reason(side), item=p.item_id, kind=ItemKind.BADGE, label=verdict.label,
                       label_hash=verdict.label_hash, details=details)

    def scan_manifest(self, text: str, ref: str) -> Outcome:
        """Verify a manifest QR text; if it is for this handover, its items join the expected list."""
        keyring = self.knowledge.keyring
        try:
            if keyring is None:
                raise ValueError("no key bundle to verify it with")
            manifest = verify_manifest(text, keyring)
        except Exception as exc:  # ManifestError, or no bundle
            verdict = Verdict(text, "manifest_invalid", details={"detail": str(exc)[:120]}, error=str(exc))
            self._verdicts[text] = verdict
            self.refused[text_sha256(text)] = Refusal(text_sha256(text), verdict.reason, None, verdict.message("zh"),
                                                      verdict.message("en"), ref, str(exc))
            self._changed = True
            return Outcome(verdict, ref, "refused")
        name = f"{manifest.id} {manifest.part}/{manifest.parts}"
        if not self._manifest_fits(manifest):
            verdict = Verdict(text, "manifest_other", details={"manifest": name, "from_unit": manifest.from_unit,
                                                               "to_unit": manifest.to_unit})
        else:
            self.load_manifest(manifest)
            verdict = Verdict(text, "manifest", details={"manifest": name, "n": len(manifest.items)})
        self._verdicts[text] = verdict
        self._changed = True
        return Outcome(verdict, ref, "manifest")

    def _manifest_fits(self, m: Manifest) -> bool:
        return m.to_unit == self.to_unit and (self.counterpart is None or m.from_unit == self.from_unit)

    def load_manifest(self, manifest: Manifest) -> None:
        """Add a verified manifest's items to the expected list (it replaces a list from nowhere)."""
        if self.expected_source == "none":
            self.knowledge.expected.clear()
        for i in manifest.items:
            self.knowledge.expected[i.item] = ExpectedEntry(item=i.item, kind=i.kind.slug, count=i.count,
                                                            label=i.label, box=i.box)
        self.knowledge.has_list = True
        self.expected_source = "manifest" if self.expected_source in ("none", "manifest") else "server+manifest"
        self.manifests.append(f"{manifest.id}#{manifest.part}")
        # items scanned before the list arrived are judged again
        for text, verdict in list(self._verdicts.items()):
            if verdict.reason in UNEXPECTED and verdict.item:
                again = judge_text(text, self.knowledge)
                self._verdicts[text] = again
                if verdict.item in self.items:
                    self.items[verdict.item].reason = again.reason

    # --- exceptions -------------------------------------------------------------------

    def mark_seal_damaged(self, item: str, reason: str) -> None:
        self.seal_damaged[item] = reason[:200]
        self._changed = True

    def record_count(self, item: str, count: int, reason: str) -> None:
        self.recounted[item] = (count, reason[:200])
        self._changed = True

    def mark_missing(self, reason: str) -> None:
        self.missing_reason = reason[:200]
        self._changed = True

    def set_accept_unexpected(self, accept: bool) -> None:
        self.accept_unexpected = accept
        self._changed = True

    def take_changed(self) -> bool:
        changed, self._changed = self._changed, False
        return changed

    # --- counting -----------------------------------------------------------------------

    def _top_level(self) -> list[ExpectedEntry]:
        expected = self.knowledge.expected
        return [e for e in expected.values() if not (e.box and e.box in expected)]

    def _bundles(self, entry: ExpectedEntry) -> int:
        contents = [e for e in self.knowledge.expected.values() if e.box == entry.item]
        if contents:
            return len(contents)
        return (entry.count or 0) if entry.kind == ItemKind.BOX.slug else 1

    def missing(self) -> list[ExpectedEntry]:
        """Expected items not scanned. None for an outgoing handover (distribute, depart, issue): its list is
        everything held here, and what is not scanned simply stays (the receiving side counts against the
        manifest); recording those as missing would be false."""
        if self.action in OUTGOING:
            return []
        return [e for e in self._top_level() if e.item not in self.items]

    def unexpected(self) -> list[ItemScan]:
        return [s for s in self.items.values() if s.reason in UNEXPECTED]

    def counts(self) -> dict[str, Any]:
        top = self._top_level()
        found = [e for e in top if e.item in self.items]
        return {"expected": len(top), "scanned": len(found), "missing": len(top) - len(found),
                "unexpected": len(self.unexpected()), "refused": len(self.refused),
                "bundles_expected": sum(self._bundles(e) for e in top),
                "bundles_scanned": sum(self._bundles(e) for e in found),
                "handed": len(self.side_people("handed")) + len(self.side_people("together")),
                "received": len(self.side_people("received")) + len(self.side_people("together"))}

    def people_needed(self) -> list[tuple[str, int, int]]:
        """(side, needed, have) for every side still short of people."""
        short = []
        together = self.side_people("together")
        if self.sides is Sides.EACH and self.roles[2] != self.roles[3]:
            for side in ("handed", "received"):
                have = len(self.side_people(side))
                if have < MAX_PEOPLE:
                    short.append((side, MAX_PEOPLE, have))
        elif self.sides is Sides.RECEIVERS or self.roles[2] is None:
            have = len(self.side_people("received")) + len(together)
            if have < MAX_PEOPLE:
                short.append(("received", MAX_PEOPLE, have))
        else:
            have = len(together) + len(self.side_people("handed")) + len(self.side_people("received"))
            if have < MAX_PEOPLE:
                short.append(("together", MAX_PEOPLE, have))
        return short

    def problems(self, lang: str = "zh") -> list[tuple[str, str]]:
        """(code, message) for everything that stops a confirm; empty when it can be confirmed."""
        out = []
        for side, need, have in self.people_needed():
            zh, en = SIDES[side]
            out.append(("people", problem_message("people", lang, side=zh, side_en=en, need=need, have=have)))
        missing = self.missing()
        if missing and self.missing_reason is None:
            out.append(("missing", problem_message("missing", lang, n=len(missing))))
        if missing and self.missing_reason is not None:
            for e in missing:
                if not e.label:
                    out.append(("no_label", problem_message("no_label", lang, item=e.item)))
        if not self._recorded() and not (missing and self.missing_reason):
            out.append(("nothing", problem_message("nothing", lang)))
        return out

    def complete(self) -> bool:
        return not self.problems()

    # --- events -------------------------------------------------------------------------

    def _recorded(self) -> list[ItemScan]:
        chosen = [s for s in self.items.values() if s.reason not in UNEXPECTED or self.accept_unexpected]
        boxes = {s.item for s in chosen if s.kind == ItemKind.BOX.slug}
        # a box's event moves what is packed in it: its contents are not recorded twice
        return [s for s in chosen if not (s.box and s.box in boxes)]

    def event_drafts(self, now: datetime) -> list[dict[str, Any]]:
        """The events of this session (make_event keyword arguments without ``id``)."""
        common = {"action": self.action, "station": self.station, "station_time": now,
                  "from_unit": self.from_unit, "to_unit": self.to_unit,
                  "handed_by": self.handed_by(), "received_by": self.received_by()}
        drafts: list[dict[str, Any]] = []
        for s in self._recorded():
            damaged = self.seal_damaged.get(s.item)
            recount = self.recounted.get(s.item)
            reasons = [r for r in (damaged, recount[1] if recount else None) if r]
            drafts.append({**common, "item": s.item, "label": s.label_hash, "seal_number": s.seal,
                           "seal_condition": SealCondition.DAMAGED if damaged else SealCondition.INTACT,
                           "count": recount[0] if recount else s.count,
                           "reason": "; ".join(reasons)[:200] or None,
                           "note": "not on the expected list" if s.reason in UNEXPECTED else None})
            if recount:
                drafts.append({**common, "action": Action.COUNT_MISMATCH, "item": s.item, "label": s.label_hash,
                               "seal_number": s.seal, "seal_condition": None, "count": recount[0],
                               "reason": recount[1]})
        if self.missing_reason:
            for e in self.missing():
                if e.label:
                    drafts.append({**common, "action": Action.MISSING, "item": e.item, "label": e.label,
                                   "seal_number": e.seal, "seal_condition": None, "count": None,
                                   "reason": self.missing_reason})
        return drafts

    def recorded_texts(self) -> set[str]:
        """SHA-256 of the label texts of the items this session records (for the next session's carry-over)."""
        recorded = {s.item for s in self._recorded()}
        return {text_sha256(text) for text, v in self._verdicts.items()
                if v.item in recorded and v.kind is not ItemKind.BADGE and v.colour in ("green", "amber")}

    def summary(self) -> dict[str, Any]:
        recorded = {s.item for s in self._recorded()}
        return {"session": self.id, "action": self.action.value, "counterpart": self.counterpart,
                "from_unit": self.from_unit, "to_unit": self.to_unit, "expected_source": self.expected_source,
                "counts": self.counts(), "recorded": sorted(recorded),
                "unexpected_not_recorded": sorted(s.item for s in self.unexpected() if s.item not in recorded),
                "missing": sorted(e.item for e in self.missing()), "missing_reason": self.missing_reason,
                "seal_damaged": self.seal_damaged, "recounted": {k: list(v) for k, v in self.recounted.items()},
                "refused": [{"reason": r.reason, "item": r.item, "frame": r.frame} for r in self.refused.values()],
                "people": {p.staff: p.side for p in self.people.values()}, "manifests": self.manifests}

    # --- drafts -------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "action": self.action.value, "unit": self.unit, "station": self.station,
                "counterpart": self.counterpart, "expected_source": self.expected_source,
                "expected_fetched_at": self.expected_fetched_at,
                "expected": [e.as_json() for e in self.knowledge.expected.values()],
                "has_list": self.knowledge.has_list,
                "items": [asdict(s) for s in self.items.values()], "people": [asdict(p) for p in self.people.values()],
                "refused": [asdict(r) for r in self.refused.values()], "manifests": self.manifests,
                "seal_damaged": self.seal_damaged, "recounted": {k: list(v) for k, v in self.recounted.items()},
                "missing_reason": self.missing_reason, "accept_unexpected": self.accept_unexpected,
                "carried_over": sorted(self.carried_over), "saved": time.time()}

    @classmethod
    def from_json(cls, data: dict[str, Any], knowledge: Knowledge) -> HandoverSession:
        knowledge.expected = {e["item"]: ExpectedEntry.from_json(e) for e in data["expected"]}
        knowledge.has_list = bool(data.get("has_list"))
        session = cls(data["id"], Action(data["action"]), data["unit"], data["station"], data.get("counterpart"),
                      knowledge, data.get("expected_source", "none"), data.get("expected_fetched_at"))
        session.items = {s["item"]: ItemScan(**s) for s in data["items"]}
        session.people = {p["staff"]: BadgeScan(**p) for p in data["people"]}
        session.refused = {r["text_sha256"]: Refusal(**r) for r in data["refused"]}
        session.manifests = list(data.get("manifests", []))
        session.seal_damaged = dict(data.get("seal_damaged", {}))
        session.recounted = {k: (int(v[0]), str(v[1])) for k, v in data.get("recounted", {}).items()}
        session.missing_reason = data.get("missing_reason")
        session.accept_unexpected = bool(data.get("accept_unexpected"))
        session.carried_over = set(data.get("carried_over", []))
        return session


def _badge_reason(side: str) -> str:
    return {"handed": "badge_handing", "received": "badge_receiving"}.get(side, "badge_both")


Clock = Callable[[], datetime]
