"""Unit questions an investigation asks of the plan: tier, accountable unit, ground, county, route.

分级负责，属地管理: a secure room answers through the office it belongs to
(the county office for a county secure room, the city institute for the
city's); every other unit answers for itself. A unit's **ground** is the place
it stands on: its site, else its county, else itself; two scans on one ground
are one place (a county office and its secure room, a site and its rooms).
"""

from __future__ import annotations

import itertools

from custody.labels import ItemKind
from custody.plan import ExamPlan, UnitKind

#: Display order of the tiers, top down.
TIER_ORDER = ("printer", "city", "county", "zone", "site", "room", "grading", "unknown")

TIER_NAMES: dict[str, tuple[str, str]] = {
    "printer": ("印刷厂", "printer"),
    "city": ("市教育考试院", "city institute"),
    "county": ("县区中招办", "county/district office"),
    "zone": ("考区", "exam zone"),
    "site": ("考点", "exam site"),
    "room": ("考场", "exam room"),
    "grading": ("评卷点", "grading centre"),
    "unknown": ("计划外单位", "unit not in the plan"),
}

_TOKENS = itertools.count(1)
_GROUND_KINDS = (UnitKind.SITE, UnitKind.COUNTY, UnitKind.CITY, UnitKind.PRINTER, UnitKind.GRADING)


class Territory:
    """Answers from one plan, cached (the plan is immutable)."""

    def __init__(self, plan: ExamPlan):
        self.plan = plan
        #: names this territory in caches (an id() could be reused by a later object)
        self.token = next(_TOKENS)
        self._ground: dict[str, str] = {}
        self._pairs: dict[tuple[str | None, str | None], frozenset[str]] = {}
        self._accountable: dict[str, str] = {}
        self._county: dict[str, str | None] = {}
        self._route: dict[tuple[ItemKind, str], frozenset[str]] = {}
        self.printers = frozenset(u.code for u in plan.of_kind(UnitKind.PRINTER))
        self.cities = frozenset(u.code for u in plan.of_kind(UnitKind.CITY))
        self.gradings = frozenset(u.code for u in plan.of_kind(UnitKind.GRADING))
        self.city_secure_rooms = frozenset(u.code for u in plan.of_kind(UnitKind.SECURE_ROOM)
                                           if u.parent in self.cities)
        self._secure_rooms: dict[str, list[str]] = {}
        for u in plan.of_kind(UnitKind.SECURE_ROOM):
            if u.parent:
                self._secure_rooms.setdefault(u.parent, []).append(u.code)

    def known(self, code: str | None) -> bool:
        return code is not None and self.plan.has_unit(code)

    def name(self, code: str | None) -> str:
        if code is None:
            return ""
        return self.plan.unit(code).name if self.plan.has_unit(code) else code

    def accountable(self, code: str) -> str:
        """The unit that answers for what ``code`` holds: a secure room's parent, else itself."""
        found = self._accountable.get(code)
        if found is None:
            found = code
            if self.plan.has_unit(code):
                unit = self.plan.unit(code)
                if unit.kind is UnitKind.SECURE_ROOM and unit.parent:
                    found = unit.parent
            self._accountable[code] = found
        return found

    def tier(self, code: str) -> str:
        """``city``, ``county``, ``site``, ... of the accountable unit; ``unknown`` outside the plan."""
        code = self.accountable(code)
        if not self.plan.has_unit(code):
            return "unknown"
        return self.plan.unit(code).kind.value

    def grounds(self, a: str | None, b: str | None = None) -> frozenset[str]:
        """The grounds of one or two units (a scan's from and to), cached by the pair."""
        found = self._pairs.get((a, b))
        if found is None:
            found = self._pairs[(a, b)] = frozenset(self.ground(c) for c in (a, b) if c)
        return found

    def ground(self, code: str) -> str:
        found = self._ground.get(code)
        if found is None:
            found = code
            if self.plan.has_unit(code):
                found = next((u.code for u in self.plan.ancestors(code) if u.kind in _GROUND_KINDS), code)
            self._ground[code] = found
        return found

    def county(self, code: str) -> str | None:
        """The county/district office ``code`` is in (itself for a county), or None above or outside."""
        if code not in self._county:
            unit = self.plan.nearest(code, UnitKind.COUNTY) if self.plan.has_unit(code) else None
            self._county[code] = unit.code if unit else None
        return self._county[code]

    def counties(self) -> list[str]:
        return [u.code for u in self.plan.of_kind(UnitKind.COUNTY)]

    def city(self) -> str | None:
        return next(iter(sorted(self.cities)), None)

    def below(self, code: str) -> set[str]:
        """``code`` and every unit under it."""
        found, todo = set(), [code]
        while todo:
            current = todo.pop()
            if current in found:
                continue
            found.add(current)
            todo.extend(child.code for child in self.plan.children.get(current, []))
        return found

    def route(self, kind: ItemKind, destination: str) -> frozenset[str]:
        """Where an item may be: its destination, the units above it and their secure rooms, the
        printer, the city and its secure room; answer-card bundles also the grading centre; discs and
        backup papers also anything under their destination; answer keys only printer, city, the
        city's secure room and grading."""
        key = (kind, destination)
        if key not in self._route:
            base = self.printers | self.cities | self.city_secure_rooms
            if kind is ItemKind.ANSWER_KEY:
                units = set(base | self.gradings)
            elif not self.plan.has_unit(destination):
                units = set(base)
            else:
                line = {u.code for u in self.plan.ancestors(destination)}
                units = line | base | {r for u in line for r in self._secure_rooms.get(u, ())}
                if kind is ItemKind.ANSWER_CARD_BUNDLE:
                    units |= self.gradings
                if kind in (ItemKind.LISTENING_DISC, ItemKind.BACKUP_PAPER):
                    units |= self.below(destination)
            self._route[key] = frozenset(units)
        return self._route[key]
