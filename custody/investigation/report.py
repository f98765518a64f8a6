"""The investigation report of one subject: assembled from scans, items and stored alerts.

:func:`build_report` is the whole analysis, pure: the storage layer reads the
leaves and passes them in, with a ``prover`` that returns tlog-proof texts for
leaf indexes (computed in one batch, on first use). :meth:`Report.to_json`
is the machine form; every event it cites is listed under ``events`` with its
leaf index, exact leaf bytes, leaf hash and inclusion proof against the
embedded signed checkpoint, so it can be checked offline with the embedded
verifier key (``custody.log.proofs.verify_tlog_proof``).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from custody.errors import NotFound
from custody.events import ACTION_ZH
from custody.investigation.model import (
    CONTENT_KINDS,
    CRITICAL,
    Anomaly,
    Gap,
    InvestigationConfig,
    ItemCustody,
    ItemRecord,
    Revocation,
    Scan,
    StoredAlert,
    Window,
)
from custody.investigation.ranking import UnitSummary, tier_summary
from custody.investigation.scope import Scope, backup_paper_scope
from custody.investigation.territory import TIER_NAMES, Territory
from custody.investigation.trace import Memo, local, trace_items
from custody.labels import ItemKind
from custody.plan import ExamPlan, Subject

REPORT_FORMAT = "custody-investigation/v1"
Prover = Callable[[Sequence[int]], Mapping[int, str]]


def _t(when: datetime | None) -> str | None:
    return None if when is None else when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def scan_from_leaf(index: int, leaf: Mapping[str, Any], received_at: datetime | None = None) -> Scan:
    """The :class:`Scan` of a handover leaf (its ``event`` as the station signed it)."""
    ev = leaf["event"]
    seal = ev.get("seal") or {}
    return Scan(
        index=index, item=ev["item"], action=ev["action"], time=parse_time(ev["station_time"]),
        received_at=received_at or parse_time(leaf["received_at"]),
        from_unit=ev.get("from_unit"), to_unit=ev.get("to_unit"),
        handed_by=tuple(p["staff"] for p in ev.get("handed_by") or ()),
        received_by=tuple(p["staff"] for p in ev.get("received_by") or ()),
        station=ev["station"], event_id=ev["id"], label=ev["label"],
        seal_condition=seal.get("condition"), seal_number=seal.get("number"), count=ev.get("count"),
        reason=ev.get("reason"), box=ev.get("box"), kid=leaf.get("kid") if isinstance(leaf.get("kid"), str) else None)


LeafLoader = Callable[[Sequence[int]], Mapping[int, bytes]]


@dataclass
class Report:
    exam: str
    exam_name: str
    subject: Subject
    query: dict[str, Any]
    until: datetime
    cutoff: datetime
    tree_size: int
    checkpoint: str
    log_key: str
    custodies: list[ItemCustody]
    focus: list[str]
    ranking: list[UnitSummary]
    scope: Scope
    units: dict[str, dict[str, str]]
    #: staff id -> name (at least everyone in the report's windows)
    people: Mapping[str, str]
    #: leaf index -> leaf hash of every leaf the report rests on
    hashes: Mapping[int, bytes]
    scans: dict[int, Scan]
    prover: Prover | None = None
    photo: list[dict[str, Any]] = field(default_factory=list)
    leak_time: datetime | None = None
    leaf_loader: LeafLoader | None = None
    #: leaf bytes already read (the rest are read by ``leaf_loader`` when needed)
    known_leaves: dict[int, bytes] = field(default_factory=dict)
    #: The latest checkpoint a witness cosigned at or below ``tree_size`` ({"tree_size", "checkpoint",
    #: "consistency"}: the proof that ``checkpoint`` extends it), or None when no witness cosigned one.
    witnessed: dict[str, Any] | None = None
    _proofs: dict[int, str] | None = None

    # --- reading --------------------------------------------------------------------

    def custody(self, item: str) -> ItemCustody:
        for c in self.custodies:
            if c.item.item_id == item:
                return c
        raise NotFound(f"item {item} is not in this report")

    @property
    def focus_custodies(self) -> list[ItemCustody]:
        wanted = set(self.focus)
        return [c for c in self.custodies if c.item.item_id in wanted]

    def unit_name(self, code: str | None) -> str:
        if code is None:
            return ""
        return self.units.get(code, {}).get("name", code)

    def cited(self) -> list[int]:
        """Every leaf index the report rests on, ascending."""
        found: set[int] = set()
        for c in self.custodies:
            found.update(c.indexes)
            if c.item.label_index is not None:
                found.add(c.item.label_index)
        for order in self.scope.orders:
            if isinstance(order.get("index"), int):
                found.add(order["index"])  # type: ignore[arg-type]
        return sorted(i for i in found if i in self.hashes)

    def proofs(self, indexes: Iterable[int] | None = None) -> dict[int, str]:
        """tlog-proof texts for the cited leaves (default: all), each computed once, in batches."""
        if self._proofs is None:
            self._proofs = {}
        wanted = self.cited() if indexes is None else [i for i in indexes if i in self.hashes]
        missing = [i for i in wanted if i not in self._proofs]
        if missing and self.prover is not None:
            self._proofs.update(self.prover(missing))
        return {i: self._proofs[i] for i in wanted if i in self._proofs}

    def leaves(self, indexes: Iterable[int]) -> dict[int, bytes]:
        """The exact bytes of the given cited leaves (read in one batch where not yet in memory)."""
        out: dict[int, bytes] = {}
        missing = []
        for i in indexes:
            if i not in self.hashes:
                continue
            data = self.known_leaves.get(i)
            if data is not None:
                out[i] = data
            else:
                missing.append(i)
        if missing and self.leaf_loader is not None:
            out.update(self.leaf_loader(missing))
        return out

    # --- JSON -----------------------------------------------------------------------

    def to_json(self, *, proofs: bool = True) -> dict[str, Any]:
        """The report as JSON-able data (format ``custody-investigation/v1``, see docs/investigation.md)."""
        proof_texts = self.proofs() if proofs else {}
        return {
            "format": REPORT_FORMAT,
            "exam": {"code": self.exam, "name": self.exam_name},
            "subject": {"code": self.subject.code, "name": self.subject.name, "name_en": self.subject.name_en,
                        "starts_at": _t(self.subject.starts_at), "ends_at": _t(self.subject.ends_at)},
            "query": self.query,
            "until": _t(self.until), "cutoff": _t(self.cutoff),
            "log": {"tree_size": self.tree_size, "checkpoint": self.checkpoint, "verifier_key": self.log_key,
                    "witnessed": self.witnessed},
            "focus": self.focus,
            "photo": self.photo,
            "ranking": [_unit_json(u) for u in self.ranking],
            "tiers": _tiers_json(self.ranking),
            "scope": _scope_json(self.scope),
            "items": [_custody_json(c) for c in self.custodies],
            "units": self.units,
            "people": self._people_json(),
            "events": self._events_json(proof_texts),
        }


    def _people_json(self) -> dict[str, str]:
        staff: set[str] = set()
        for c in self.custodies:
            for w in c.windows:
                staff.update(w.people)
        return {sid: self.people[sid] for sid in sorted(staff) if sid in self.people}

    def _events_json(self, proofs: Mapping[int, str]) -> list[dict[str, Any]]:
        cited = self.cited()
        leaves = self.leaves(cited)
        return [_event_json(i, self.hashes[i], leaves.get(i, b""), self.scans.get(i), proofs.get(i)) for i in cited]


def _window_json(w: Window) -> dict[str, Any]:
    return {"unit": w.unit, "accountable": w.accountable, "kind": w.kind, "from": _t(w.start), "to": _t(w.end),
            "from_index": w.start_index, "to_index": w.end_index, "people": list(w.people), "heading": w.heading,
            "via_box": w.via_box}


def _gap_json(g: Gap) -> dict[str, Any]:
    return {"item": g.item, "code": g.code, "from": _t(g.start), "to": _t(g.end), "after_unit": g.after_unit,
            "after_accountable": g.after_accountable, "next_unit": g.next_unit, "from_index": g.start_index,
            "to_index": g.end_index, "message": g.message, "message_zh": g.message_zh}


def _anomaly_json(a: Anomaly) -> dict[str, Any]:
    return {"item": a.item, "index": a.index, "code": a.code, "severity": a.severity, "unit": a.unit,
            "accountable": a.accountable, "time": _t(a.time), "message": a.message, "message_zh": a.message_zh,
            "source": a.source, "via_box": a.via_box, "details": dict(a.details)}


def _custody_json(c: ItemCustody) -> dict[str, Any]:
    i = c.item
    return {"id": i.item_id, "kind": i.kind.slug, "destination": i.destination, "count": i.count, "seal": i.seal,
            "box": i.parent_box, "label": i.label, "label_index": i.label_index, "issued_at": _t(i.issued_at),
            "clean": c.clean, "windows": [_window_json(w) for w in c.windows], "gaps": [_gap_json(g) for g in c.gaps],
            "anomalies": [_anomaly_json(a) for a in c.anomalies], "events": list(c.indexes),
            "hours_before_start": {u: round(h, 2) for u, h in sorted(c.hours_before_start.items())}}


def _unit_json(u: UnitSummary) -> dict[str, Any]:
    return {"rank": u.rank, "unit": u.unit, "tier": u.tier, "score": u.score,
            "reasons": [{"points": round(r.points, 1), "en": r.en, "zh": r.zh} for r in u.reasons],
            "items": list(u.items), "hours_before_start": u.hours_before_start, "item_hours": u.item_hours,
            "people": list(u.people), "first_held": _t(u.first_held), "last_held": _t(u.last_held),
            "anomalies": [{"item": a.item, "index": a.index, "code": a.code, "severity": a.severity}
                          for a in u.anomalies],
            "gaps": [{"item": g.item, "code": g.code, "from": _t(g.start), "to": _t(g.end), "from_index": g.start_index,
                      "to_index": g.end_index} for g in u.gaps]}


def _tiers_json(ranking: Sequence[UnitSummary]) -> list[dict[str, Any]]:
    out = []
    for tier, (zh, en) in TIER_NAMES.items():
        units = [u.unit for u in ranking if u.tier == tier]
        if units:
            out.append({"tier": tier, "name": zh, "name_en": en, "units": units})
    return out


def _stock_json(b: Any) -> dict[str, Any]:
    return {"item": b.item, "county": b.county, "papers": b.papers, "candidates": b.candidates, "holder": b.holder,
            "status": b.status, "since": _t(b.since), "clean": b.clean, "problems": list(b.problems),
            "problems_zh": list(b.problems_zh)}


def _scope_json(s: Scope) -> dict[str, Any]:
    def areas(values: Iterable[Any]) -> list[dict[str, Any]]:
        return [{"county": a.county, "candidates": a.candidates, "why": list(a.why), "why_zh": list(a.why_zh)}
                for a in values]

    return {"timing": s.timing, "localised": s.localised,
            "scenario2": {"areas": areas(s.scenario2), "backups": [_stock_json(b) for b in s.backups2],
                          "papers": s.papers2,
                          "action": "switch to the backup paper" if s.timing == "before" else "void the subject"},
            "scenario3": {"areas": areas(s.scenario3), "backups": [_stock_json(b) for b in s.backups3],
                          "papers": s.papers3,
                          "action": "postpone the exam" if s.timing == "before" else "void the exam"},
            "city_level_holders": list(s.city_level_holders), "missing_backups": list(s.missing_backups),
            "notes": list(s.notes), "notes_zh": list(s.notes_zh), "orders": list(s.orders)}


def _event_json(index: int, digest: bytes, data: bytes, scan: Scan | None, proof: str | None) -> dict[str, Any]:
    try:
        leaf: Any = data.decode("utf-8")
        encoding = "utf-8"
    except UnicodeDecodeError:
        leaf, encoding = base64.b64encode(data).decode("ascii"), "base64"
    out: dict[str, Any] = {"index": index, "leaf_hash": digest.hex(), "leaf": leaf, "leaf_encoding": encoding}
    if scan is not None:
        out.update(item=scan.item, action=scan.action, station_time=_t(scan.time), from_unit=scan.from_unit,
                   to_unit=scan.to_unit)
    if proof is not None:
        out["proof"] = proof
    return out


# --- building ---------------------------------------------------------------------------


def leaf_hash_of(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _focus(custodies: Sequence[ItemCustody], territory: Territory, leaked_item: str | None,
           leaked_unit: str | None) -> list[ItemCustody]:
    if leaked_item:
        chosen = [c for c in custodies if c.item.item_id == leaked_item]
        if chosen and chosen[0].item.kind is ItemKind.BOX:
            chosen += [c for c in custodies if c.item.parent_box == leaked_item]
        return chosen
    if leaked_unit:
        below = territory.below(leaked_unit) if territory.known(leaked_unit) else {leaked_unit}
        destined = [c for c in custodies if c.item.kind in CONTENT_KINDS - {ItemKind.BACKUP_PAPER}
                    and c.item.destination in below]
        if destined:
            return destined
        return [c for c in custodies if any(w.unit == leaked_unit or w.accountable == leaked_unit
                                            for w in c.windows)]
    return list(custodies)


_ACTION_ZH = {action.value: zh for action, zh in ACTION_ZH.items()}


def flag_revoked_keys(custody: ItemCustody, scans: Mapping[int, Scan], revocations: Mapping[str, Revocation],
                      territory: Territory, stations: Mapping[str, str]) -> ItemCustody:
    """``custody`` with a ``revoked_key`` anomaly at each of its scans signed by a station key revoked from a
    time at or before the scan: a key revoked back to when it was stolen, after the server had accepted what
    was signed with it. Such a scan proves nothing of who held the item: whoever held the key could have
    made it. Put at the unit of the station (it kept the key); its details name the key and the revocation."""
    found: list[Anomaly] = []
    for index in custody.indexes:
        scan = scans.get(index)
        revoked = revocations.get(scan.kid) if scan is not None and scan.kid else None
        if scan is None or revoked is None or scan.time < revoked.at:
            continue
        unit = stations.get(scan.station) or scan.place
        reason, reason_zh = (f" ({revoked.reason})", f"（{revoked.reason}）") if revoked.reason else ("", "")
        found.append(Anomaly(
            custody.item.item_id, index, "revoked_key", CRITICAL, unit, territory.accountable(unit) if unit else None,
            scan.time,
            f"{scan.item}: {scan.action} at {local(scan.time)} was signed by station {scan.station}'s key {scan.kid}, "
            f"revoked from {local(revoked.at)}{reason} (leaf {revoked.index}): whoever held the key could have made "
            f"this scan; it proves nothing of who held the item",
            f"{scan.item} 于 {local(scan.time)} 的{_ACTION_ZH.get(scan.action, scan.action)}记录由设备 {scan.station} "
            f"的密钥 {scan.kid} 签名，该密钥已被吊销，吊销自 {local(revoked.at)}{reason_zh}"
            f"（日志条目 {revoked.index}）：持有该密钥者均可伪造此记录，不能证明物品由谁保管",
            "investigation", scan.item if scan.item != custody.item.item_id else None,
            {"kid": scan.kid, "station": scan.station, "revoked_at": revoked.at.isoformat(),
             "revocation_index": revoked.index, "reason": revoked.reason}))
    if not found:
        return custody
    anomalies = sorted([*custody.anomalies, *found], key=lambda a: (a.index, a.code))
    return replace(custody, anomalies=tuple(anomalies))


def build_report(plan: ExamPlan, subject_code: str, items: Sequence[ItemRecord], scans: Sequence[Scan],
                 alerts: Sequence[StoredAlert], *, until: datetime, tree_size: int, checkpoint: str, log_key: str,
                 hashes: Mapping[int, bytes], leaked_item: str | None = None, leaked_unit: str | None = None,
                 leak_time: datetime | None = None, as_of: datetime | None = None,
                 stations: Mapping[str, str] | None = None, people: Mapping[str, str] | None = None,
                 orders: Sequence[dict[str, Any]] = (), prover: Prover | None = None,
                 leaf_loader: LeafLoader | None = None, known_leaves: Mapping[int, bytes] | None = None,
                 territory: Territory | None = None, memo: Memo | None = None,
                 config: InvestigationConfig | None = None, witnessed: dict[str, Any] | None = None,
                 revocations: Mapping[str, Revocation] | None = None) -> Report:
    """The report of ``subject_code`` from everything the log says about its items.

    ``until`` is the report's time (the end of windows still open); ``leak_time``,
    when known, cuts the time counted as held before the start and the
    findings that can explain the leak. ``revocations``: the station keys revoked in the log by key id;
    a scan signed by one at or after the time it was revoked from is flagged ``revoked_key``. Raises
    :class:`NotFound` for an unknown subject, item or unit.
    """
    try:
        subject = plan.subject(subject_code)
    except KeyError:
        raise NotFound(f"no subject {subject_code!r} in exam {plan.exam}; subjects: "
                       f"{', '.join(s.code for s in plan.subjects)}") from None
    config = config or InvestigationConfig()
    territory = territory if territory is not None and territory.plan is plan else Territory(plan)
    by_id = {i.item_id: i for i in items}
    if leaked_item and leaked_item not in by_id:
        raise NotFound(f"item {leaked_item!r} is not an item of subject {subject_code}")
    if leaked_unit and not plan.has_unit(leaked_unit):
        raise NotFound(f"unit {leaked_unit!r} is not in the plan of exam {plan.exam}")
    own: dict[str, list[Scan]] = {}
    for s in scans:
        own.setdefault(s.item, []).append(s)
    alerts_of: dict[str, list[StoredAlert]] = {}
    for a in alerts:
        if a.item:
            alerts_of.setdefault(a.item, []).append(a)
    cutoff = min(t for t in (subject.starts_at, leak_time, until) if t is not None)
    custodies = trace_items(items, own, alerts_of, territory=territory, subject=subject, until=until, cutoff=cutoff,
                            config=config, stations=stations, memo=memo)
    by_index = {s.index: s for s in scans}
    if revocations:
        custodies = [flag_revoked_keys(c, by_index, revocations, territory, stations or {}) for c in custodies]
    focus = _focus(custodies, territory, leaked_item, leaked_unit)
    ranking = tier_summary(focus, territory, until=until, leak_time=leak_time, gap_hours_cap=config.gap_hours_cap)
    scope = backup_paper_scope(subject, territory, custodies, focus=focus, leaked_unit=leaked_unit,
                               leak_time=leak_time, when=as_of or until,
                               localised=bool(leaked_item or leaked_unit), orders=orders)
    units = {u.code: {"name": u.name, "kind": u.kind.value, "parent": u.parent or "", "tier": territory.tier(u.code)}
             for u in plan.units}
    query = {"subject": subject_code, "as_of": _t(as_of), "leaked_item": leaked_item, "leaked_unit": leaked_unit,
             "leak_time": _t(leak_time)}
    return Report(plan.exam, plan.name, subject, query, until, cutoff, tree_size, checkpoint, log_key, custodies,
                  [c.item.item_id for c in focus], ranking, scope, units, people if people is not None else {}, hashes,
                  by_index, prover, leak_time=leak_time, leaf_loader=leaf_loader,
                  known_leaves=dict(known_leaves or {}), witnessed=witnessed)
