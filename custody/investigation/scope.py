"""Scope and backup plan (锁定失、泄密科目和范围): which areas switch to the backup paper (副题).

The rule, from the emergency plan (洪考院中字〔2017〕16号, 四, 情况二/情况三):

- Scenario 2 (spread widely): "在查清失、泄密范围内的地区启用副题" — the areas inside the
  ascertained scope of the leak use the backup paper; after the exam, the subject is void there.
  The plan's unit of area is the county/district (分级负责，属地管理: each 县区中招办 answers for
  its own ground, and backup papers are stocked per county). So the presumptive scope is the
  **county/district of every unit that held the leaked material before the leak** (secure rooms,
  zones, sites and rooms count for their county), **plus the county of the unit where the leak was
  found**. A city-level holder (the city institute, its secure room, the printer, grading) pins no
  county: if the leak is traced there, the area is the whole city. With no item or unit known,
  every bundle of the subject is in question and the area is every county that sits the subject.
- Scenario 3 (sold or published): the exam is postponed (before) or void (after) in the whole area
  of the institute: **every county/district of the city** that sits the subject; backup papers are
  prepared for all of them.

Before or after is decided at the leak time (else the report's time) against the subject's start.
Backup papers are those of the subject destined to the counties of the area: their papers (the
label count), where they are now (their custody), and whether their own custody is clean (no gap,
no critical or warning anomaly, seal never broken, never opened).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from custody.investigation.model import CONTENT_KINDS, CRITICAL, WARNING, ItemCustody
from custody.investigation.territory import Territory
from custody.labels import ItemKind
from custody.plan import Subject, UnitKind


@dataclass(frozen=True)
class Area:
    county: str
    candidates: int
    why: tuple[str, ...]
    why_zh: tuple[str, ...]


@dataclass(frozen=True)
class BackupStock:
    item: str
    county: str
    papers: int
    candidates: int
    holder: str | None
    status: str
    since: datetime | None
    clean: bool
    problems: tuple[str, ...] = ()
    problems_zh: tuple[str, ...] = ()


@dataclass(frozen=True)
class Scope:
    timing: str  # "before" or "after" the subject's start
    localised: bool
    scenario2: tuple[Area, ...]
    scenario3: tuple[Area, ...]
    backups2: tuple[BackupStock, ...]
    backups3: tuple[BackupStock, ...]
    city_level_holders: tuple[str, ...] = ()
    missing_backups: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    notes_zh: tuple[str, ...] = ()
    orders: tuple[dict[str, object], ...] = field(default=(), hash=False)

    @property
    def papers2(self) -> int:
        return sum(b.papers for b in self.backups2)

    @property
    def papers3(self) -> int:
        return sum(b.papers for b in self.backups3)


def _candidates(territory: Territory, subject: Subject) -> dict[str, int]:
    plan = territory.plan
    out: dict[str, int] = {}
    for room in plan.of_kind(UnitKind.ROOM):
        if room.subjects and subject.code not in room.subjects:
            continue
        county = territory.county(room.code)
        if county:
            out[county] = out.get(county, 0) + room.candidates
    return out


def _stock(c: ItemCustody, county: str, candidates: int) -> BackupStock:
    problems, problems_zh = [], []
    for g in c.gaps:
        problems.append(f"gap: {g.message}")
        problems_zh.append(f"空档：{g.message_zh}")
    for a in c.anomalies:
        if a.severity in (CRITICAL, WARNING):
            problems.append(f"{a.code}: {a.message}")
            problems_zh.append(f"{a.code}：{a.message_zh}")
    opened = any(w.kind == "opened" for w in c.windows)
    if opened:
        problems.append("it was opened")
        problems_zh.append("已启封")
    current = c.current
    clean = not problems
    return BackupStock(c.item.item_id, county, c.item.count, candidates, current.unit if current else None,
                       current.kind if current else "never scanned", current.start if current else None, clean,
                       tuple(problems), tuple(problems_zh))


def backup_paper_scope(subject: Subject, territory: Territory, custodies: Sequence[ItemCustody], *,
                       focus: Sequence[ItemCustody], leaked_unit: str | None, leak_time: datetime | None,
                       when: datetime, localised: bool, orders: Sequence[dict[str, object]] = ()) -> Scope:
    """The areas of scenarios 2 and 3 and the backup papers they need (rule: the module docstring).

    ``focus`` are the items known or presumed leaked (all the subject's items when nothing more is
    known: then ``localised`` is False); ``leaked_unit`` where the leak was found.
    """
    candidates = _candidates(territory, subject)
    sitting = [c for c in territory.counties() if candidates.get(c)]
    why: dict[str, list[tuple[str, str]]] = {}
    city_level: dict[str, None] = {}

    def add(county: str, en: str, zh: str) -> None:
        reasons = why.setdefault(county, [])
        if (en, zh) not in reasons:
            reasons.append((en, zh))

    if localised:
        for c in focus:
            if c.item.kind not in CONTENT_KINDS:
                continue
            for w in c.windows:
                if leak_time is not None and w.start > leak_time:
                    continue
                county = territory.county(w.accountable)
                if county is None:
                    city_level[w.accountable] = None
                    continue
                add(county, f"{w.accountable} held {c.item.item_id}", f"{territory.name(w.accountable)}曾保管"
                    f" {c.item.item_id}")
            dest = territory.county(c.item.destination)
            if dest and c.item.kind is not ItemKind.BACKUP_PAPER:
                add(dest, f"{c.item.item_id} is destined for {c.item.destination}",
                    f"{c.item.item_id} 发往{territory.name(c.item.destination)}")
        if leaked_unit:
            county = territory.county(leaked_unit)
            if county:
                add(county, f"the leak was found at {leaked_unit}", f"泄密发现于{territory.name(leaked_unit)}")
            else:
                city_level[leaked_unit] = None
    else:
        for county in sitting:
            add(county, "no leaked item or unit is known yet: every bundle of the subject is in question",
                "尚未确定泄密物品或单位，该科目全部试卷均在调查范围内")
    order = {c: i for i, c in enumerate(territory.counties())}
    area2 = tuple(Area(c, candidates.get(c, 0), tuple(e for e, _ in why[c]), tuple(z for _, z in why[c]))
                  for c in sorted(why, key=lambda c: (order.get(c, len(order)), c)))
    city = territory.city() or ""
    area3 = tuple(Area(c, candidates.get(c, 0), (f"every county/district of {city} that sits {subject.code}",),
                       (f"{territory.name(city)}所辖全部考区",)) for c in sitting)
    backups = {territory.county(c.item.destination) or c.item.destination: c for c in custodies
               if c.item.kind is ItemKind.BACKUP_PAPER}
    stocks = {county: _stock(c, county, candidates.get(county, 0)) for county, c in backups.items()}
    missing = tuple(c for c in sitting if c not in stocks)
    timing = "before" if (leak_time or when) < subject.starts_at else "after"
    notes, notes_zh = [], []
    if city_level:
        units = ", ".join(city_level)
        notes.append(f"the material was also held at city level ({units}); if the leak is traced there, the area "
                     "of scenario 2 is the whole city")
        notes_zh.append(f"该物品亦曾由市级单位（{'、'.join(territory.name(u) for u in city_level)}）保管；"
                        "若泄密源于市级，情况二的范围为全市")
    for county in missing:
        notes.append(f"no backup paper of {subject.code} is recorded for {county}")
        notes_zh.append(f"{territory.name(county)}没有登记{subject.name}副题")
    return Scope(timing, localised, area2, area3,
                 tuple(stocks[a.county] for a in area2 if a.county in stocks),
                 tuple(stocks[a.county] for a in area3 if a.county in stocks),
                 tuple(city_level), missing, tuple(notes), tuple(notes_zh), tuple(orders))
