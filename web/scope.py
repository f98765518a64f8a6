"""Jurisdiction: which units (and so which items, alerts, stations, people) a principal may see.

A principal bound to a unit sees that unit and every unit below it
(分级负责, 属地管理). Asking for anything outside is answered exactly as if
it did not exist (404), so that another county's items cannot even be probed.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import abort, g
from sqlalchemy import select

from store.instance import Instance
from store.models import Unit
from web.accounts import Principal


@dataclass(frozen=True)
class UnitInfo:
    code: str
    kind: str
    name: str
    parent: str | None


class UnitTree:
    """Every unit, with parent and children, read once per request."""

    def __init__(self, units: list[UnitInfo]):
        self.units = {u.code: u for u in units}
        self.children: dict[str, list[str]] = {}
        for u in units:
            if u.parent:
                self.children.setdefault(u.parent, []).append(u.code)
        for kids in self.children.values():
            kids.sort()

    @classmethod
    def load(cls, instance: Instance) -> UnitTree:
        with instance.db.session() as s:
            rows = s.execute(select(Unit.code, Unit.kind, Unit.name, Unit.parent)).all()
        return cls([UnitInfo(*r) for r in rows])

    def below(self, code: str) -> set[str]:
        found: set[str] = set()
        todo = [code]
        while todo:
            c = todo.pop()
            if c not in found:
                found.add(c)
                todo.extend(self.children.get(c, ()))
        return found

    def name(self, code: str | None) -> str:
        if code is None:
            return ""
        u = self.units.get(code)
        return u.name if u else code

    def kind(self, code: str | None) -> str | None:
        u = self.units.get(code or "")
        return u.kind if u else None

    def ancestors(self, code: str) -> list[str]:
        out, seen = [], set()
        u = self.units.get(code)
        while u is not None and u.parent and u.parent not in seen:
            seen.add(u.parent)
            out.append(u.parent)
            u = self.units.get(u.parent)
        return out

    def nearest(self, code: str, kind: str) -> str | None:
        for c in [code, *self.ancestors(code)]:
            if self.kind(c) == kind:
                return c
        return None

    def tier(self, code: str | None) -> str:
        """The tier answering for a holder: printer, city, county, site, room or grading."""
        if code is None:
            return "unknown"
        kind = self.kind(code)
        if kind == "secure_room" or kind == "zone":
            parent = self.units[code].parent
            return self.tier(parent) if parent else "unknown"
        return kind or "unknown"

    def roots(self) -> list[str]:
        return sorted(c for c, u in self.units.items() if not u.parent)


@dataclass(frozen=True)
class Scope:
    """The units a principal may see; ``units is None`` means all of them."""

    root: str | None
    units: frozenset[str] | None

    def allows(self, unit: str | None) -> bool:
        return self.units is None or (unit is not None and unit in self.units)

    @property
    def everything(self) -> bool:
        return self.units is None


def unit_tree(instance: Instance) -> UnitTree:
    tree: UnitTree | None = g.get("_custody_units")
    if tree is None:
        tree = g._custody_units = UnitTree.load(instance)
    return tree


def scope_of(principal: Principal, instance: Instance) -> Scope:
    if principal.is_admin:
        return Scope(None, None)
    if principal.unit is None:
        return Scope(None, frozenset())
    return Scope(principal.unit, frozenset(unit_tree(instance).below(principal.unit)))


def require_unit(scope: Scope, unit: str | None) -> None:
    """404 unless ``unit`` is inside the scope (never 403: that would confirm it exists)."""
    if not scope.allows(unit):
        abort(404)
