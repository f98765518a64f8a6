"""Factories for the custody-rules tests: a tiny exam, its crews, and a desk that signs nothing
but builds well-formed events and records them. No tests here."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from custody.events import Action, Event, Person, SealCondition, make_event, parse_event
from custody.plan import LOCAL_TZ, ExamPlan, plan_items
from custody.rules import ItemInfo, ItemState, Outcome, RuleConfig, Tracker
from custody.sample import sample_plan

PRINTER, CITY, CITY_BMS, GRADING = "36-YS", "3601", "3601-BMS", "3601-PJ"
COUNTY, COUNTY_BMS, SITE, ROOM, ROOM2 = "360102", "360102-BMS", "K001", "K001-01", "K001-02"
OTHER_COUNTY, OTHER_SITE, OTHER_ROOM = "360103", "K002", "K002-01"
BOX, PAPER, CARDS, PAPER2 = "YW-X-K001", "YW-P-K001-01", "YW-C-K001-01", "YW-P-K001-02"
KEY, BACKUP, DISC, DISC_BOX = "YW-A-3601-PJ", "YW-B-360102", "YY-D-K001", "YY-X-K001"


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """A local (Beijing) time in June 2017."""
    return datetime(2017, 6, day, hour, minute, second, tzinfo=LOCAL_TZ)


#: The YW (语文) session: 20 June 2017, 08:30-11:00.
YW_START, YW_END = at(20, 8, 30), at(20, 11, 0)
#: When the usual chain reaches the city (12 June) and the county (16 June).
AT_CITY, TO_COUNTY = at(12, 10), at(16, 8)


@cache
def tiny_plan() -> ExamPlan:
    return sample_plan("tiny")


@cache
def tiny_items() -> dict[str, ItemInfo]:
    return {p.item_id: ItemInfo(p.item_id, p.kind, p.subject, p.destination, p.count, p.seal, p.parent_box)
            for p in plan_items(tiny_plan())}


def badge(staff: str) -> str:
    return hashlib.sha256(f"badge:{staff}".encode()).hexdigest()


def label_hash(item: str, version: str = "") -> str:
    return hashlib.sha256(f"label:{item}{version}".encode()).hexdigest()


def crew(unit: str, n: int = 2) -> tuple[Person, ...]:
    """``n`` officers of ``unit``, with staff ids as in ``sample_people``."""
    return tuple(Person(f"{unit}-S{i}", badge(f"{unit}-S{i}")) for i in range(1, n + 1))


People = str | tuple[Person, ...] | None


def _people(who: People) -> tuple[Person, ...]:
    if who is None:
        return ()
    return crew(who) if isinstance(who, str) else who


class Desk:
    """Builds events for the tiny exam and records them on one tracker, in call order."""

    def __init__(self, config: RuleConfig | None = None, items: dict[str, ItemInfo] | None = None,
                 states: dict[str, ItemState] | None = None):
        self.plan = tiny_plan()
        self.items = dict(items if items is not None else tiny_items())
        self.tracker = Tracker(self.plan, self.items, config, states)
        self.serial = 0

    def event(self, item: str, action: Action, when: datetime, *, frm: str | None = None, to: str | None = None,
              handed: People = None, received: People = None, seal: str | None | bool = True,
              condition: SealCondition | None = SealCondition.INTACT, count: int | None = None,
              label: str | None = None, reason: str | None = None, box: str | None = None) -> Event:
        """An event; ``seal=True`` shows the label's own seal number, a string another, None none."""
        self.serial += 1
        info = self.items.get(item)
        number = (info.seal if info else None) if seal is True else (seal or None)
        if action.is_exception and reason is None:
            reason = "现场报告"
        raw: dict[str, Any] = make_event(
            id=f"EV-{self.serial:05d}", item=item, label=label or label_hash(item), action=action,
            station=f"ST-{to or frm or 'X'}", station_time=when, from_unit=frm, to_unit=to,
            handed_by=_people(handed), received_by=_people(received), seal_number=number,
            seal_condition=condition, count=count, reason=reason, box=box)
        return parse_event(raw)

    def do(self, item: str, action: Action, when: datetime, *, delay: timedelta = timedelta(seconds=20),
           **fields: Any) -> Outcome:
        """Record an event that reached the server ``delay`` after its station time."""
        event = self.event(item, action, when, **fields)
        return self.tracker.record(event, event.station_time + delay)

    def state(self, item: str) -> ItemState:
        return self.tracker.state(item)

    # --- the usual chains --------------------------------------------------------------

    def to_city(self, item: str, when: datetime = AT_CITY) -> list[Outcome]:
        """Printer to the city, into the city secure room."""
        return [self.do(item, Action.RECEIVE, when, frm=PRINTER, to=CITY, handed=PRINTER, received=CITY),
                self.do(item, Action.STORE, when + timedelta(minutes=30), frm=CITY, to=CITY_BMS, handed=CITY,
                        received=CITY)]

    def to_county(self, item: str, county: str = COUNTY, when: datetime = TO_COUNTY,
                  condition: SealCondition = SealCondition.INTACT) -> list[Outcome]:
        """City secure room to a county secure room, escorted; ``condition``: the seal seen at the store."""
        return [self.do(item, Action.TAKE_OUT, when, frm=CITY_BMS, to=CITY, handed=CITY, received=CITY),
                self.do(item, Action.DEPART, when + timedelta(minutes=5), frm=CITY, to=county, handed=CITY,
                        received=CITY),
                self.do(item, Action.RECEIVE, when + timedelta(hours=2), frm=CITY, to=county, handed=CITY,
                        received=county),
                self.do(item, Action.STORE, when + timedelta(hours=2, minutes=20), frm=county, to=f"{county}-BMS",
                        handed=county, received=county, condition=condition)]

    def to_site(self, box: str, site: str = SITE, county: str = COUNTY, start: datetime = YW_START) -> list[Outcome]:
        """Exam morning: the county takes the box out, distributes it, the site receives and unpacks it."""
        t = start - timedelta(hours=2)
        return [self.do(box, Action.TAKE_OUT, t, frm=f"{county}-BMS", to=county, handed=county, received=county),
                self.do(box, Action.DISTRIBUTE, t + timedelta(minutes=5), frm=county, to=site, handed=county,
                        received=site),
                self.do(box, Action.RECEIVE, start - timedelta(minutes=75), frm=county, to=site, handed=county,
                        received=site),
                self.do(box, Action.UNPACK, start - timedelta(minutes=40), frm=site, to=site, handed=site,
                        received=site)]

    def deliver_box(self, box: str = BOX, site: str = SITE, county: str = COUNTY,
                    start: datetime = YW_START) -> list[Outcome]:
        """A box from the printer to its site, unpacked there."""
        return self.to_city(box) + self.to_county(box, county) + self.to_site(box, site, county, start)

    def to_room(self, item: str, room: str = ROOM, site: str = SITE, start: datetime = YW_START,
                before: timedelta = timedelta(minutes=25)) -> Outcome:
        return self.do(item, Action.DISTRIBUTE, start - before, frm=site, to=room, handed=site, received=room)

    def open(self, item: str, when: datetime, room: str = ROOM, **fields: Any) -> Outcome:
        fields.setdefault("received", room)
        return self.do(item, Action.OPEN, when, frm=room, to=room, **fields)


def codes(outcomes: Outcome | list[Outcome]) -> list[str]:
    """Every alert code of one outcome or of several, in order."""
    if isinstance(outcomes, Outcome):
        outcomes = [outcomes]
    return [a.code for o in outcomes for a in o.alerts]
