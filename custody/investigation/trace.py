"""One item's custody, walked from its scans: windows, gaps and the investigation's own checks.

:func:`trace_item` merges the item's own scans with those of the box it is
packed in (from its label's ``parent_box``, or a ``pack``, until the box is
unpacked or opened, or the item is scanned on its own), in station-time order
(then leaf order), and walks them:

- a scan **links** to the custody so far when it happens on the holder's
  ground (or, in transit, on the ground it was sent to): custody moves as the
  action says (see :data:`TRANSITIONS` in docs/investigation.md);
- a scan that does not link opens a **gap** from the holder's last scan to it
  (``unlinked_move``; ``no_arrival`` if it was in transit), unless the scan
  after it links back to the holder: then custody never moved, and the scan
  was of the **same label somewhere else** (``cloned_label``); two unlinked
  places within ``clone_window`` of each other are flagged the same way;
- in transit longer than ``transit_limit`` at the report's time, with nothing
  since, is a ``no_arrival`` gap; a ``missing`` report opens a
  ``reported_missing`` gap until ``found``.
"""

from __future__ import annotations

import itertools
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from custody.investigation.model import (
    CRITICAL,
    INFO,
    WARNING,
    Anomaly,
    Gap,
    InvestigationConfig,
    ItemCustody,
    ItemRecord,
    Scan,
    StoredAlert,
    Window,
)
from custody.investigation.territory import Territory
from custody.labels import ItemKind
from custody.plan import LOCAL_TZ, Subject

REPORTS = frozenset({"missing", "found"})
NOTES = frozenset({"seal_damaged", "count_mismatch"})
NIGHT_ACTIONS = frozenset({"take_out", "unpack", "open"})
#: Actions whose ``from_unit`` held the item before the scan.
GIVING = frozenset({"receive", "arrive", "depart", "distribute", "return", "issue", "receive_for_grading", "store",
                    "take_out"})
EXPOSED_KINDS = frozenset({"held", "stored", "transit", "before_first_scan"})


def local(when: datetime) -> str:
    return when.astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M")


def _hours(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds() / 3600


class _Snapshot(NamedTuple):
    scalars: tuple[object, ...]
    people: tuple[str, ...]
    windows: int
    gaps: int
    anomalies: int
    indexes: int
    peeked: bool


class _Walk:
    def __init__(self, record: ItemRecord, territory: Territory, config: InvestigationConfig,
                 subject: Subject | None, stations: Mapping[str, str],
                 places: dict[int, frozenset[str]] | None = None):
        self.rec = record
        self.geo = territory
        self.cfg = config
        self.subject = subject
        self.stations = stations
        self.places = {} if places is None else places
        self.route = territory.route(record.kind, record.destination)
        self.peeked = False
        self.in_box: str | None = record.parent_box
        self.started = False
        self.holder: str | None = None
        self.kind = ""
        self.heading: str | None = None
        self.people: list[str] = []
        self.start: datetime | None = None
        self.start_index: int | None = None
        self.via: str | None = None
        self.last_time: datetime | None = None
        self.last_index: int | None = None
        self.expected_count = record.count
        self.missing_since: tuple[datetime, int] | None = None
        self.windows: list[Window] = []
        self.gaps: list[Gap] = []
        self.anomalies: list[Anomaly] = []
        self.indexes: list[int] = []

    _STATE = ("in_box", "started", "holder", "kind", "heading", "start", "start_index", "via", "last_time",
              "last_index", "missing_since")

    def snapshot(self) -> _Snapshot:
        """The walk so far, cheaply: its scalars, a copy of the people, and the lengths of its lists."""
        return _Snapshot(tuple(getattr(self, name) for name in self._STATE), tuple(self.people), len(self.windows),
                         len(self.gaps), len(self.anomalies), len(self.indexes), self.peeked)

    def resume(self, template: _Walk, snap: _Snapshot) -> None:
        """Continue from ``template`` 's state at ``snap`` (its lists are shared up to there, not copied)."""
        for name, value in zip(self._STATE, snap.scalars, strict=True):
            setattr(self, name, value)
        self.people = list(snap.people)
        self.windows = template.windows[:snap.windows]
        self.gaps = template.gaps[:snap.gaps]
        self.anomalies = template.anomalies[:snap.anomalies]
        self.indexes = template.indexes[:snap.indexes]

    # --- places ---------------------------------------------------------------------

    def _grounds(self, scan: Scan) -> frozenset[str]:
        return self.geo.grounds(scan.from_unit, scan.to_unit)

    def linked(self, scan: Scan) -> bool:
        if self.holder is None:
            return True
        places = self._grounds(scan)
        if not places:
            return True
        if self.geo.ground(self.holder) in places:
            return True
        heading = self.heading
        return self.kind == "transit" and heading is not None and self.geo.ground(heading) in places

    # --- windows --------------------------------------------------------------------

    def _close(self, end: datetime | None, end_index: int | None) -> None:
        if self.holder is None or self.start is None:
            return
        people = self.people
        crew = tuple(people) if len(people) <= 2 and (len(people) < 2 or people[0] != people[1]) \
            else tuple(dict.fromkeys(people))
        self.windows.append(Window(self.via or self.rec.item_id, self.holder, self.geo.accountable(self.holder),
                                   self.kind, self.start, end, self.start_index, end_index, crew,
                                   self.heading if self.kind == "transit" else None, self.via))

    def _hold(self, unit: str | None, kind: str, heading: str | None, people: Sequence[str], scan: Scan,
              via: str | None) -> None:
        if unit is None:
            unit = self.holder
        if unit is None:
            return
        if unit == self.holder and kind == self.kind and heading == self.heading:
            self.people.extend(people)
            return
        self._close(scan.time, scan.index)
        self.holder, self.kind, self.heading, self.people = unit, kind, heading, list(people)
        self.start, self.start_index, self.via = scan.time, scan.index, via

    def apply(self, scan: Scan, via: str | None) -> None:
        a = scan.action
        place = scan.place
        handed, received = scan.handed_by, scan.received_by
        if a == "depart" or (a in ("distribute", "return", "issue") and not received):
            self._hold(scan.from_unit or self.holder, "transit", scan.to_unit, handed + received, scan, via)
        elif a == "store":
            self._hold(scan.to_unit or place, "stored", None, handed + received, scan, via)
        elif a == "open" and via is None:
            self._hold(place, "opened", None, received or handed, scan, via)
        elif a == "missing":
            if self.missing_since is None:
                self.missing_since = (scan.time, scan.index)
        elif a == "found":
            self._end_missing(scan)
            self._hold(place, "held", None, received or handed, scan, via)
        elif a == "destroy":
            self._hold(place, "destroyed", None, received or handed, scan, via)
        elif a in NOTES or a == "pack":
            if self.holder is None:
                self._hold(place, "held", None, received or handed, scan, via)
        else:
            kind = "opened" if self.kind == "opened" and a != "seal" and via is None else "held"
            self._hold(scan.to_unit or place, kind, None, received or handed, scan, via)
        self.last_time, self.last_index = scan.time, scan.index
        if via is None:
            if a == "pack":
                self.in_box = scan.box
            elif a not in REPORTS:
                self.in_box = None
        elif a in ("unpack", "open"):
            self.in_box = None

    def _end_missing(self, scan: Scan) -> None:
        if self.missing_since is None:
            return
        since, index = self.missing_since
        self.missing_since = None
        self.gaps.append(Gap(self.rec.item_id, "reported_missing", since, scan.time, self.holder,
                             self.geo.accountable(self.holder) if self.holder else None, scan.place, index,
                             scan.index, f"reported missing at {local(since)}, found at {local(scan.time)} at "
                             f"{scan.place}", f"{local(since)} 报告丢失，{local(scan.time)} 在"
                             f"{self.geo.name(scan.place)}找回"))

    # --- findings -------------------------------------------------------------------

    def anomaly(self, scan: Scan, code: str, severity: str, en: str, zh: str, unit: str | None,
                via: str | None, **details: object) -> None:
        self.anomalies.append(Anomaly(scan.item, scan.index, code, severity, unit,
                                      self.geo.accountable(unit) if unit else None, scan.time, en, zh,
                                      "investigation", via, details))

    def gap(self, scan: Scan) -> None:
        assert self.last_time is not None
        after = self.holder
        # where it reappeared: the giver of a handover, else where the scan happened
        place = scan.from_unit if scan.action in GIVING and scan.from_unit else scan.place
        hours = _hours(self.last_time, scan.time)
        if self.kind == "transit" and self.heading:
            code = "no_arrival"
            en = (f"departed from {after} for {self.heading} at {local(self.start or self.last_time)} and never "
                  f"received there; next seen at {place} at {local(scan.time)} ({hours:.1f} h)")
            zh = (f"{local(self.start or self.last_time)} 由{self.geo.name(after)}发往{self.geo.name(self.heading)}，"
                  f"无接收记录；{local(scan.time)} 出现在{self.geo.name(place)}（{hours:.1f} 小时）")
        else:
            code = "unlinked_move"
            en = (f"last scanned at {after} at {local(self.last_time)}, next at {place} at {local(scan.time)}: "
                  f"no handover between, {hours:.1f} h with no accountable holder")
            zh = (f"最后于 {local(self.last_time)} 在{self.geo.name(after)}扫描，下一次于 {local(scan.time)} 在"
                  f"{self.geo.name(place)}扫描，其间无交接记录，{hours:.1f} 小时无人负责")
        self.gaps.append(Gap(self.rec.item_id, code, self.last_time, scan.time, after,
                             self.geo.accountable(after) if after else None, place, self.last_index, scan.index,
                             en, zh))
        # the holder's window ends at its last scan; the gap follows
        self._close(self.last_time, self.last_index)
        self.holder, self.kind, self.heading, self.people, self.start = None, "", None, [], None

    def clone(self, scan: Scan, via: str | None, back: Scan | None) -> None:
        assert self.last_time is not None
        where, holder = scan.place, self.holder
        if back is not None:
            en = (f"the label of {self.rec.item_id} was scanned at {where} at {local(scan.time)} while the item was "
                  f"held by {holder} (scanned there at {local(self.last_time)} and again at {local(back.time)}): "
                  f"the same label in two places, a cloned label")
            zh = (f"{self.rec.item_id} 的标签于 {local(scan.time)} 在{self.geo.name(where)}被扫描，而该物品当时由"
                  f"{self.geo.name(holder)}保管（{local(self.last_time)} 及 {local(back.time)} 均在该处扫描）："
                  f"同一标签同时出现在两地，疑为复制标签")
        else:
            minutes = (scan.time - self.last_time).total_seconds() / 60
            en = (f"the label of {self.rec.item_id} was scanned at {where} {minutes:.0f} min after it was scanned at "
                  f"{holder}, with no handover between: the same label in two places")
            zh = (f"{self.rec.item_id} 的标签在{self.geo.name(holder)}扫描后仅 {minutes:.0f} 分钟又在"
                  f"{self.geo.name(where)}被扫描，其间无交接记录：同一标签出现在两地")
        self.anomaly(scan, "cloned_label", CRITICAL, en, zh, where, via, held_by=holder, seen_at=where,
                     last_index=self.last_index, back_index=back.index if back else None)

    def checks(self, scan: Scan, via: str | None) -> None:
        a, own = scan.action, via is None
        if scan.received_at - scan.time > self.cfg.late_sync:
            self._late(scan, via)
        if a == "seal_damaged" or (scan.seal_condition in ("damaged", "missing")
                                   and (self.kind != "opened" or a == "seal")):
            self._seal(scan, via)
        if own:
            if scan.count is not None or a == "count_mismatch":
                self._count(scan)
            route = self.route
            if (scan.from_unit and scan.from_unit not in route) or (scan.to_unit and scan.to_unit not in route):
                self._off_route(scan)
        if a in NIGHT_ACTIONS:
            hour = scan.time.astimezone(LOCAL_TZ).hour
            if hour >= self.cfg.night_from or hour < self.cfg.night_until:
                place = scan.place
                self.anomaly(scan, "night_access", WARNING,
                             f"{scan.item}: {a} at {place} at {local(scan.time)}, at night",
                             f"{scan.item} 于夜间 {local(scan.time)} 在{self.geo.name(place)}{_ACTION_ZH.get(a, a)}",
                             place, via)

    def _late(self, scan: Scan, via: str | None) -> None:
        delay = scan.received_at - scan.time
        unit = self.stations.get(scan.station, scan.place)
        minutes = delay.total_seconds() / 60
        self.anomaly(scan, "late_sync", WARNING,
                     f"scan {scan.event_id} of {scan.item} reached the log {minutes:.0f} min after its station "
                     f"time {local(scan.time)}: station {scan.station} was offline",
                     f"{scan.item} 的记录 {scan.event_id} 在现场时间 {local(scan.time)} 之后 {minutes:.0f} 分钟才"
                     f"上传，设备 {scan.station} 曾离线", unit, via, station=scan.station,
                     delay_seconds=int(delay.total_seconds()))

    def _seal(self, scan: Scan, via: str | None) -> None:
        place = scan.place
        broken = scan.seal_condition in ("damaged", "missing")
        what = scan.seal_condition if broken else "damaged"
        self.anomaly(scan, "seal_damaged", CRITICAL,
                     f"the seal of {scan.item} was found {what} at {place} at {local(scan.time)}"
                     + (f" ({scan.reason})" if scan.reason else ""),
                     f"{scan.item} 于 {local(scan.time)} 在{self.geo.name(place)}发现密封"
                     f"{'缺失' if what == 'missing' else '破损'}" + (f"（{scan.reason}）" if scan.reason else ""),
                     place, via, condition=what)

    def _off_route(self, scan: Scan) -> None:
        unit = next(u for u in (scan.from_unit, scan.to_unit) if u and u not in self.route)
        self.anomaly(scan, "unexpected_place", CRITICAL,
                     f"{scan.item} was scanned at {unit}, which is not on the route of an item for "
                     f"{self.rec.destination}",
                     f"{scan.item} 在{self.geo.name(unit)}被扫描，该单位不在发往"
                     f"{self.geo.name(self.rec.destination)}物品的规定路线上", unit, None)

    def _count(self, scan: Scan) -> None:
        a = scan.action
        expected = self.expected_count
        counted = scan.count is not None and (self.kind != "opened" or a == "seal") and scan.count != expected
        if counted or a == "count_mismatch":
            if a == "count_mismatch" and scan.count == expected and expected != self.rec.count:
                return  # the report of a shortfall already seen at sealing
            absent = (self.rec.kind is ItemKind.ANSWER_CARD_BUNDLE and self.subject is not None
                      and scan.time >= self.subject.starts_at)
            seen = "?" if scan.count is None else str(scan.count)
            self.anomaly(scan, "count_mismatch", WARNING if absent else CRITICAL,
                         f"{scan.item}: count {seen} at {scan.place}, expected {expected}"
                         + (" (answer cards after the start: likely absent candidates)" if absent else ""),
                         f"{scan.item} 在{self.geo.name(scan.place)}清点数量 {seen}，应为 {expected}"
                         + ("（开考后的答题卡，可能为缺考）" if absent else ""), scan.place, None,
                         seen=scan.count, expected=expected)
        if scan.count is not None and a == "seal":
            self.expected_count = scan.count

    # --- the walk -------------------------------------------------------------------

    def begin(self, scan: Scan, via: str | None) -> None:
        self.started = True
        windows, gaps = _before_first_scan(self.rec, scan, self.geo)
        self.windows.extend(windows)
        self.gaps.extend(gaps)

    def relevant(self, scan: Scan) -> str | None | bool:
        """None for the item's own scan, the box id for a scan of the box it is in, False otherwise."""
        if scan.item == self.rec.item_id:
            return None
        if scan.item == self.in_box:
            return scan.item
        return False

    def run(self, stream: Sequence[Scan], *, stop_out_of_box: bool = False,
            snapshots: list[_Snapshot] | None = None) -> None:
        """Walk ``stream``. A box's template walk stops once the contents are out of the box, with a
        snapshot after every scan (see :func:`trace_items`)."""
        n = len(stream)
        item = self.rec.item_id
        pairs = self.geo.grounds
        ground = self.geo.ground
        for i, scan in enumerate(stream):
            # inlined: relevant(), and linked() for the common case of a scan on the holder's ground
            if scan.item == item:
                via = None
            elif scan.item == self.in_box:
                via = scan.item
            else:
                continue
            self.peeked = False
            holder = self.holder
            if (self.started and holder is not None and scan.action not in REPORTS
                    and ground(holder) in pairs(scan.from_unit, scan.to_unit)):
                self.indexes.append(scan.index)
                self.checks(scan, via)
                self.apply(scan, via)
            else:
                self.step(stream, i, n, scan, via)
            if snapshots is not None:
                snapshots.append(self.snapshot())
            if stop_out_of_box and self.in_box is None:
                break

    def step(self, stream: Sequence[Scan], i: int, n: int, scan: Scan, via: str | None) -> None:
        if not self.started:
            self.begin(scan, via)
        elif scan.action not in REPORTS and not self.linked(scan):
            self.peeked = True
            back = self._next(stream, i + 1, n)
            if back is not None and self.linked(back) and self._grounds(back).isdisjoint(self._grounds(scan)):
                # custody never moved: this was the same label somewhere else
                self.clone(scan, via, back)
                self.indexes.append(scan.index)
                self.checks(scan, via)
                return
            if self.last_time is not None and scan.time - self.last_time <= self.cfg.clone_window:
                self.clone(scan, via, None)
            self.gap(scan)
        self.indexes.append(scan.index)
        self.checks(scan, via)
        self.apply(scan, via)

    def _next(self, stream: Sequence[Scan], start: int, n: int) -> Scan | None:
        for j in range(start, n):
            if self.relevant(stream[j]) is not False:
                return stream[j]
        return None

    def finish(self, until: datetime) -> None:
        if self.kind == "transit" and self.heading and self.start is not None \
                and until - self.start > self.cfg.transit_limit:
            hours = _hours(self.start, until)
            self.gaps.append(Gap(self.rec.item_id, "no_arrival", self.start, None, self.holder,
                                 self.geo.accountable(self.holder) if self.holder else None, self.heading,
                                 self.start_index, None,
                                 f"departed from {self.holder} for {self.heading} at {local(self.start)}; no receipt "
                                 f"recorded since ({hours:.1f} h)",
                                 f"{local(self.start)} 由{self.geo.name(self.holder)}发往"
                                 f"{self.geo.name(self.heading)}，至今无接收记录（{hours:.1f} 小时）"))
        if self.missing_since is not None:
            since, index = self.missing_since
            self.gaps.append(Gap(self.rec.item_id, "reported_missing", since, None, self.holder,
                                 self.geo.accountable(self.holder) if self.holder else None, None, index, None,
                                 f"reported missing at {local(since)}; not found since",
                                 f"{local(since)} 报告丢失，至今未找回"))
        if self.kind != "destroyed":
            self._close(None, None)
        else:
            self._close(self.start, self.start_index)


_ACTION_ZH = {"take_out": "从保密室取出", "unpack": "开箱", "open": "启封"}


#: Stored alerts that say a scan did not follow from the item's history as the log held it when the scan
#: was judged (the rules judge in log order): a scan made earlier but uploaded later can explain them.
ORDER_CODES = frozenset({"out_of_sequence", "seen_elsewhere"})


class Walked(NamedTuple):
    """What an item's walk (in station-time order) says, for :func:`merge_alerts`: the leaves it counted,
    the leaves where a gap ends, and the leaves of its own clone findings."""

    indexes: Sequence[int]
    gap_ends: frozenset[int]
    clones: frozenset[int]


def late_explanation(alert: StoredAlert, scan: Scan, walked: Walked, scans: Mapping[int, Scan],
                     late: timedelta) -> list[Scan]:
    """The scans uploaded late that explain ``alert`` (none: it stands).

    The rules judge each scan against the scans logged before it. A station offline for hours uploads
    its scans after later ones made elsewhere, so the next unit's scan is judged without them: a county
    receives answer cards back from a site whose unpack of their box is not logged yet, and is flagged
    ``out_of_sequence``. Such an alert is explained when scans of the item (or of its box) made before
    it were logged after it, and the walk in station-time order links it (no gap ends there, no cloned
    label): in the order things happened, custody was whole. A ``time_reversal`` on a scan that itself
    reached the log late and did not move custody back (a backlog) is the same fact as its
    ``late_sync``, which stays (at the offline station's unit)."""
    if alert.code == "time_reversal":
        backlog = alert.details.get("applied") is False and scan.received_at - scan.time > late
        return [scan] if backlog else []
    if alert.code not in ORDER_CODES or scan.index in walked.gap_ends or scan.index in walked.clones:
        return []
    return [s for i in walked.indexes if i > scan.index and (s := scans[i]).time <= scan.time]


def _explained(a: StoredAlert, late: Sequence[Scan], territory: Territory, stations: Mapping[str, str]) -> tuple[
        str, str, dict[str, Any]]:
    """The message and details of stored alert ``a`` explained by the scans ``late`` (see :func:`late_explanation`)."""
    leaves = ", ".join(str(s.index) for s in late[:5]) + (", ..." if len(late) > 5 else "")
    offline = list(dict.fromkeys(s.station for s in late))
    units = "、".join(territory.name(stations[st]) if st in stations else st for st in offline)
    if a.code == "time_reversal":
        en = " (explained: the scan itself reached the log late; see its late_sync)"
        zh = "（已解释：该记录本身为延迟上传的补录，见其延迟上传告警）"
    else:
        en = (f" (explained: scans made before it reached the log after it, from station(s) {', '.join(offline)} "
              f"(leaves {leaves}); in the order things happened custody links)")
        zh = f"（已解释：在此之前的扫描由{units}的设备延迟上传（日志条目 {leaves}），按现场时间顺序交接连续）"
    return en, zh, {**a.details, "explained_by": [s.index for s in late], "stored_severity": a.severity}


def merge_alerts(item_id: str, found: list[Anomaly], stored: Sequence[StoredAlert], territory: Territory,
                 stations: Mapping[str, str], scans: Mapping[int, Scan], walked: Walked | None = None,
                 late: timedelta = timedelta(minutes=30)) -> list[Anomaly]:
    """The rules' stored alerts and the investigation's own findings, one per (leaf, code), stored first.

    A stored alert names the event's receiving unit; it is put where its scan was made (:attr:`Scan.place`:
    a depart's sender, whose custody it still is), a late sync or clock at the station's unit. With the
    item's ``walked`` history, a stored alert that scans uploaded late explain (:func:`late_explanation`)
    is kept as ``info``, its message saying so and its details naming them (``explained_by``): it is
    evidence of the upload order, not of the unit where the scan was made."""
    out: list[Anomaly] = []
    seen: set[tuple[int, str]] = set()
    for a in stored:
        if (a.index, a.code) in seen:
            continue
        seen.add((a.index, a.code))
        scan = scans.get(a.index)
        unit = scan.place if scan is not None and scan.place else a.unit
        if a.code in ("late_sync", "clock_ahead") and isinstance(a.details.get("station"), str):
            unit = stations.get(a.details["station"], unit)
        severity, message, message_zh, details = a.severity, a.message, a.message_zh, a.details
        explained = late_explanation(a, scan, walked, scans, late) if scan is not None and walked else []
        if explained:
            en, zh, details = _explained(a, explained, territory, stations)
            severity, message, message_zh = INFO, message + en, message_zh + zh
        out.append(Anomaly(item_id, a.index, a.code, severity, unit,
                           territory.accountable(unit) if unit else None, scan.time if scan else None, message,
                           message_zh, "rules", a.item if a.item and a.item != item_id else None, details))
    for f in found:
        if (f.index, f.code) not in seen:
            seen.add((f.index, f.code))
            out.append(f)
    out.sort(key=lambda x: (x.index, x.code))
    return out


def _before_first_scan(rec: ItemRecord, scan: Scan, geo: Territory) -> tuple[list[Window], list[Gap]]:
    """From the label's issue to the first scan: the giver of that handover held it, or nobody is known to."""
    if rec.issued_at is None or rec.issued_at >= scan.time:
        return [], []
    giver = scan.from_unit if scan.action in GIVING else None
    if giver and giver != scan.to_unit:
        return [Window(rec.item_id, giver, geo.accountable(giver), "before_first_scan", rec.issued_at, scan.time,
                       rec.label_index, scan.index, (), None, None)], []
    if giver is not None:
        return [], []
    hours = _hours(rec.issued_at, scan.time)
    return [], [Gap(rec.item_id, "no_first_handover", rec.issued_at, scan.time, None, None, scan.place,
                    rec.label_index, scan.index,
                    f"label issued at {local(rec.issued_at)}; first scan at {scan.place} at {local(scan.time)} names "
                    f"no giver ({hours:.1f} h unaccounted)",
                    f"标签签发于 {local(rec.issued_at)}，首次扫描于 {local(scan.time)} 在{geo.name(scan.place)}，"
                    f"未记录交出方（{hours:.1f} 小时无人负责）")]


_TOKENS = itertools.count(1)


def _key(scan: Scan) -> tuple[datetime, int]:
    return (scan.time, scan.index)


class _Tracer:
    """Traces many items of one report, sharing what their boxes' scans say (see :func:`trace_items`)."""

    def __init__(self, territory: Territory, subject: Subject | None, until: datetime, cutoff: datetime,
                 config: InvestigationConfig, stations: Mapping[str, str]):
        self.geo = territory
        self.subject = subject
        self.until = until
        self.cutoff = cutoff
        self.config = config
        self.stations = stations
        self.places: dict[int, frozenset[str]] = {}
        self.scans: dict[int, Scan] = {}

    def walk(self, record: ItemRecord) -> _Walk:
        return _Walk(record, self.geo, self.config, self.subject, self.stations, self.places)

    def hours(self, windows: Sequence[Window], held: dict[str, float] | None = None) -> dict[str, float]:
        """Hours each accountable unit held it sealed before the cut-off, added to ``held``."""
        held = {} if held is None else held
        cutoff, until = self.cutoff, self.until
        for w in windows:
            if w.kind not in EXPOSED_KINDS or w.start >= cutoff:
                continue
            end = w.end or until
            if end > cutoff:
                end = cutoff
            if end > w.start:
                held[w.accountable] = held.get(w.accountable, 0.0) + (end - w.start).total_seconds() / 3600
        return held

    def finish(self, walk: _Walk, record: ItemRecord, alerts: Sequence[StoredAlert],
               candidates: set[str | None], prefix: tuple[int, dict[str, float]] | None = None,
               shared: tuple[object, int, int] | None = None) -> ItemCustody:
        """The item's custody from its finished walk. ``prefix``: the first ``n`` windows are a box
        template's, whose hours are already summed."""
        walk.finish(self.until)
        mine: list[StoredAlert] = []
        if alerts:
            counted = set(walk.indexes)
            mine = [a for a in alerts if a.item == record.item_id or (a.index in counted and a.item in candidates)]
        if mine:
            walked = Walked(walk.indexes, frozenset(g.end_index for g in walk.gaps if g.end_index is not None),
                            frozenset(f.index for f in walk.anomalies if f.code == "cloned_label"))
            anomalies = merge_alerts(record.item_id, walk.anomalies, mine, self.geo, self.stations, self.scans,
                                     walked, self.config.late_sync)
        elif len(walk.anomalies) > 1:
            anomalies = sorted(walk.anomalies, key=lambda x: (x.index, x.code))
        else:
            anomalies = walk.anomalies
        if prefix is None:
            held = self.hours(walk.windows)
        else:
            n, summed = prefix
            held = self.hours(walk.windows[n:], dict(summed))
        return ItemCustody(record, tuple(walk.windows), tuple(walk.gaps), tuple(anomalies), tuple(walk.indexes),
                           held, shared)

    def one(self, record: ItemRecord, own: Sequence[Scan], boxes: Mapping[str, Sequence[Scan]],
            alerts: Sequence[StoredAlert]) -> ItemCustody:
        candidates = {record.parent_box} | {s.box for s in own if s.action == "pack" and s.box}
        stream = list(own)
        for box in candidates:
            if box and box != record.item_id:
                stream.extend(boxes.get(box, ()))
        stream.sort(key=_key)
        for scan in stream:
            self.scans[scan.index] = scan
        walk = self.walk(record)
        walk.run(stream)
        return self.finish(walk, record, alerts, candidates)

    def contents(self, box: str, records: Sequence[ItemRecord], scans_of: Mapping[str, Sequence[Scan]],
                 alerts_of: Mapping[str, Sequence[StoredAlert]]) -> dict[str, ItemCustody]:
        """The items packed in ``box``: its scans are walked once, up to where they leave it; each
        item then goes on from there with its own scans."""
        box_scans = sorted(scans_of.get(box, ()), key=_key)
        for scan in box_scans:
            self.scans[scan.index] = scan
        first = records[0]
        template = self.walk(ItemRecord(f"{box}#contents", first.kind, first.subject, first.destination,
                                        first.count, parent_box=box))
        snaps = [template.snapshot()]
        template.run(box_scans, stop_out_of_box=True, snapshots=snaps)
        token = next(_TOKENS)  # names this template's windows for ItemCustody.shared (never reused)
        keys = [_key(s) for s in box_scans[:len(snaps) - 1]]
        sums: dict[int, dict[str, float]] = {}
        out: dict[str, ItemCustody] = {}
        for record in records:
            own = sorted(scans_of.get(record.item_id, ()), key=_key)
            alerts = list(alerts_of.get(record.item_id, ())) + list(alerts_of.get(box, ()))
            j = bisect_left(keys, _key(own[0])) if own else len(keys)
            shared = j > 0 and not snaps[j].peeked and not any(s.action == "pack" for s in own)
            if not shared:
                out[record.item_id] = self.one(record, own, {box: box_scans}, alerts)
                continue
            for scan in own:
                self.scans[scan.index] = scan
            walk = self.walk(record)
            walk.resume(template, snaps[j])
            windows, gaps = _before_first_scan(record, box_scans[0], self.geo)
            n = snaps[j].windows
            # the template's first n windows, closed: the same objects for every item resumed here
            closed = n if len(template.windows) >= n else 0
            share = ((token, closed), len(windows), len(windows) + closed) if closed else None
            summed = sums.get(n)
            if summed is None:
                summed = sums[n] = self.hours(template.windows[:n])
            if windows:
                walk.windows[:0] = windows
                summed = self.hours(windows, dict(summed))
                n += len(windows)
            walk.gaps[:0] = gaps
            rest = box_scans[j:] + own if own else box_scans[j:]
            if own and j < len(box_scans):
                rest.sort(key=_key)
            walk.run(rest)
            out[record.item_id] = self.finish(walk, record, alerts, {box}, (n, summed), share)
        return out


#: item id -> (key, custody, start of a still-open transit window or None, whether it counted as no arrival)
Memo = dict[str, tuple[tuple[object, ...], ItemCustody, datetime | None, bool]]


def _sig(values: Sequence[Any] | None) -> tuple[int, int]:
    """Scans or alerts of one item below a tree size, named by their number and last leaf: the log is
    append-only, so the same pair means the same list."""
    if not values:
        return (0, -1)
    return (len(values), max(v.index for v in values))


def _open_transit(custody: ItemCustody) -> datetime | None:
    last = custody.current
    return last.start if last is not None and last.kind == "transit" and last.end is None else None


def trace_items(records: Sequence[ItemRecord], scans_of: Mapping[str, Sequence[Scan]],
                alerts_of: Mapping[str, Sequence[StoredAlert]], *, territory: Territory, subject: Subject | None,
                until: datetime, cutoff: datetime, config: InvestigationConfig | None = None,
                stations: Mapping[str, str] | None = None, memo: Memo | None = None) -> list[ItemCustody]:
    """:func:`trace_item` for many items, in order; the same results, faster.

    The items packed in one box share the walk of the box's scans up to the
    point each leaves it (its first own scan, or the box's unpack), which is
    computed once per box; an item whose first own scan comes right after a
    scan that looked ahead (a possible clone) is walked on its own.

    ``memo`` (kept by the caller between reports on one log) holds each item's
    last result with what it was computed from: its record, its scans' and
    its box's scans' (number, last leaf), their stored alerts, the cut-off,
    the subject, the config, the stations and the plan. As the log only grows,
    a result with the same inputs is the same result and is reused; the
    report's time matters only to a still-open transit (``no_arrival``), which
    is checked again. A box's items are reused only all together.
    """
    config = config or InvestigationConfig()
    stations = stations or {}
    tracer = _Tracer(territory, subject, until, cutoff, config, stations)
    common = (territory.token, subject, cutoff, config, hash(frozenset(stations.items()))) if memo is not None else ()

    def key(record: ItemRecord) -> tuple[object, ...] | None:
        own = scans_of.get(record.item_id)
        if own and any(s.action == "pack" for s in own):
            return None
        box = record.parent_box
        return (*common, record, _sig(own), _sig(scans_of.get(box)) if box else None,
                _sig(alerts_of.get(record.item_id)), _sig(alerts_of.get(box)) if box else None)

    def cached(record: ItemRecord) -> ItemCustody | None:
        if memo is None:
            return None
        entry = memo.get(record.item_id)
        if entry is None or entry[0] != key(record):
            return None
        transit = entry[2]
        if transit is not None and (until - transit > config.transit_limit) != entry[3]:
            return None
        return entry[1]

    def remember(record: ItemRecord, custody: ItemCustody) -> None:
        if memo is None:
            return
        k = key(record)
        if k is not None:
            transit = _open_transit(custody)
            memo[record.item_id] = (k, custody, transit,
                                    transit is not None and until - transit > config.transit_limit)

    by_box: dict[str, list[ItemRecord]] = {}
    for record in records:
        if record.parent_box and scans_of.get(record.parent_box):
            by_box.setdefault(record.parent_box, []).append(record)
    done: dict[str, ItemCustody] = {}
    for box, contents in by_box.items():
        reused = [cached(r) for r in contents]
        if all(c is not None for c in reused):
            done.update((r.item_id, c) for r, c in zip(contents, reused, strict=True) if c is not None)
            continue
        fresh = tracer.contents(box, contents, scans_of, alerts_of)
        done.update(fresh)
        for record in contents:
            remember(record, fresh[record.item_id])
    out = []
    for record in records:
        custody = done.get(record.item_id) or cached(record)
        if custody is None:
            own = scans_of.get(record.item_id, ())
            boxes = {b: scans_of.get(b, ()) for b in {record.parent_box} | {s.box for s in own if s.action == "pack"}
                     if b}
            alerts = list(alerts_of.get(record.item_id, ()))
            for b in boxes:
                alerts.extend(alerts_of.get(b, ()))
            custody = tracer.one(record, own, boxes, alerts)
            remember(record, custody)
        out.append(custody)
    return out


def trace_item(record: ItemRecord, own: Sequence[Scan], boxes: Mapping[str, Sequence[Scan]], *,
               territory: Territory, subject: Subject | None, until: datetime, cutoff: datetime,
               config: InvestigationConfig | None = None, stations: Mapping[str, str] | None = None,
               alerts: Sequence[StoredAlert] = ()) -> ItemCustody:
    """The custody of ``record`` from its own scans and those of the boxes it may be packed in.

    ``boxes`` maps a box id to its scans (the label's ``parent_box`` and any box
    a ``pack`` names; others are ignored). ``until`` is the report's time (the
    end of still-open windows when measuring); ``cutoff`` ends the time counted
    as held before the start (the subject's start, or the leak if earlier).
    ``alerts`` are stored alerts about the item or its boxes; a box's alert
    counts only at scans that counted for the item.
    """
    tracer = _Tracer(territory, subject, until, cutoff, config or InvestigationConfig(), stations or {})
    return tracer.one(record, own, boxes, alerts)
