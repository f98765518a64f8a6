"""A simulated exam: stations, staff and every handover from the printer to the grading centre.

Used by ``custody demo`` and by the benchmarks. It drives the real system
end to end: station keys registered in the key registry, staff badges,
events signed by the stations and submitted to the ledger, which verifies,
chains, judges and checkpoints them. Times are those of the sample exam
(June 2017); the ledger's clock follows the simulation.

Realistic exceptions are planted: a box whose seal is found damaged at a
county secure room, an answer-card bundle short of cards (absent candidates),
and an exam site whose station was offline on the first exam morning and synced its
scans hours later.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from custody.events import Action, Person, SealCondition, make_event, sign_event
from custody.keyring import Role
from custody.labels import ItemKind, cose_from_text
from custody.plan import LOCAL_TZ, ExamPlan, UnitKind
from store.instance import Instance
from store.models import Item, Station
from store.models import Person as PersonRow

PRINTER, CITY, CITY_BMS, GRADING = "36-YS", "3601", "3601-BMS", "3601-PJ"
#: When the simulated institute set up: keys, stations, plan (all before the labels are signed).
SETUP_AT = datetime(2017, 5, 2, 9, 0, tzinfo=LOCAL_TZ)
STATIONS_AT = datetime(2017, 5, 20, 9, 0, tzinfo=LOCAL_TZ)
LABELS_AT = datetime(2017, 6, 1, 9, 0, tzinfo=LOCAL_TZ)


def station_code(unit: str) -> str:
    return f"ST-{unit}"


def register_stations(instance: Instance, plan: ExamPlan, now: datetime) -> dict[str, Any]:
    """A station (desk, webcam, key) for every unit that hands over; returns their signers."""
    handing = [u for u in plan.units if u.kind in (UnitKind.PRINTER, UnitKind.CITY, UnitKind.COUNTY,
                                                    UnitKind.SITE, UnitKind.ROOM, UnitKind.GRADING)]
    signers = {}
    with instance.db.session() as s:
        existing = set(s.scalars(select(Station.code)))
    new_rows = []
    for unit in handing:
        code = station_code(unit.code)
        if code not in existing:
            key = instance.keys.create(Role.STATION, code, now)
            new_rows.append(Station(code=code, unit=unit.code, name=f"{unit.name}交接台", kid=key.kid_hex,
                                    registered_at=now))
        signers[code] = instance.keys.signer(Role.STATION, code, now)
    if new_rows:
        with instance.db.write_session() as s:
            s.add_all(new_rows)
    return signers


@dataclass
class _Plan:
    """The events to send, each with the time it reaches the server."""

    events: list[tuple[datetime, datetime, str, dict[str, Any]]] = field(default_factory=list)
    seq: dict[str, int] = field(default_factory=dict)


class ExamSimulation:
    """Builds and sends every handover of an exam."""

    def __init__(self, instance: Instance, plan: ExamPlan, signers: dict[str, Any]):
        self.instance = instance
        self.plan = plan
        self.signers = signers
        with instance.db.session() as s:
            self.items = {i.item_id: i for i in s.scalars(select(Item).where(Item.exam == plan.exam))}
            people = s.scalars(select(PersonRow)).all()
        self.badges: dict[str, list[Person]] = {}
        for p in people:
            if p.badge_text:
                cose = cose_from_text(p.badge_text)
                assert cose is not None
                self.badges.setdefault(p.unit, []).append(Person(p.staff_id, hashlib.sha256(cose).hexdigest()))
        self.label_hash = {}
        for item in self.items.values():
            if item.label_text:
                cose = cose_from_text(item.label_text)
                assert cose is not None
                self.label_hash[item.item_id] = hashlib.sha256(cose).hexdigest()
        self.out = _Plan()
        self.county_of = {u.code: (plan.nearest(u.code, UnitKind.COUNTY) or u).code for u in plan.units}

    def staff(self, unit: str) -> tuple[Person, ...]:
        return tuple(self.badges.get(unit, ())[:2])

    def _event(self, at: datetime, item: str, action: Action, station_unit: str, *, frm: str | None = None,
               to: str | None = None, handed: str | None = None, received: str | None = None,
               seal: SealCondition = SealCondition.INTACT, count: int | None = None, reason: str | None = None,
               delay: timedelta = timedelta(seconds=20)) -> None:
        row = self.items[item]
        station = station_code(station_unit)
        n = self.out.seq.get(station, 0) + 1
        self.out.seq[station] = n
        raw = make_event(
            id=f"{station}-{n:07d}", item=item, label=self.label_hash[item], action=action, station=station,
            station_time=at, from_unit=frm, to_unit=to,
            handed_by=self.staff(handed) if handed else (), received_by=self.staff(received) if received else (),
            seal_number=row.seal, seal_condition=seal, count=row.count if count is None else count, reason=reason)
        self.out.events.append((at + delay, at, station, raw))

    def build(self) -> None:
        """Every handover of the exam, in the order they happen."""
        plan, items = self.plan, self.items
        boxes = [i for i in items.values() if i.kind == ItemKind.BOX]
        contents: dict[str, list[Item]] = {}
        for i in items.values():
            if i.parent_box:
                contents.setdefault(i.parent_box, []).append(i)
        arrive_city = datetime(2017, 6, 12, 10, 0, tzinfo=LOCAL_TZ)
        to_county = datetime(2017, 6, 16, 8, 0, tzinfo=LOCAL_TZ)
        tick = timedelta(seconds=3)
        damaged_box = boxes[len(boxes) // 3].item_id if boxes else None
        offline_site = plan.of_kind(UnitKind.SITE)[-1].code
        short_cards = next((i.item_id for i in items.values() if i.kind == ItemKind.ANSWER_CARD_BUNDLE), None)

        # 1. printer to the city, into the city secure room: boxes, answer keys, backup papers.
        top_level = [i for i in items.values() if i.kind in (ItemKind.BOX, ItemKind.ANSWER_KEY,
                                                               ItemKind.BACKUP_PAPER)]
        for n, item in enumerate(top_level):
            at = arrive_city + n * tick
            self._event(at, item.item_id, Action.RECEIVE, CITY, frm=PRINTER, to=CITY, handed=PRINTER, received=CITY)
            self._event(at + timedelta(minutes=30), item.item_id, Action.STORE, CITY, frm=CITY, to=CITY_BMS,
                        handed=CITY, received=CITY)

        # 2. city to the counties: boxes and backup papers, escorted.
        for n, item in enumerate(i for i in top_level if i.kind != ItemKind.ANSWER_KEY):
            county = self.county_of[item.destination]
            at = to_county + n * tick
            self._event(at, item.item_id, Action.TAKE_OUT, CITY, frm=CITY_BMS, to=CITY, handed=CITY, received=CITY)
            self._event(at + timedelta(minutes=5), item.item_id, Action.DEPART, CITY, frm=CITY, to=county,
                        handed=CITY, received=CITY)
            self._event(at + timedelta(hours=2), item.item_id, Action.RECEIVE, county, frm=CITY, to=county,
                        handed=CITY, received=county)
            seal = SealCondition.DAMAGED if item.item_id == damaged_box else SealCondition.INTACT
            self._event(at + timedelta(hours=2, minutes=20), item.item_id, Action.STORE, county, frm=county,
                        to=f"{county}-BMS", handed=county, received=county, seal=seal)

        # 3. exam days, subject by subject.
        for subject in plan.subjects:
            start, end = subject.starts_at.astimezone(LOCAL_TZ), subject.ends_at.astimezone(LOCAL_TZ)
            for box in (b for b in boxes if b.subject == subject.code):
                site, county = box.destination, self.county_of[box.destination]
                offline = site == offline_site and subject == plan.subjects[0]
                late = timedelta(hours=5) if offline else timedelta(seconds=20)
                t = start - timedelta(hours=2)
                self._event(t, box.item_id, Action.TAKE_OUT, county, frm=f"{county}-BMS", to=county,
                            handed=county, received=county)
                self._event(t + timedelta(minutes=5), box.item_id, Action.DISTRIBUTE, county, frm=county, to=site,
                            handed=county, received=site)
                self._event(start - timedelta(minutes=75), box.item_id, Action.RECEIVE, site, frm=county, to=site,
                            handed=county, received=site, delay=late)
                self._event(start - timedelta(minutes=40), box.item_id, Action.UNPACK, site, frm=site, to=site,
                            handed=site, received=site, delay=late)
                for k, bundle in enumerate(sorted(contents.get(box.item_id, []), key=lambda i: i.item_id)):
                    room = bundle.destination
                    t = start - timedelta(minutes=25) + k * timedelta(seconds=2)
                    if bundle.kind == ItemKind.LISTENING_DISC:
                        self._event(start - timedelta(minutes=12), bundle.item_id, Action.OPEN, site, frm=site,
                                    to=site, handed=site, received=site, delay=late)
                        continue
                    self._event(t, bundle.item_id, Action.DISTRIBUTE, site, frm=site, to=room, handed=site,
                                received=room, delay=late)
                    before = timedelta(minutes=8 if bundle.kind == ItemKind.PAPER_BUNDLE else 12)
                    self._event(start - before, bundle.item_id, Action.OPEN, room, frm=room, to=room,
                                received=room, delay=late)
                    if bundle.kind != ItemKind.ANSWER_CARD_BUNDLE:
                        continue
                    cards = bundle.count - 1 if bundle.item_id == short_cards else bundle.count
                    reason = "1 名考生缺考" if cards != bundle.count else None
                    self._event(end + timedelta(minutes=10), bundle.item_id, Action.SEAL, room, frm=room, to=room,
                                handed=room, received=room, count=cards, delay=late)
                    if reason:
                        self._event(end + timedelta(minutes=11), bundle.item_id, Action.COUNT_MISMATCH, room,
                                    frm=room, to=room, handed=room, received=room, count=cards, reason=reason,
                                    delay=late)
                    self._event(end + timedelta(minutes=20), bundle.item_id, Action.RETURN, site, frm=room, to=site,
                                handed=room, received=site, count=cards, delay=late)
                    self._event(end + timedelta(minutes=40), bundle.item_id, Action.DEPART, site, frm=site,
                                to=county, handed=site, received=site, count=cards, delay=late)
                    self._event(end + timedelta(minutes=90), bundle.item_id, Action.RECEIVE, county, frm=site,
                                to=county, handed=site, received=county, count=cards)
                    self._event(end + timedelta(hours=3), bundle.item_id, Action.DEPART, county, frm=county,
                                to=GRADING, handed=county, received=county, count=cards)
                    self._event(end + timedelta(hours=5), bundle.item_id, Action.RECEIVE_FOR_GRADING, GRADING,
                                frm=county, to=GRADING, handed=county, received=GRADING, count=cards)
                    self._event(end + timedelta(days=3), bundle.item_id, Action.GRADE, GRADING, frm=GRADING,
                                to=GRADING, handed=GRADING, received=GRADING, count=cards)
            for key in (i for i in items.values() if i.kind == ItemKind.ANSWER_KEY and i.subject == subject.code):
                self._event(end, key.item_id, Action.TAKE_OUT, CITY, frm=CITY_BMS, to=CITY, handed=CITY,
                            received=CITY)
                self._event(end + timedelta(minutes=45), key.item_id, Action.RECEIVE_FOR_GRADING, GRADING,
                            frm=CITY, to=GRADING, handed=CITY, received=GRADING)

    def arrivals(self, size: int = 1000) -> Iterator[tuple[datetime, list[tuple[str, dict[str, Any]]]]]:
        """The events (station, unsigned event) grouped as they reach the server, each batch with the
        server's clock for it. A batch holds at most ``size`` events that arrive within a minute of its first.
        """
        ordered = sorted(self.out.events, key=lambda e: (e[0], e[1], e[2], e[3]["id"]))
        batch: list[tuple[datetime, datetime, str, dict[str, Any]]] = []
        for entry in ordered:
            if batch and (len(batch) >= size or entry[0] - batch[0][0] > timedelta(minutes=1)):
                yield max(e[0] for e in batch), [(station, raw) for _, _, station, raw in batch]
                batch = []
            batch.append(entry)
        if batch:
            yield max(e[0] for e in batch), [(station, raw) for _, _, station, raw in batch]

    def batches(self, size: int = 1000) -> Iterator[tuple[datetime, list[dict[str, Any]]]]:
        """:meth:`arrivals` as the stations' signed submissions."""
        for arrival, events in self.arrivals(size):
            yield arrival, [sign_event(raw, self.signers[station].kid, self.signers[station].sign)
                            for station, raw in events]


def run(instance: Instance, plan: ExamPlan, *, progress: Callable[[int], None] | None = None,
        batch_size: int = 1000) -> dict[str, int]:
    """Simulate the whole exam through the ledger; returns counts by result status."""
    from store.ledger import Ledger

    clock = {"now": LABELS_AT}
    ledger = Ledger(instance, clock=lambda: clock["now"])
    ledger.record_labels(plan.exam)
    simulation = ExamSimulation(instance, plan, register_stations(instance, plan, STATIONS_AT))
    simulation.build()
    counts: dict[str, int] = {}
    for arrival, batch in simulation.batches(batch_size):
        clock["now"] = arrival
        for result in ledger.submit(batch):
            counts[result["status"]] = counts.get(result["status"], 0) + 1
        if progress:
            progress(len(batch))
    ledger.close()  # stores the custody states, so the next process replays nothing
    return counts
