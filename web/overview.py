"""The exam-day overview behind the dashboard: where every bundle is, what is overdue.

Pure reading: item rows and custody states in, counts and lists out. An item
with no stored state is still at the printer, as issued (the custody rules'
initial state). Only items bound for units in the scope are counted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from custody.labels import ItemKind
from store.instance import Instance
from store.models import Item, Subject
from web.scope import Scope, UnitTree
from web.settings import Deadlines

#: Kinds that go out to the exam rooms and must be at their site before the session.
TO_SITE = {ItemKind.PAPER_BUNDLE.slug, ItemKind.ANSWER_CARD_BUNDLE.slug, ItemKind.LISTENING_DISC.slug}
#: Kinds that must reach the grading centre after the session.
TO_GRADING = {ItemKind.ANSWER_CARD_BUNDLE.slug, ItemKind.ANSWER_KEY.slug}
AT_OR_PAST_SITE = {"opened", "sealed", "returned", "grading", "graded", "archived", "destroyed"}
AT_GRADING = {"grading", "graded", "archived", "destroyed"}


@dataclass(frozen=True)
class ItemRow:
    item_id: str
    kind: str
    subject: str
    destination: str
    count: int
    seal: str | None
    parent_box: str | None


@dataclass(frozen=True)
class SubjectRow:
    code: str
    name: str
    name_en: str
    starts_at: datetime
    ends_at: datetime


@dataclass
class Overview:
    subjects: list[SubjectRow]
    by_stage: dict[str, Counter[str]] = field(default_factory=dict)
    by_tier: dict[str, Counter[str]] = field(default_factory=dict)
    stages: list[str] = field(default_factory=list)
    total: int = 0
    overdue: list[dict[str, Any]] = field(default_factory=list)


def load_items(instance: Instance, exam: str) -> list[ItemRow]:
    with instance.db.session() as s:
        rows = s.execute(select(Item.item_id, Item.kind, Item.subject, Item.destination, Item.count, Item.seal,
                                Item.parent_box).where(Item.exam == exam).order_by(Item.id)).all()
    return [ItemRow(r[0], ItemKind(r[1]).slug, r[2], r[3], r[4], r[5], r[6]) for r in rows]


def load_subjects(instance: Instance, exam: str) -> list[SubjectRow]:
    with instance.db.session() as s:
        rows = s.scalars(select(Subject).where(Subject.exam == exam).order_by(Subject.starts_at, Subject.id)).all()
    return [SubjectRow(r.code, r.name, r.name_en, r.starts_at, r.ends_at) for r in rows]


def status_of(state: dict[str, Any] | None) -> str:
    return str(state.get("status", "issued")) if state else "issued"


def tier_of(state: dict[str, Any] | None, tree: UnitTree) -> str:
    if not state:
        return "printer"
    if state.get("status") == "in_transit":
        return "in_transit"
    return tree.tier(state.get("holder"))


def reached_site(item: ItemRow, state: dict[str, Any] | None, tree: UnitTree) -> bool:
    if not state:
        return False
    if state.get("opened_at") or state.get("status") in AT_OR_PAST_SITE:
        return True
    site = tree.nearest(item.destination, "site") or item.destination
    holder = state.get("holder")
    return holder is not None and state.get("status") != "in_transit" and (
        holder == site or site in tree.ancestors(holder))


def build_overview(items: list[ItemRow], states: dict[str, dict[str, Any]], subjects: list[SubjectRow],
                   scope: Scope, tree: UnitTree, now: datetime, deadlines: Deadlines, *,
                   boxes: bool = False, overdue_limit: int = 200) -> Overview:
    view = Overview(subjects=subjects)
    by_code = {s.code: s for s in subjects}
    seen_stages: set[str] = set()
    overdue: list[dict[str, Any]] = []
    for item in items:
        if not scope.allows(item.destination):
            continue
        if (item.kind == "box") != boxes:
            continue
        state = states.get(item.item_id)
        status = status_of(state)
        seen_stages.add(status)
        view.by_stage.setdefault(item.subject, Counter())[status] += 1
        view.by_tier.setdefault(item.subject, Counter())[tier_of(state, tree)] += 1
        view.total += 1
        subject = by_code.get(item.subject)
        if subject is None:
            continue
        late = _overdue(item, state, subject, tree, now, deadlines)
        if late is not None:
            deadline, why = late
            overdue.append({"item": item.item_id, "kind": item.kind, "subject": item.subject,
                            "destination": item.destination, "deadline": deadline, "why": why, "status": status,
                            "holder": state.get("holder") if state else None})
    from web.names import STAGE_ORDER

    view.stages = [s for s in STAGE_ORDER if s in seen_stages]
    overdue.sort(key=lambda o: (o["deadline"], o["item"]))
    view.overdue = overdue[:overdue_limit]
    view.overdue_total = len(overdue)  # type: ignore[attr-defined]
    return view


def _overdue(item: ItemRow, state: dict[str, Any] | None, subject: SubjectRow, tree: UnitTree, now: datetime,
             deadlines: Deadlines) -> tuple[datetime, str] | None:
    if item.kind in TO_GRADING:
        deadline = subject.ends_at + deadlines.at_grading_after_end
        if now > deadline and status_of(state) not in AT_GRADING:
            return deadline, "not_at_grading"
    if item.kind in TO_SITE:
        deadline = subject.starts_at - deadlines.at_site_before_start
        if now > deadline and (status_of(state) == "missing" or not reached_site(item, state, tree)):
            return deadline, "not_at_site"
    return None
