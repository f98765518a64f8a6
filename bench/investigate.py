"""Benchmark: the time for a subject's investigation report on a city log and a province log.

    .venv/bin/python bench/investigate.py [--scales city,province] [--dbs sqlite,postgresql] [--runs 10]

For each scale and database it prints the p50 / p95 / max time of
``store.investigation.investigate(instance, "YW")`` (the whole report: custody
windows, gaps, anomalies, the ranked tier summary and the backup scope; what
the web page and the terminal show), of the same with a leaked item (the
typical question), and, once, of producing every inclusion proof and the JSON
text (``Report.to_json()``, the evidence export). Targets: p95 <= 300 ms for the
city and <= 2 s for the province.

The logs are built once and cached (SQLite under ``/tmp/custody-bench``,
PostgreSQL databases ``custody_bench_<scale>`` on ``CUSTODY_BENCH_PG_URL``,
default ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``); ``--rebuild``
builds them again. How they are built (fast, not through the ledger's writer):

- the plan has the sample exam's shape (counties, one zone each, sites, rooms of
  about 30, the six subjects of 2017), scaled: ``city`` 12 counties, 100 sites,
  3,900 rooms (~300k leaves); ``province`` 100 counties, 680 sites, 26,000
  rooms under one institute (~2M leaves); imported with ``store.plans.import_plan``;
- one ``label`` leaf per item, then every handover of ``store.simulation``'s
  schedule (city receive and store, transport to the counties, the exam day:
  take out, distribute, receive, unpack, distribute to rooms, open, seal, return,
  transport and grading), with its planted exceptions (a damaged box seal, short
  answer cards, one offline site per 100 synced 5 h late) and a leaked bundle
  taken out of a county secure room at night; leaves are the real JCS format
  (checked against ``custody.log.jcs`` on a sample), chained per item by
  ``item_prev``; signatures are a fixed placeholder (the investigation does not
  verify station signatures; the nightly check does);
- the Merkle tree is computed with ``custody.log.merkle.integrate`` and stored
  node by node, one checkpoint is signed with the instance's log key, and the
  alerts the rules would raise for the planted exceptions are inserted.
"""

from __future__ import annotations

import argparse
import base64
import gc
import hashlib
import json
import os
import shutil
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from custody.labels import ItemKind  # noqa: E402
from custody.plan import LOCAL_TZ, ExamPlan, build_plan  # noqa: E402
from custody.sample import SUBJECTS  # noqa: E402

ROOT = Path(os.environ.get("CUSTODY_BENCH_DIR", "/tmp/custody-bench"))
PG_ADMIN_URL = os.environ.get("CUSTODY_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
SECRET = b"bench-passphrase-not-secret"
SETUP_AT = datetime(2017, 5, 2, 9, 0, tzinfo=LOCAL_TZ)
LABELS_AT = datetime(2017, 6, 1, 9, 0, tzinfo=LOCAL_TZ)
SIG = base64.b64encode(bytes(64)).decode()  # placeholder: see the module docstring
CHUNK = 50_000


@dataclass(frozen=True)
class Scale:
    counties: int
    sites: int
    rooms: int


SCALES = {"city": Scale(12, 100, 3_900), "province": Scale(100, 680, 26_000)}


def bench_plan(scale: Scale) -> ExamPlan:
    rows: list[dict[str, str]] = [
        {"code": "36-YS", "kind": "printer", "name": "省教育考试院指定印刷厂", "parent": ""},
        {"code": "3601", "kind": "city", "name": "教育考试院", "parent": ""},
        {"code": "3601-BMS", "kind": "secure_room", "name": "考试院保密室", "parent": "3601"},
        {"code": "3601-PJ", "kind": "grading", "name": "评卷点", "parent": "3601"},
    ]
    site_no = room_no = 0
    for c in range(scale.counties):
        county = f"36{c + 1:04d}"
        rows += [{"code": county, "kind": "county", "name": f"第{c + 1}县区中招办", "parent": "3601"},
                 {"code": f"{county}-BMS", "kind": "secure_room", "name": f"第{c + 1}县区保密室", "parent": county},
                 {"code": f"{county}-Q1", "kind": "zone", "name": f"第{c + 1}县区考区", "parent": county}]
        sites = scale.sites // scale.counties + (c < scale.sites % scale.counties)
        for _ in range(sites):
            site_no += 1
            site = f"K{site_no:04d}"
            rows.append({"code": site, "kind": "site", "name": f"第{site_no}考点", "parent": f"{county}-Q1"})
            rooms = scale.rooms // scale.sites + (site_no <= scale.rooms % scale.sites)
            for r in range(rooms):
                room_no += 1
                rows.append({"code": f"{site}-{r + 1:02d}", "kind": "room", "name": f"第{r + 1:02d}考场",
                             "parent": site, "candidates": "30"})
    subjects = [{"code": c, "name": n, "name_en": e, "date": d, "start": a, "end": b,
                 "listening": "yes" if li else "no"} for c, n, e, d, a, b, li in SUBJECTS]
    return build_plan("zk2017", "基准测试考试", subjects, rows)


# --- the log ------------------------------------------------------------------------------------


def _ts(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _dump(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class Schedule:
    """Every handover of store.simulation's schedule, as compact tuples, sorted by arrival."""

    def __init__(self, plan: ExamPlan, items: list[Any]):
        self.plan = plan
        self.items = {i.item_id: i for i in items}
        self.county_of = {}
        from custody.plan import UnitKind
        for u in plan.units:
            county = plan.nearest(u.code, UnitKind.COUNTY)
            self.county_of[u.code] = county.code if county else u.code
        self.events: list[tuple[Any, ...]] = []
        self.seq: dict[str, int] = {}

    def add(self, at: datetime, item: str, action: str, station_unit: str, frm: str | None, to: str | None,
            handed: str | None, received: str | None, seal: str = "intact", count: int | None = None,
            reason: str | None = None, delay: timedelta = timedelta(seconds=20)) -> None:
        station = f"ST-{station_unit}"
        n = self.seq[station] = self.seq.get(station, 0) + 1
        row = self.items[item]
        self.events.append((at + delay, at, station, f"{station}-{n:07d}", item, action, frm, to, handed, received,
                            seal, row.count if count is None else count, reason))

    def build(self) -> None:
        from custody.plan import UnitKind

        plan, items = self.plan, self.items
        boxes = [i for i in items.values() if i.kind == ItemKind.BOX]
        contents: dict[str, list[Any]] = {}
        for i in items.values():
            if i.parent_box:
                contents.setdefault(i.parent_box, []).append(i)
        arrive_city = datetime(2017, 6, 12, 10, 0, tzinfo=LOCAL_TZ)
        to_county = datetime(2017, 6, 16, 8, 0, tzinfo=LOCAL_TZ)
        tick = timedelta(seconds=3)
        damaged_box = boxes[len(boxes) // 3].item_id
        sites = plan.of_kind(UnitKind.SITE)
        offline = {s.code for s in sites[::100]}
        short_cards = next(i.item_id for i in items.values() if i.kind == ItemKind.ANSWER_CARD_BUNDLE)
        top = [i for i in items.values() if i.kind in (ItemKind.BOX, ItemKind.ANSWER_KEY, ItemKind.BACKUP_PAPER)]
        for n, item in enumerate(top):
            at = arrive_city + n * tick
            self.add(at, item.item_id, "receive", "3601", "36-YS", "3601", "36-YS", "3601")
            self.add(at + timedelta(minutes=30), item.item_id, "store", "3601", "3601", "3601-BMS", "3601", "3601")
        for n, item in enumerate(i for i in top if i.kind != ItemKind.ANSWER_KEY):
            county, at = self.county_of[item.destination], to_county + n * tick
            self.add(at, item.item_id, "take_out", "3601", "3601-BMS", "3601", "3601", "3601")
            self.add(at + timedelta(minutes=5), item.item_id, "depart", "3601", "3601", county, "3601", "3601")
            self.add(at + timedelta(hours=2), item.item_id, "receive", county, "3601", county, "3601", county)
            self.add(at + timedelta(hours=2, minutes=20), item.item_id, "store", county, county, f"{county}-BMS",
                     county, county, "damaged" if item.item_id == damaged_box else "intact")
        for subject in plan.subjects:
            start, end = subject.starts_at.astimezone(LOCAL_TZ), subject.ends_at.astimezone(LOCAL_TZ)
            for box in (b for b in boxes if b.subject == subject.code):
                site, county = box.destination, self.county_of[box.destination]
                late = timedelta(hours=5) if site in offline else timedelta(seconds=20)
                t = start - timedelta(hours=2)
                self.add(t, box.item_id, "take_out", county, f"{county}-BMS", county, county, county)
                self.add(t + timedelta(minutes=5), box.item_id, "distribute", county, county, site, county, site)
                self.add(start - timedelta(minutes=75), box.item_id, "receive", site, county, site, county, site,
                         delay=late)
                self.add(start - timedelta(minutes=40), box.item_id, "unpack", site, site, site, site, site, delay=late)
                for k, bundle in enumerate(sorted(contents.get(box.item_id, []), key=lambda i: i.item_id)):
                    room = bundle.destination
                    if bundle.kind == ItemKind.LISTENING_DISC:
                        self.add(start - timedelta(minutes=12), bundle.item_id, "open", site, site, site, site, site,
                                 delay=late)
                        continue
                    self.add(start - timedelta(minutes=25) + k * timedelta(seconds=2), bundle.item_id, "distribute",
                             site, site, room, site, room, delay=late)
                    before = timedelta(minutes=8 if bundle.kind == ItemKind.PAPER_BUNDLE else 12)
                    self.add(start - before, bundle.item_id, "open", room, room, room, None, room, delay=late)
                    if bundle.kind != ItemKind.ANSWER_CARD_BUNDLE:
                        continue
                    cards = bundle.count - 1 if bundle.item_id == short_cards else bundle.count
                    self.add(end + timedelta(minutes=10), bundle.item_id, "seal", room, room, room, room, room,
                             count=cards, delay=late)
                    self.add(end + timedelta(minutes=20), bundle.item_id, "return", site, room, site, room, site,
                             count=cards, delay=late)
                    self.add(end + timedelta(minutes=40), bundle.item_id, "depart", site, site, county, site, site,
                             count=cards, delay=late)
                    self.add(end + timedelta(minutes=90), bundle.item_id, "receive", county, site, county, site,
                             county, count=cards)
                    self.add(end + timedelta(hours=3), bundle.item_id, "depart", county, county, "3601-PJ", county,
                             county, count=cards)
                    self.add(end + timedelta(hours=5), bundle.item_id, "receive_for_grading", "3601-PJ", county,
                             "3601-PJ", county, "3601-PJ", count=cards)
                    self.add(end + timedelta(days=3), bundle.item_id, "grade", "3601-PJ", "3601-PJ", "3601-PJ",
                             "3601-PJ", "3601-PJ", count=cards)
            for key in (i for i in items.values() if i.kind == ItemKind.ANSWER_KEY and i.subject == subject.code):
                self.add(end, key.item_id, "take_out", "3601", "3601-BMS", "3601", "3601", "3601")
                self.add(end + timedelta(minutes=45), key.item_id, "receive_for_grading", "3601-PJ", "3601",
                         "3601-PJ", "3601", "3601-PJ")
        leaked = next(i for i in items.values() if i.kind == ItemKind.PAPER_BUNDLE and i.subject == "YW")
        county = self.county_of[leaked.destination]
        self.add(datetime(2017, 6, 19, 23, 10, tzinfo=LOCAL_TZ), leaked.item_id, "take_out", county,
                 f"{county}-BMS", county, county, county, "damaged")
        self.events.sort(key=lambda e: (e[0], e[1], e[2], e[3]))


def _people(unit: str | None) -> list[dict[str, str]]:
    if not unit:
        return []
    return [{"badge": hashlib.sha256(f"{unit}-S{n}".encode()).hexdigest(), "staff": f"{unit}-S{n}"} for n in (1, 2)]


def leaves(plan: ExamPlan, items: list[Any]) -> Iterator[tuple[bytes, str, str | None, str | None, str | None,
                                                              datetime, dict[str, Any] | None]]:
    """(data, type, item, event key, station, received at, planted alert) of every leaf, in log order."""
    label_time = _ts(LABELS_AT)
    for item in items:
        digest = hashlib.sha256(item.item_id.encode()).hexdigest()
        leaf = {"issued_at": label_time, "item": item.item_id, "item_prev": None, "label": digest,
                "received_at": label_time, "text": "CUS1:" + str(int(digest, 16)) * 7, "type": "label"}
        yield _dump(leaf), "label", item.item_id, None, None, LABELS_AT, None
    schedule = Schedule(plan, items)
    schedule.build()
    kid = hashlib.sha256(b"bench-station").hexdigest()[:16]
    for arrival, at, station, event_id, item, action, frm, to, handed, received, seal, count, reason \
            in schedule.events:
        row = schedule.items[item]
        ev = {"action": action, "box": None, "count": count, "from_unit": frm, "handed_by": _people(handed),
              "id": event_id, "item": item, "label": hashlib.sha256(item.encode()).hexdigest(), "note": None,
              "photo": None, "reason": reason, "received_by": _people(received),
              "seal": {"condition": seal, "number": row.seal}, "station": station, "station_time": _ts(at),
              "to_unit": to, "v": 1}
        leaf = {"event": ev, "item": item, "item_prev": None, "kid": kid, "received_at": _ts(arrival), "sig": SIG,
                "type": "handover"}
        alert = None
        if arrival - at > timedelta(minutes=30):
            alert = {"code": "late_sync", "severity": "warning", "unit": to or frm,
                     "message": f"event {event_id} from station {station} reached the server late",
                     "details": {"station": station}}
        elif seal == "damaged":
            alert = {"code": "seal_damaged", "severity": "critical", "unit": to or frm,
                     "message": f"the seal of {item} was found damaged at {to or frm}", "details": {}}
        yield leaf, "handover", item, f"{station}/{event_id}", station, arrival, alert  # type: ignore[misc]


def build(scale_name: str, db: str, url: str, home: Path) -> int:
    """Create the instance, import the plan, write every leaf, node, the checkpoint and the alerts."""
    from sqlalchemy import insert, select

    from custody.keyring import Role
    from custody.log.jcs import canonical_json
    from custody.log.merkle import _range_nodes, integrate, leaf_hash
    from custody.sample import sample_people
    from store.instance import init_instance
    from store.logstore import LogStore
    from store.models import AlertRecord, Item, LogHead, LogLeaf, LogNode
    from store.plans import import_people, import_plan

    started = time.perf_counter()
    plan = bench_plan(SCALES[scale_name])
    instance, _ = init_instance(home, origin=f"bench.exam/{scale_name}", institute="3601", now=SETUP_AT,
                                secret=SECRET, url=url)
    with instance.db.write_session() as s:
        import_plan(s, plan, SETUP_AT, seal_prefix="FT17")
        import_people(s, sample_people(plan))
    instance.set_setting("exam", plan.exam)
    with instance.db.session() as s:
        items = list(s.scalars(select(Item).where(Item.exam == plan.exam).order_by(Item.id)))
    prev: dict[str, bytes] = {}
    border: dict[tuple[int, int], bytes] = {}
    size = 0
    batch: list[dict[str, Any]] = []
    alerts: list[dict[str, Any]] = []
    checked = 0

    def flush() -> None:
        nonlocal size, border
        if not batch:
            return
        hashes = [row["hash"] for row in batch]
        result = integrate(size, hashes, lambda ids: [border[i] for i in ids])
        with instance.db.write_session() as s:
            s.execute(insert(LogLeaf), batch)
            nodes = [{"level": lv, "idx": ix, "hash": h} for (lv, ix), h in result.nodes.items()]
            for start in range(0, len(nodes), CHUNK):
                s.execute(insert(LogNode), nodes[start:start + CHUNK])
            if alerts:
                s.execute(insert(AlertRecord), alerts)
        everything = {**border, **result.nodes}
        size = result.new_size
        border = {i: everything[i] for i in _range_nodes(0, size)}
        batch.clear()
        alerts.clear()

    for data, kind, item, key, station, received, alert in leaves(plan, items):
        if kind == "handover":
            leaf = data  # a dict: chain it to the item's previous leaf now
            assert isinstance(leaf, dict) and item is not None
            leaf["item_prev"] = prev[item].hex() if item in prev else None
            data = _dump(leaf)
            if checked < 200:
                assert data == canonical_json(leaf), "the bench's leaf bytes must be JCS"
                checked += 1
        digest = leaf_hash(data)
        if item is not None:
            prev[item] = digest
        index = size + len(batch)
        batch.append({"idx": index, "data": data, "hash": digest, "type": kind, "item": item, "event_key": key,
                      "station": station, "received_at": received})
        if alert is not None:
            alerts.append({"leaf_idx": index, "item": item, "message_zh": alert["message"],
                           "details": json.dumps(alert["details"]), "created_at": received,
                           **{k: alert[k] for k in ("code", "severity", "unit", "message")}})
        if len(batch) >= CHUNK:
            flush()
            print(f"\r  {scale_name}/{db}: {size:,} leaves", end="", file=sys.stderr, flush=True)
    flush()
    now = datetime(2017, 6, 26, 9, 0, tzinfo=LOCAL_TZ)
    with instance.db.write_session() as s:
        from custody.log.merkle import root
        store = LogStore(s)
        s.add(LogHead(id=1, size=size, root=root(size, store.get_nodes)))
        s.flush()
        from store.ledger import Ledger
        private = instance.keys.private_key(Role.LOG_SIGNER, instance.institute, now)
        store.sign_checkpoint(instance.origin, private, [Ledger(instance).verifier()], now)
    instance.close()
    print(f"\r  {scale_name}/{db}: {size:,} leaves built in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return size


def ensure(scale: str, db: str, rebuild: bool) -> tuple[Any, int]:
    """The cached bench instance of ``scale`` on ``db``, built if needed; (instance, leaves)."""
    from sqlalchemy import create_engine, text

    from store.instance import open_instance

    folder = ROOT / f"{scale}-{db}"
    marker = folder / "ready"
    if db == "sqlite":
        url = f"sqlite:///{folder / 'custody.db'}"
    else:
        url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/custody_bench_{scale}"
    if rebuild or not marker.exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        if db == "postgresql":
            admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "custody_bench_{scale}" WITH (FORCE)'))
                c.execute(text(f'CREATE DATABASE "custody_bench_{scale}"'))
            admin.dispose()
        size = build(scale, db, url, folder / "home")
        marker.write_text(str(size))
    from store.db import Database

    db = Database(url)
    db.migrate()  # new indexes (migrations) on a cached log
    with db.engine.connect() as c:  # fresh statistics, as autovacuum / a nightly ANALYZE keep them
        c.execute(text("ANALYZE"))
        c.commit()
    db.dispose()
    instance = open_instance(folder / "home", secret=SECRET, url=url)
    return instance, int(marker.read_text())


def timed(fn: Any, runs: int) -> tuple[list[float], list[float]]:
    """Wall and CPU (this process) seconds of ``runs`` calls."""
    wall, cpu = [], []
    for _ in range(runs):
        gc.collect()
        started, started_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return wall, cpu


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered) + 0.5) - 1))]


def measure(instance: Any, subject: str, runs: int) -> tuple[list[tuple[str, Any, bool]], int]:
    """The timings of one log: (what, (wall, cpu), is the target's row) and the subject's events."""
    from store.investigation import investigate

    def subject_report() -> Any:
        return investigate(instance, subject)

    cold = timed(subject_report, 1)  # the first report in a process parses the leaves
    report = subject_report()
    events = len(report.scans)
    leaked = report.ranking[0].gaps[0].item if report.ranking and report.ranking[0].gaps else None
    del report

    def leaked_report() -> Any:
        return investigate(instance, subject, leaked_item=leaked)

    def export() -> None:
        json.dumps(subject_report().to_json(), ensure_ascii=False)

    return [("subject report, first", cold, False), ("subject report", timed(subject_report, runs), True),
            ("leaked item report", timed(leaked_report, runs), False),
            ("+ every proof, JSON text", timed(export, 1), False)], events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", default="city,province")
    parser.add_argument("--dbs", default="sqlite,postgresql")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--subject", default="YW")
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    targets = {"city": 0.3, "province": 2.0}
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    print(f"{'log':<20} {'leaves':>10} {'events':>8} {'what':<26} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} "
          f"{'cpu p95':>7}  target (p95 wall)")
    for scale in args.scales.split(","):
        for db in args.dbs.split(","):
            instance, size = ensure(scale, db, args.rebuild)
            runs = args.runs if scale == "city" else max(3, args.runs // 2)
            rows, events = measure(instance, args.subject, runs)
            for what, (wall, cpu), is_target in rows:
                target = targets[scale] if is_target else None
                mark = "" if target is None else \
                    ("ok" if p95(wall) <= target else "MISSED") + f" <= {target * 1000:.0f}"
                print(f"{scale + '/' + db:<20} {size:>10,} {events:>8,} {what:<26} "
                      f"{statistics.median(wall) * 1000:>7.0f} {p95(wall) * 1000:>7.0f} {max(wall) * 1000:>7.0f} "
                      f"{p95(cpu) * 1000:>7.0f}  {mark}", flush=True)
            instance.close()
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
