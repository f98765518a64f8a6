"""The tier summary (分级负责): per unit, what it held, how long before the start, by whom, what went
wrong there; ranked so that the likeliest points of exposure come first.

The score of a unit is a sum of documented parts (docs/investigation.md, "Ranking"), each listed
with its points as the reason for the rank:

- each **critical** anomaly code raised where the unit answers: 100, plus 25 for each further
  occurrence of the same code (at most 4 more);
- each **warning** code: 10, plus 2.5 for each further occurrence (at most 4 more);
- each **gap starting at the unit** (it was the last accountable holder before custody was lost):
  60, plus 2 per hour of the gap (at most ``gap_hours_cap`` hours);
- **exposure**: 10·log10(1 + item-hours), the hours the unit held items carrying the subject's
  questions or answers (paper bundles, listening discs, answer keys, backup papers) sealed,
  before the start (or the leak, if it was earlier), summed over those items.

An anomaly counts once per unit, whichever items it concerns (a box's alert is one finding).
Findings after the leak time, when it is known, cannot explain the leak and are not scored. Ties
are broken by tier (city before county before site ...) then by unit code, so the order is
deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from custody.investigation.model import CONTENT_KINDS, CRITICAL, WARNING, Anomaly, Gap, ItemCustody
from custody.investigation.territory import TIER_ORDER, Territory

CRITICAL_POINTS, CRITICAL_MORE = 100.0, 25.0
WARNING_POINTS, WARNING_MORE = 10.0, 2.5
MORE_CAP = 4
GAP_POINTS, GAP_PER_HOUR = 60.0, 2.0
EXPOSURE_SCALE = 10.0


@dataclass(frozen=True)
class Reason:
    points: float
    en: str
    zh: str


@dataclass(frozen=True)
class UnitSummary:
    unit: str
    tier: str
    items: tuple[str, ...]
    #: longest time the unit held any one of the items before the cut-off, in hours
    hours_before_start: float
    #: item-hours of content items (paper, disc, key, backup) held sealed before the cut-off
    item_hours: float
    people: tuple[str, ...]
    anomalies: tuple[Anomaly, ...]
    gaps: tuple[Gap, ...]
    score: float
    reasons: tuple[Reason, ...]
    first_held: datetime | None = None
    last_held: datetime | None = None
    rank: int = 0
    extra: dict[str, object] = field(default_factory=dict, hash=False)


@dataclass(eq=False)
class _Acc:
    items: dict[str, None] = field(default_factory=dict)
    hours: float = 0.0
    item_hours: float = 0.0
    people: dict[str, None] = field(default_factory=dict)
    crews: set[tuple[str, ...]] = field(default_factory=set)
    anomalies: dict[tuple[int, str], Anomaly] = field(default_factory=dict)
    gaps: list[Gap] = field(default_factory=list)
    first: datetime | None = None
    last: datetime | None = None


def _occurrences(points: float, more: float, n: int) -> float:
    return points + more * min(MORE_CAP, n - 1)


def score_unit(anomalies: Iterable[Anomaly], gaps: Iterable[Gap], item_hours: float, until: datetime,
               gap_hours_cap: float = 24.0) -> tuple[float, list[Reason]]:
    """The score of one unit and the reasons, largest part first (see the module docstring)."""
    reasons: list[Reason] = []
    by_code: dict[tuple[str, str], int] = {}
    for a in anomalies:
        if a.severity in (CRITICAL, WARNING):
            by_code[(a.severity, a.code)] = by_code.get((a.severity, a.code), 0) + 1
    for (severity, code), n in sorted(by_code.items()):
        if severity == CRITICAL:
            pts = _occurrences(CRITICAL_POINTS, CRITICAL_MORE, n)
            reasons.append(Reason(pts, f"critical anomaly {code} ×{n} where it answered",
                                  f"在其负责期间出现严重异常 {code} ×{n}"))
        else:
            pts = _occurrences(WARNING_POINTS, WARNING_MORE, n)
            reasons.append(Reason(pts, f"warning {code} ×{n}", f"警告 {code} ×{n}"))
    for g in gaps:
        hours = g.hours(until)
        pts = GAP_POINTS + GAP_PER_HOUR * min(gap_hours_cap, hours)
        reasons.append(Reason(pts, f"gap starting here ({g.code}, {hours:.1f} h with no accountable holder, "
                                   f"item {g.item})",
                              f"在此之后出现保管空档（{g.code}，{hours:.1f} 小时无人负责，物品 {g.item}）"))
    if item_hours > 0:
        pts = EXPOSURE_SCALE * math.log10(1 + item_hours)
        reasons.append(Reason(pts, f"held sealed paper/disc/key/backup items for {item_hours:.1f} item-hours "
                                   f"before the start",
                              f"开考前保管含试题/答案的物品共 {item_hours:.1f} 件·小时"))
    reasons.sort(key=lambda r: (-r.points, r.en))
    return round(sum(r.points for r in reasons), 1), reasons


def tier_summary(custodies: Sequence[ItemCustody], territory: Territory, *, until: datetime,
                 leak_time: datetime | None = None, gap_hours_cap: float = 24.0) -> list[UnitSummary]:
    """Every unit that held one of ``custodies``' items (or answers for one of their findings), ranked."""
    acc: dict[str, _Acc] = {}

    def of(unit: str) -> _Acc:
        found = acc.get(unit)
        if found is None:
            found = acc[unit] = _Acc()
        return found

    def count(w: Any) -> _Acc:
        a = acc.get(w.accountable)
        if a is None:
            a = acc[w.accountable] = _Acc()
        people = w.people
        if people and people not in a.crews:
            a.crews.add(people)
            a.people.update(dict.fromkeys(people))
        if a.first is None or w.start < a.first:
            a.first = w.start
        end = w.end or until
        if a.last is None or end > a.last:
            a.last = end
        return a

    # windows shared by the items of one box (ItemCustody.shared) are counted once, then each item
    # is added to the units that held them
    shared_units: dict[object, list[_Acc]] = {}
    for c in custodies:
        content = c.item.kind in CONTENT_KINDS
        item_id = c.item.item_id
        windows = c.windows
        if c.shared is not None:
            token, a0, b0 = c.shared
            units = shared_units.get(token)
            if units is None:
                units = shared_units[token] = list(dict.fromkeys(
                    count(w) for w in windows[a0:b0] if leak_time is None or w.start <= leak_time))
            for a in units:
                a.items[item_id] = None
            windows = windows[:a0] + windows[b0:]
        for w in windows:
            if leak_time is None or w.start <= leak_time:
                count(w).items[item_id] = None
        for unit, hours in c.hours_before_start.items():
            a = of(unit)
            if hours > a.hours:
                a.hours = hours
            if content:
                a.item_hours += hours
        for anomaly in c.anomalies:
            if anomaly.accountable is None:
                continue
            if leak_time is not None and anomaly.time is not None and anomaly.time > leak_time:
                continue
            of(anomaly.accountable).anomalies.setdefault((anomaly.index, anomaly.code), anomaly)
        for gap in c.gaps:
            if gap.after_accountable is None or (leak_time is not None and gap.start > leak_time):
                continue
            of(gap.after_accountable).gaps.append(gap)
    summaries = []
    for unit, a in acc.items():
        anomalies = sorted(a.anomalies.values(), key=lambda x: (x.index, x.code))
        gaps = sorted(a.gaps, key=lambda g: (g.start, g.item))
        score, reasons = score_unit(anomalies, gaps, a.item_hours, until, gap_hours_cap)
        summaries.append(UnitSummary(unit, territory.tier(unit), tuple(sorted(a.items)), round(a.hours, 2),
                                     round(a.item_hours, 2), tuple(a.people), tuple(anomalies), tuple(gaps), score,
                                     tuple(reasons), a.first, a.last))
    order = {t: i for i, t in enumerate(TIER_ORDER)}
    summaries.sort(key=lambda s: (-s.score, order.get(s.tier, len(order)), s.unit))
    for n, s in enumerate(summaries, start=1):
        object.__setattr__(s, "rank", n)  # set once, before anyone sees it
    return summaries
