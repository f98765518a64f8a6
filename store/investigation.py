"""Leak investigation over the ledger: load what the core needs, build the report, prove its events.

:func:`investigate` is the one entry point for the command line and the web
page. It pins the report to one signed checkpoint (the latest, or the latest
signed at or before ``as_of``) and reads only leaves below that checkpoint's
size, so the same question gives the same report, and every event in it can
be proved against that checkpoint. Inclusion proofs are computed in one batch
when first needed (``Report.proofs()``, ``Report.to_json()``), from the stored
tree nodes, a few range queries per tree level.

Reads only; :func:`record_backup_order` is the one writer here, and it goes
through the ledger like every append.

Queries (see ``store/migrations/versions/0005_investigation.py`` for the indexes they use):

- items of the subject: ``items (exam, subject)``;
- their leaves: ``log_leaves (item, idx)`` joined to those items;
- their stored alerts: ``alerts (item)``;
- backup orders: ``log_leaves (type)``;
- proof nodes: ``log_nodes`` primary key ``(level, idx)``, by ranges.
"""

from __future__ import annotations

import gc
import hashlib
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.errors import CustodyError, LabelError, NotFound
from custody.investigation import (
    InvestigationConfig,
    ItemRecord,
    Report,
    Revocation,
    Scan,
    StoredAlert,
    build_report,
    parse_time,
)
from custody.investigation.territory import Territory
from custody.investigation.trace import Memo
from custody.keyring import Role
from custody.labels import ItemKind, parse_unverified_label, verify_label
from custody.log.merkle import inclusion_proofs
from custody.log.proofs import format_tlog_proofs
from custody.plan import ExamPlan
from store.instance import Instance
from store.models import AlertRecord, Item, KeyRecord, LogCheckpoint, LogLeaf, LogNode, Person, Station

__all__ = ["investigate", "investigate_photo", "labels_in_photo", "record_backup_order", "batch_tlog_proofs"]


# --- proofs in batch -------------------------------------------------------------------------


def _fetch_nodes(session: Session, ids: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    """Stored node hashes for ``ids``: per level, one range query where the ids are dense, else IN lists."""
    by_level: dict[int, list[int]] = {}
    for level, idx in ids:
        by_level.setdefault(level, []).append(idx)
    found: dict[tuple[int, int], bytes] = {}
    table = LogNode.__table__
    for level, wanted in by_level.items():
        wanted = sorted(set(wanted))
        lo, hi = wanted[0], wanted[-1]
        if len(wanted) >= 64 and len(wanted) * 4 >= hi - lo + 1:
            rows = session.execute(select(table.c.idx, table.c.hash).where(
                table.c.level == level, table.c.idx >= lo, table.c.idx <= hi))
            keep = set(wanted)
            found.update(((level, i), h) for i, h in cast("Iterable[tuple[int, bytes]]", rows) if i in keep)
        else:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start:start + 500]
                rows = session.execute(select(table.c.idx, table.c.hash).where(
                    table.c.level == level, table.c.idx.in_(chunk)))
                found.update(((level, i), h) for i, h in cast("Iterable[tuple[int, bytes]]", rows))
    return found


def batch_tlog_proofs(session: Session, indexes: Sequence[int], size: int, checkpoint: str) -> dict[int, str]:
    """c2sp.org/tlog-proof@v1 texts for many leaves of the tree of ``size`` leaves, with few queries.

    The text ``custody.log.proofs.format_tlog_proofs`` writes (no ``extra`` line). The audit
    paths of many leaves share most of their nodes: ``inclusion_proofs`` reads each node and folds
    each incomplete right-edge range once, and each shared hash is encoded once.
    """
    if not checkpoint.endswith("\n"):
        raise CustodyError("a checkpoint note ends in a newline")
    for index in indexes:
        if not 0 <= index < size:
            raise NotFound(f"leaf {index} is not in the checkpoint of size {size}")

    def read(ids: Sequence[tuple[int, int]]) -> list[bytes]:
        known = _fetch_nodes(session, ids)
        missing = set(ids) - known.keys()
        if missing:
            raise CustodyError(f"the stored tree lacks node(s) {sorted(missing)[:5]} (level, index): the log "
                               "tables are damaged")
        return [known[node] for node in ids]

    paths = inclusion_proofs(indexes, size, read)
    texts = format_tlog_proofs(((index, path, None) for index, path in zip(indexes, paths, strict=True)),
                               checkpoint.encode())
    return dict(zip(indexes, texts, strict=True))


# --- loading ---------------------------------------------------------------------------------


def _checkpoint(session: Session, as_of: datetime | None, size: int | None = None) -> LogCheckpoint:
    query = select(LogCheckpoint).order_by(LogCheckpoint.size.desc()).limit(1)
    if as_of is not None:
        query = query.where(LogCheckpoint.signed_at <= as_of)
    if size is not None:
        query = query.where(LogCheckpoint.size == size)
    row = session.scalars(query).first()
    if row is None:
        raise NotFound("the log has no signed checkpoint" + (f" at size {size}" if size is not None else "")
                       + (f" at or before {as_of.isoformat()}" if as_of else ""))
    return row


#: How many checkpoints below the report's to look through for the latest one a witness cosigned.
WITNESS_LOOKBACK = 5000


def witnessed_anchor(session: Session, origin: str, size: int) -> dict[str, Any] | None:
    """The latest checkpoint at or below ``size`` that a registered witness cosigned, with the consistency
    proof from it to ``size`` (empty when it is the report's own checkpoint); None if there is none.

    An outsider who trusts the witness checks the cosignature, then the proof: everything the
    report proves up to that size was seen by the witness, and the rest extends it.
    """
    from custody.log.merkle import consistency_proof
    from custody.log.proofs import format_consistency_proof
    from custody.verify.checkpoints import open_with_keys
    from store.logstore import LogStore, log_verifiers
    from store.verification import witness_verifiers

    roles = (Role.WITNESS.value, Role.LOG_SIGNER.value)
    registry = list(session.scalars(select(KeyRecord).where(KeyRecord.role.in_(roles))))
    cosigners = witness_verifiers(registry)
    if not cosigners:
        return None
    log_keys = log_verifiers(origin, registry)
    rows = session.execute(select(LogCheckpoint.size, LogCheckpoint.note).where(LogCheckpoint.size <= size)
                           .order_by(LogCheckpoint.size.desc()).limit(WITNESS_LOOKBACK))
    for witnessed_size, note in rows:
        if note.count("\n\u2014 ") < 2:  # only the log's own signature line: not cosigned (cheap test first)
            continue
        try:
            if not open_with_keys(note.encode(), log_keys, cosigners).cosignatures:
                continue
        except CustodyError:
            continue
        proof = consistency_proof(witnessed_size, size, LogStore(session).get_nodes)
        return {"tree_size": witnessed_size, "checkpoint": note, "consistency": format_consistency_proof(proof)}
    return None


def _utc(when: datetime | None) -> datetime | None:
    if when is None:
        return None
    if when.tzinfo is None:
        raise CustodyError("times must carry a time zone, e.g. 2017-06-19T23:00:00+08:00")
    return when.astimezone(UTC)


def _log_key(session: Session, origin: str) -> str:
    from custody.keyring import Role
    from custody.log.note import verifier_key
    from store.models import KeyRecord

    row = session.scalars(select(KeyRecord).where(KeyRecord.role == Role.LOG_SIGNER.value)
                          .order_by(KeyRecord.valid_from.desc(), KeyRecord.id.desc())).first()
    if row is None:
        raise CustodyError("the instance has no log signing key")
    return verifier_key(origin, row.public_raw)


@contextmanager
def _no_gc() -> Iterator[None]:
    """No cyclic garbage collection while a report is parsed and built: it makes hundreds of
    thousands of small acyclic objects, and the collector's passes over them cost a third of the
    time. Reference counting still frees everything; the collector is back on afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _Parsed:
    """The scans and labels of a set of items, parsed from the leaves below ``size``."""

    def __init__(self, items: frozenset[str]):
        self.items = items
        self.size = 0
        self.scans: list[Scan] = []
        self.hashes: dict[int, bytes] = {}
        self.labels: dict[str, tuple[int, datetime | None, str | None]] = {}
        self.staff: set[str] = set()
        #: the custody of each item as last computed, with what it was computed from (see trace_items)
        self.memo: Memo = {}

    def below(self, size: int) -> tuple[list[Scan], dict[int, bytes], dict[str, tuple[int, datetime | None,
                                                                                     str | None]]]:
        if size >= self.size:
            return self.scans, self.hashes, self.labels
        scans = [x for x in self.scans if x.index < size]
        labels = {k: v for k, v in self.labels.items() if v[0] < size}
        return scans, {i: h for i, h in self.hashes.items() if i < size}, labels


#: Parsed scans per (database, exam, subject): the log is append-only, so what was parsed below a
#: tree size stays true; a later report parses only the leaves appended since. Small: a few subjects.
_CACHE: OrderedDict[tuple[str, str, str], _Parsed] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 4
_LABEL = re.compile(rb'^\{"issued_at":(?:null|"([^"\\]*)"),"item":"[^"\\]*","item_prev":(?:null|"[0-9a-f]*"),'
                    rb'"label":"([0-9a-f]{64})"')


def _parse_into(parsed: _Parsed, rows: Iterable[tuple[int, bytes, bytes, str]]) -> None:
    times: dict[str, datetime] = {}

    def when(text: str) -> datetime:
        found = times.get(text)
        if found is None:
            found = times[text] = parse_time(text)
        return found

    for idx, data, digest, kind in rows:
        data = bytes(data)
        if kind == "handover":
            leaf = json.loads(data)
            ev = leaf["event"]
            seal = ev.get("seal") or {}
            scan = Scan(
                idx, ev["item"], ev["action"], when(ev["station_time"]), when(leaf["received_at"]),
                ev.get("from_unit"), ev.get("to_unit"), tuple(p["staff"] for p in ev.get("handed_by") or ()),
                tuple(p["staff"] for p in ev.get("received_by") or ()), ev["station"], ev["id"], ev["label"],
                seal.get("condition"), seal.get("number"), ev.get("count"), ev.get("reason"), ev.get("box"),
                leaf.get("kid"))
            parsed.scans.append(scan)
            parsed.staff.update(scan.handed_by)
            parsed.staff.update(scan.received_by)
        elif kind == "label":
            match = _LABEL.match(data)
            if match:
                issued, label = match.group(1), match.group(2)
                item = json.loads(data[:data.index(b',"item_prev"')] + b"}").get("item")
                values = (when(issued.decode()) if issued else None, label.decode())
            else:
                leaf = json.loads(data)
                item = leaf.get("item")
                issued_text = leaf.get("issued_at")
                values = (when(issued_text) if isinstance(issued_text, str) else None, leaf.get("label"))
            if isinstance(item, str) and item not in parsed.labels:
                parsed.labels[item] = (idx, values[0], values[1])
        else:
            continue
        parsed.hashes[idx] = bytes(digest)


def _load(session: Session, url: str, exam: str, subject: str, items: Sequence[str], size: int,
          cache: bool) -> tuple[list[Scan], dict[int, bytes], dict[str, tuple[int, datetime | None, str | None]],
                                Memo | None]:
    leaves = LogLeaf.__table__
    wanted = frozenset(items)
    key = (url, exam, subject)
    with _CACHE_LOCK:
        parsed = _CACHE.get(key) if cache else None
        if parsed is None or parsed.items != wanted:
            parsed = _Parsed(wanted)
        else:
            _CACHE.move_to_end(key)
    if parsed.size < size:
        query = select(leaves.c.idx, leaves.c.data, leaves.c.hash, leaves.c.type).where(
            leaves.c.idx >= parsed.size, leaves.c.idx < size)
        if cache:
            ids = select(Item.item_id).where(Item.exam == exam, Item.subject == subject).scalar_subquery()
            query = query.where(leaves.c.item.in_(ids))
        else:
            query = query.where(leaves.c.item.in_(sorted(wanted)))
        fresh = _Parsed(wanted)
        _parse_into(fresh, session.execute(query.order_by(leaves.c.idx)))
        if parsed.size == 0:
            parsed = fresh
        else:  # extend a copy: reports built from the old one keep their lists
            grown = _Parsed(wanted)
            grown.scans = parsed.scans + fresh.scans
            grown.hashes = {**parsed.hashes, **fresh.hashes}
            grown.labels = {**fresh.labels, **parsed.labels}
            grown.staff = parsed.staff | fresh.staff
            grown.memo = parsed.memo
            parsed = grown
        parsed.size = size
        if cache:
            with _CACHE_LOCK:
                _CACHE[key] = parsed
                _CACHE.move_to_end(key)
                while len(_CACHE) > _CACHE_SIZE:
                    _CACHE.popitem(last=False)
    return (*parsed.below(size), parsed.memo if cache else None)


def _plan(session: Session, exam: str) -> ExamPlan:
    """The exam plan, read with two plain queries (``store.plans.load_plan`` builds ORM objects)."""
    from custody.plan import Subject as PlanSubject
    from custody.plan import Unit as PlanUnit
    from custody.plan import UnitKind
    from store.models import Exam, Subject, Unit

    name = session.scalar(select(Exam.name).where(Exam.code == exam))
    if name is None:
        raise NotFound(f"no exam {exam!r} has been imported")
    s, u = Subject.__table__, Unit.__table__
    subject_rows = cast("Iterable[tuple[str, str, datetime, datetime, bool, str]]", session.execute(select(
        s.c.code, s.c.name, s.c.starts_at, s.c.ends_at, s.c.listening, s.c.name_en)
        .where(s.c.exam == exam).order_by(s.c.id)))
    subjects = tuple(PlanSubject(code, sname, starts, ends, listening, name_en) for code, sname, starts, ends,
                     listening, name_en in subject_rows)
    unit_rows = cast("Iterable[tuple[str, str, str, str | None, int, str]]", session.execute(select(
        u.c.code, u.c.kind, u.c.name, u.c.parent, u.c.candidates, u.c.subjects).order_by(u.c.code)))
    units = tuple(PlanUnit(code, UnitKind(kind), uname, parent, candidates, tuple(x for x in subj.split(";") if x))
                  for code, kind, uname, parent, candidates, subj in unit_rows)
    return ExamPlan(exam, name, subjects, units)


_PLANS: dict[tuple[str, str], tuple[tuple[int, int, int], ExamPlan, Territory]] = {}


def _plan_cached(session: Session, url: str, exam: str) -> tuple[ExamPlan, Territory]:
    """The plan and its :class:`Territory` (with its caches), kept while the unit and subject tables
    are unchanged (plans are imported whole; a change shows in the counts)."""
    from sqlalchemy import func

    from store.models import Subject, Unit

    mark = (session.scalar(select(func.count()).select_from(Unit)) or 0,
            session.scalar(select(func.count()).select_from(Subject).where(Subject.exam == exam)) or 0,
            session.scalar(select(func.count()).select_from(Item).where(Item.exam == exam)) or 0)
    with _CACHE_LOCK:
        found = _PLANS.get((url, exam))
    if found is not None and found[0] == mark:
        return found[1], found[2]
    plan = _plan(session, exam)
    territory = Territory(plan)
    with _CACHE_LOCK:
        _PLANS[(url, exam)] = (mark, plan, territory)
    return plan, territory


def investigate(instance: Instance, subject: str, *, as_of: datetime | None = None, leaked_item: str | None = None,
                leaked_unit: str | None = None, leak_time: datetime | None = None, exam: str | None = None,
                now: datetime | None = None, config: InvestigationConfig | None = None,
                size: int | None = None) -> Report:
    """The investigation report of ``subject`` (see :func:`custody.investigation.build_report`).

    ``as_of``: report on the log as it stood at the latest checkpoint signed at
    or before that time. ``size``: at the checkpoint of exactly that tree size
    (with ``as_of``, one signed by then): with the report's own ``until`` as
    ``now``, a report is made again as it was, whatever was logged since.
    ``now`` (default: that checkpoint's time) ends windows still open; when
    ``as_of`` is given it only refuses an ``as_of`` later than it (NotFound). With a ``leaked_item``
    only that item, its box and the subject's backup papers are traced (the
    report is about them); otherwise every item of the subject. Raises
    :class:`~custody.errors.NotFound` for an unknown subject, item or unit.
    """
    with _no_gc():
        return _investigate(instance, subject, as_of=as_of, leaked_item=leaked_item, leaked_unit=leaked_unit,
                            leak_time=leak_time, exam=exam, now=now, config=config, size=size)


def _investigate(instance: Instance, subject: str, *, as_of: datetime | None, leaked_item: str | None,
                 leaked_unit: str | None, leak_time: datetime | None, exam: str | None, now: datetime | None,
                 config: InvestigationConfig | None, size: int | None) -> Report:
    as_of, leak_time, now = _utc(as_of), _utc(leak_time), _utc(now)
    if as_of is not None and now is not None and as_of > now:
        # the log as it will stand then is not known: the report's time (before or after the start) would be
        raise NotFound(f"no report as of {as_of.isoformat()}: that is later than now "
                       f"({now.isoformat(timespec='seconds')})")
    report_time = as_of or now
    if leak_time is not None and report_time is not None and leak_time > report_time:
        # a leak not seen yet cannot be investigated: a mistyped day would cut nothing and say "before the start"
        raise NotFound(f"the leak time {leak_time.isoformat()} is later than the report's time "
                       f"({report_time.isoformat(timespec='seconds')}, {'--as-of' if as_of else 'now'}): "
                       f"a leak is investigated once it was seen")
    exam = exam or instance.current_exam()
    with instance.db.session() as s:
        cp = _checkpoint(s, as_of, size)
        size, note = cp.size, cp.note
        witnessed = witnessed_anchor(s, instance.origin, size)
        until = as_of or max(t for t in (cp.signed_at, now) if t is not None)
        log_key = _log_key(s, instance.origin)
        plan, territory = _plan_cached(s, instance.db.url, exam)
        if not any(x.code == subject for x in plan.subjects):
            raise NotFound(f"no subject {subject!r} in exam {exam}; subjects: "
                           f"{', '.join(x.code for x in plan.subjects)}")
        it = Item.__table__.c
        item_rows = cast("list[tuple[str, int, str, str, int, str | None, str | None]]",
                         s.execute(select(it.item_id, it.kind, it.subject, it.destination, it.count, it.seal,
                                          it.parent_box).where(it.exam == exam, it.subject == subject)
                                   .order_by(it.id)).all())
        if leaked_item:
            chosen = next((r for r in item_rows if r[0] == leaked_item), None)
            if chosen is None:
                raise NotFound(f"item {leaked_item!r} is not an item of subject {subject}")
            keep = {leaked_item, chosen[6]} | {r[0] for r in item_rows if r[1] == int(ItemKind.BACKUP_PAPER)
                                                or (chosen[1] == int(ItemKind.BOX) and r[6] == leaked_item)}
            item_rows = [r for r in item_rows if r[0] in keep]
        scans, hashes, labels, memo = _load(s, instance.db.url, exam, subject, [r[0] for r in item_rows], size,
                                            cache=not leaked_item)
        alert_rows = s.execute(select(AlertRecord.leaf_idx, AlertRecord.item, AlertRecord.unit, AlertRecord.code,
                                      AlertRecord.severity, AlertRecord.message, AlertRecord.message_zh,
                                      AlertRecord.details)
                               .where(AlertRecord.item.in_([r[0] for r in item_rows]) if leaked_item else
                                      AlertRecord.item.in_(select(Item.item_id).where(
                                          Item.exam == exam, Item.subject == subject).scalar_subquery()),
                                      AlertRecord.leaf_idx < size)).all()
        stations = dict(s.execute(select(Station.code, Station.unit)).all())
        people = _people(s, instance.db.url)
        # by type alone: with statistics, a bound on idx makes SQLite scan the primary key instead
        order_rows = [r for r in s.execute(select(LogLeaf.idx, LogLeaf.data, LogLeaf.hash)
                                           .where(LogLeaf.type == "backup_order")) if r[0] < size]
        revocations = _revocations(r for r in s.execute(select(LogLeaf.idx, LogLeaf.data)
                                                         .where(LogLeaf.type == "revocation")) if r[0] < size)
    known: dict[int, bytes] = {}
    items = []
    for item_id, kind, subj, destination, count, seal, parent_box in item_rows:
        label_index, issued, label = labels.get(item_id, (None, None, None))
        items.append(ItemRecord(item_id, ItemKind(kind), subj, destination, count, seal, parent_box, label, issued,
                                label_index))
    alerts = [StoredAlert(i, item, unit, code, severity, message, message_zh, _details(details))
              for i, item, unit, code, severity, message, message_zh, details in alert_rows]
    orders = []
    for idx, data, digest in order_rows:
        order = json.loads(data)
        if order.get("subject") == subject:
            orders.append({"index": idx, **{k: v for k, v in order.items() if k != "type"}})
            hashes = {**hashes, idx: bytes(digest)}
            known[idx] = bytes(data)

    def prover(indexes: Sequence[int]) -> Mapping[int, str]:
        with instance.db.session() as session:
            return batch_tlog_proofs(session, indexes, size, note)

    def leaf_loader(indexes: Sequence[int]) -> Mapping[int, bytes]:
        with instance.db.session() as session:
            return _leaf_bytes(session, indexes)

    return build_report(plan, subject, items, scans, alerts, until=until, tree_size=size, checkpoint=note,
                        log_key=log_key, hashes=hashes, leaked_item=leaked_item, leaked_unit=leaked_unit,
                        leak_time=leak_time, as_of=as_of, stations=stations, people=people, orders=orders,
                        prover=prover, leaf_loader=leaf_loader, known_leaves=known, territory=territory,
                        memo=memo, config=config, witnessed=witnessed, revocations=revocations)


def _revocations(rows: Iterable[tuple[int, bytes]]) -> dict[str, Revocation]:
    """The keys revoked in the log, by key id: each from the earliest time its ``revocation`` leaves give (a
    key revoked again from an earlier time has a leaf for each), as the nightly verification counts them."""
    out: dict[str, Revocation] = {}
    for idx, data in rows:
        leaf = json.loads(bytes(data))
        kid, at = leaf.get("kid"), leaf.get("revoked_at")
        if not isinstance(kid, str) or not isinstance(at, str):
            continue
        try:
            when = parse_time(at)
        except ValueError:
            continue
        if kid not in out or when < out[kid].at:
            reason = leaf.get("reason")
            out[kid] = Revocation(kid, when, idx, reason if isinstance(reason, str) else None)
    return out


def _leaf_bytes(session: Session, indexes: Sequence[int]) -> dict[int, bytes]:
    """Leaf bytes by index: range queries over runs of near indexes."""
    table = LogLeaf.__table__
    wanted = sorted(set(indexes))
    out: dict[int, bytes] = {}
    start = 0
    while start < len(wanted):
        end = start
        while end + 1 < len(wanted) and wanted[end + 1] - wanted[start] < 4 * (end + 2 - start) + 64 \
                and end + 1 - start < 20000:
            end += 1
        lo, hi = wanted[start], wanted[end]
        keep = set(wanted[start:end + 1])
        for idx, data in cast("Iterable[tuple[int, bytes]]", session.execute(
                select(table.c.idx, table.c.data).where(table.c.idx >= lo, table.c.idx <= hi))):
            if idx in keep:
                out[idx] = bytes(data)
        start = end + 1
    return out


def _details(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


_PEOPLE: dict[str, tuple[int, dict[str, str]]] = {}


def _people(session: Session, url: str) -> dict[str, str]:
    """Every member of staff's name by staff id (kept while the table's size is unchanged)."""
    from sqlalchemy import func

    count = session.scalar(select(func.count()).select_from(Person)) or 0
    with _CACHE_LOCK:
        found = _PEOPLE.get(url)
    if found is not None and found[0] == count:
        return found[1]
    names = dict(session.execute(select(Person.staff_id, Person.name)).all())
    with _CACHE_LOCK:
        _PEOPLE[url] = (count, names)
    return names


# --- from the evidence: a photo of the leaked paper or bag ------------------------------------


def labels_in_photo(instance: Instance, image: bytes | str | Path | Any) -> list[dict[str, Any]]:
    """Every label decoded in a photo (file path, encoded image bytes, or a BGR array), each verified.

    One dict per distinct text: ``text``, ``item`` (as the label claims it), ``subject``,
    ``verified`` (the institute's signature checks out) and ``error`` (why not). A label that
    does not verify is reported, not dropped: a forged label on a leaked bag is evidence too.
    """
    import cv2
    import numpy as np

    from scanners.decode import default_decoder

    if isinstance(image, (str, Path)):
        data = Path(image).read_bytes()
        array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        what = str(image)
    elif isinstance(image, (bytes, bytearray)):
        array = cv2.imdecode(np.frombuffer(bytes(image), np.uint8), cv2.IMREAD_COLOR)
        what = "the uploaded image"
    else:
        array, what = image, "the image"
    if array is None:
        raise NotFound(f"{what} is not an image that can be read (JPEG, PNG, ...)")
    result = default_decoder().decode(array)
    ring = instance.keys.keyring()
    out: list[dict[str, Any]] = []
    for text in dict.fromkeys(r.text for r in result.readings):
        entry: dict[str, Any] = {"text": text, "item": None, "subject": None, "verified": False, "error": None,
                                 "sha256": None}
        try:
            unverified = parse_unverified_label(text)
        except LabelError as exc:
            entry["error"] = str(exc)
            out.append(entry)
            continue
        if unverified is None:
            continue  # another QR code
        entry.update(item=unverified.payload.item_id, subject=unverified.payload.subject,
                     sha256=hashlib.sha256(unverified.cose).hexdigest())
        try:
            verify_label(text, ring)
            entry["verified"] = True
        except LabelError as exc:
            entry["error"] = str(exc)
        out.append(entry)
    return out


def investigate_photo(instance: Instance, image: bytes | str | Path | Any, *, subject: str | None = None,
                      **options: Any) -> Report:
    """Decode the labels in a photo and investigate the first verified item of the subject."""
    found = labels_in_photo(instance, image)
    chosen = [f for f in found if f["verified"] and (subject is None or f["subject"] == subject)]
    if not chosen:
        seen = "; ".join(f"{f['item'] or f['text'][:20]}: {f['error'] or 'other subject'}" for f in found) or \
            "no custody label could be read"
        raise NotFound(f"no verified label of {'subject ' + subject if subject else 'any subject'} in the photo "
                       f"({seen})")
    first = chosen[0]
    report = investigate(instance, subject or first["subject"], leaked_item=first["item"], **options)
    report.photo = found
    return report


# --- acting on it ----------------------------------------------------------------------------


def record_backup_order(instance: Instance, subject: str, units: Sequence[str], *, reason: str, ordered_by: str,
                        at: datetime, clock: Any = None) -> int:
    """Log an order to use the backup paper of ``subject`` in ``units`` (and everything under them).

    The leaf is ``{"type": "backup_order", "subject", "units", "reason", "ordered_by", "at"}``;
    returns its index. The custody rules read it: a backup paper opened under an order is no alert.
    """
    from custody.events import format_time
    from store.ledger import Ledger

    when = _utc(at)
    assert when is not None
    ledger = Ledger(instance, clock=clock or (lambda: when))
    return ledger.append_records([{"type": "backup_order", "subject": subject, "units": sorted(set(units)),
                                   "reason": reason, "ordered_by": ordered_by, "at": format_time(when)}])[0]
