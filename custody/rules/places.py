"""The ground of the rules: which units may hold an item, and which units are one place.

Tiered responsibility (分级负责，属地管理) as unit geometry over the plan's tree:

- an item's **destination path** is its destination unit and its ancestors,
  the secure rooms of those, the printer, the city institute and the city's
  secure room; answer-card bundles add the grading centre; listening discs and
  backup papers add everything under their destination (a disc is played in
  the site's rooms; backup papers go wherever their county sends them);
- an answer key's route is only the printer, the city, the city's secure room
  and the grading centre;
- a unit inside a county (its office, secure room, zones, sites, rooms) may
  handle only items destined inside that county; a unit inside a site only
  items destined to that site or its rooms (backup papers: any unit of their
  county);
- a unit's **ground** is the place it stands on: its site, else its county,
  else itself (city, printer, grading centre); a secure room or zone stands on
  its parent's ground.
"""

from __future__ import annotations

from collections.abc import Iterable

from custody.labels import ItemKind
from custody.plan import ExamPlan, UnitKind
from custody.rules.model import ItemInfo

_GROUND_KINDS = (UnitKind.SITE, UnitKind.COUNTY, UnitKind.CITY, UnitKind.PRINTER, UnitKind.GRADING)
#: A verdict not worked out yet (None is a verdict: the unit may handle the item).
_UNJUDGED = object()


class Geography:
    """Unit questions the rules ask, answered from one plan (cached: the plan is immutable)."""

    def __init__(self, plan: ExamPlan):
        self.plan = plan
        self.printers = frozenset(u.code for u in plan.of_kind(UnitKind.PRINTER))
        self.cities = frozenset(u.code for u in plan.of_kind(UnitKind.CITY))
        self.gradings = frozenset(u.code for u in plan.of_kind(UnitKind.GRADING))
        self.city_secure_rooms = frozenset(u.code for u in plan.of_kind(UnitKind.SECURE_ROOM)
                                           if u.parent in self.cities)
        self.key_route = self.printers | self.cities | self.city_secure_rooms | self.gradings
        self._secure_rooms: dict[str, list[str]] = {}
        for unit in plan.of_kind(UnitKind.SECURE_ROOM):
            if unit.parent is not None:
                self._secure_rooms.setdefault(unit.parent, []).append(unit.code)
        #: Every unit's ground, worked out once (a unit not in the plan stands on itself).
        self._grounds: dict[str, str] = {
            u.code: next((a.code for a in plan.ancestors(u.code) if a.kind in _GROUND_KINDS), u.code)
            for u in plan.units}
        self._nearest: dict[tuple[str, UnitKind], str | None] = {}
        self._paths: dict[tuple[ItemKind, str], frozenset[str]] = {}
        self._verdicts: dict[tuple[str, ItemKind, str], tuple[str, str, str] | None] = {}

    def known(self, code: str | None) -> bool:
        return code is not None and self.plan.has_unit(code)

    def kind(self, code: str) -> UnitKind | None:
        return self.plan.unit(code).kind if self.plan.has_unit(code) else None

    def name(self, code: str) -> str:
        """``name（code）`` for Chinese messages; the bare code for a unit not in the plan."""
        return f"{self.plan.unit(code).name}（{code}）" if self.plan.has_unit(code) else code

    def within(self, code: str, ancestor: str) -> bool:
        return self.plan.has_unit(code) and self.plan.has_unit(ancestor) and self.plan.is_within(code, ancestor)

    def ground(self, code: str) -> str:
        """The place ``code`` stands on: its site, else its county, else itself."""
        return self._grounds.get(code, code)

    def grounds(self, codes: Iterable[str]) -> set[str]:
        """The places ``codes`` stand on (:meth:`ground` of each): every scan asks it of the units the event
        names and the units the item was expected at."""
        known = self._grounds
        return {known.get(code, code) for code in codes}

    def nearest(self, code: str, kind: UnitKind) -> str | None:
        """The code of the nearest unit of ``kind`` at or above ``code`` (None if none, or unknown)."""
        key = (code, kind)
        if key not in self._nearest:
            unit = self.plan.nearest(code, kind) if self.plan.has_unit(code) else None
            self._nearest[key] = unit.code if unit is not None else None
        return self._nearest[key]

    def parent(self, code: str | None) -> str | None:
        return self.plan.unit(code).parent if code is not None and self.plan.has_unit(code) else None

    def _descendants(self, code: str) -> set[str]:
        found, todo = set(), [code]
        while todo:
            for child in self.plan.children.get(todo.pop(), []):
                found.add(child.code)
                todo.append(child.code)
        return found

    def path(self, info: ItemInfo) -> frozenset[str]:
        """The units where ``info`` may be: its destination path (see the module docstring)."""
        key = (info.kind, info.destination)
        if key not in self._paths:
            self._paths[key] = self._path(info.kind, info.destination)
        return self._paths[key]

    def _path(self, kind: ItemKind, destination: str) -> frozenset[str]:
        if kind is ItemKind.ANSWER_KEY:
            return self.key_route
        line = {u.code for u in self.plan.ancestors(destination)}
        units = line | {room for code in line for room in self._secure_rooms.get(code, ())}
        units |= self.printers | self.cities | self.city_secure_rooms
        if kind is ItemKind.ANSWER_CARD_BUNDLE:
            units |= self.gradings
        if kind in (ItemKind.LISTENING_DISC, ItemKind.BACKUP_PAPER):
            units |= self._descendants(destination)
        return frozenset(units)

    def judge_unit(self, code: str, info: ItemInfo) -> tuple[str, str, str] | None:
        """Whether ``info`` may be at unit ``code`` (see :meth:`_judge_unit`); remembered, as the plan is fixed."""
        key = (code, info.kind, info.destination)
        verdict = self._verdicts.get(key, _UNJUDGED)
        if verdict is _UNJUDGED:
            verdict = self._verdicts[key] = self._judge_unit(code, info)
        return verdict  # type: ignore[return-value]

    def judge_units(self, codes: tuple[str, ...], info: ItemInfo) -> tuple[tuple[str, str, str] | None, ...]:
        """:meth:`judge_unit` for each of ``codes`` (the units an event names). The tracker remembers these
        by the units and the item's kind and destination."""
        judge = self.judge_unit
        return tuple([judge(code, info) for code in codes])

    def _judge_unit(self, code: str, info: ItemInfo) -> tuple[str, str, str] | None:
        """Whether ``info`` may be at unit ``code``: None, or (alert code, English reason, Chinese reason).

        Only one verdict per unit: a breach of jurisdiction is not also reported as an unexpected place.
        Items whose destination is not in the plan are not judged here (there is no path to judge against).
        """
        if not self.plan.has_unit(info.destination):
            return None
        if info.kind is ItemKind.ANSWER_KEY:
            if code not in self.key_route:
                return ("answer_key_off_route",
                        f"answer keys go only to the printer, the city institute, its secure room and grading; "
                        f"{code} is none of these",
                        f"答案只能在印刷厂、市教育考试院及其保密室、评卷点之间流转，{self.name(code)}不在其列")
            return None
        if not self.plan.has_unit(code):
            return ("unexpected_place", f"{code} is not a unit of the exam plan", f"{code} 不是考试计划中的单位")
        county = self.nearest(code, UnitKind.COUNTY)
        if county is not None and self.nearest(info.destination, UnitKind.COUNTY) != county:
            return ("outside_jurisdiction",
                    f"{code} belongs to county {county}, but the item is destined for {info.destination}",
                    f"{self.name(code)}属{self.name(county)}管辖，而该物品发往{self.name(info.destination)}")
        site = self.nearest(code, UnitKind.SITE)
        if (site is not None and info.kind is not ItemKind.BACKUP_PAPER
                and self.nearest(info.destination, UnitKind.SITE) != site):
            return ("outside_jurisdiction",
                    f"{code} belongs to site {site}, but the item is destined for {info.destination}",
                    f"{self.name(code)}属{self.name(site)}，而该物品发往{self.name(info.destination)}")
        if code not in self.path(info):
            return ("unexpected_place",
                    f"{code} is not on the path of an item for {info.destination}",
                    f"{self.name(code)}不在发往{self.name(info.destination)}物品的规定路线上")
        return None

    def may_open_at(self, info: ItemInfo, place: str | None) -> bool:
        """Whether ``info`` may be opened at ``place``: its destination (a listening disc or a
        backup paper: its destination or anything under it)."""
        if place is None or not self.plan.has_unit(place):
            return False
        if info.kind in (ItemKind.LISTENING_DISC, ItemKind.BACKUP_PAPER):
            return self.within(place, info.destination)
        return place == info.destination
