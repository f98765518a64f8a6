"""Benchmark of ``custody verify``: full speed on a log of >= 1,000,000 events, incremental time for 300k more.

    .venv/bin/python bench/verify.py [--events 1000000] [--new 300000] [--workers 2] [--rebuild]

Building the log through the ledger (one verified submission at a time) would
take an hour, so the bench builds it directly, the way the ledger would have:

- a Nanchang-shaped exam scaled up (``custody.sample`` with ~11x the rooms) is
  imported, its labels and badges are signed, and its ``label`` and ``key``
  leaves go through the real ledger (``Ledger.record_labels``);
- every station gets a real Ed25519 key in the registry; the handover events of
  the simulated exam (``store.simulation.ExamSimulation``) are signed by them
  (in a process pool) and wrapped in handover leaves of the real format
  (RFC 8785 bytes, ``item_prev`` chains, server receive times in batches of 1,000);
- the tree is ``custody.log.merkle.integrate``; a checkpoint is signed with the
  log key every 1,000 leaves; the alerts are those of ``custody.rules.Tracker``
  run over the events in order, as the ledger's writer would have stored them.

The result is cached under /tmp (``base.db`` with the first --events events,
``full.db`` with --new more); a run copies ``base.db``, verifies it in full,
appends the new rows as the ledger would have, and verifies incrementally.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import multiprocessing
import os
import shutil
import sqlite3
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import ed25519_rates  # noqa: E402

SECRET = b"bench-passphrase-not-secret"
CITY_EVENTS = 128_907  # handovers of the city-sized sample exam
TARGET_FULL = 15_000.0
TARGET_INCREMENTAL = 30.0
CHUNK = 1000

_SEEDS: dict[str, bytes] = {}


def _jcs(obj: Any) -> bytes:
    # Exact RFC 8785 for these objects (no floats, only BMP text); checked against rfc8785 on a sample.
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _sign_chunk(chunk: list[tuple[str, dict[str, Any]]]) -> list[str]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    keys: dict[str, Any] = {}
    out = []
    for station, raw in chunk:
        key = keys.get(station)
        if key is None:
            key = keys[station] = Ed25519PrivateKey.from_private_bytes(_SEEDS[station])
        out.append(base64.b64encode(key.sign(_jcs(raw))).decode("ascii"))
    return out


def _judge(plan: Any, items: dict[str, Any], events: list[tuple[datetime, dict[str, Any]]], first: int,
           out: Any) -> None:
    """Child process: the custody rules over every event, in order; the alerts the writer would store."""
    import gc

    from custody.events import parse_event
    from custody.rules import Tracker

    gc.disable()
    tracker = Tracker(plan, items)
    rows = []
    for n, (received, raw) in enumerate(events):
        outcome = tracker.record(parse_event(raw), received)
        for alert in outcome.alerts:
            event = raw
            rows.append((first + n, alert.item, event["to_unit"] or event["from_unit"], alert.code, alert.severity,
                         alert.message, alert.message_zh, json.dumps(alert.details, ensure_ascii=False, default=str),
                         received))
    out.put(rows)


def _fmt(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build(cache: Path, events_wanted: int, new: int, workers: int) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from sqlalchemy import insert, select

    import custody.sample as sample
    from custody.keyring import Role, key_id
    from custody.labels import ItemKind
    from custody.log.checkpoint import Checkpoint
    from custody.log.jcs import canonical_json
    from custody.log.merkle import integrate, leaf_hash
    from custody.log.note import sign_note
    from custody.plan import UnitKind
    from custody.rules import ItemInfo
    from store.instance import init_instance
    from store.issuance import issue_badges, issue_item_labels
    from store.ledger import Ledger
    from store.logstore import write_witness_copy
    from store.models import AlertRecord, Item, ItemHead, KeyRecord, LogCheckpoint, LogHead, LogLeaf, LogNode, Station
    from store.plans import import_people, import_plan
    from store.simulation import LABELS_AT, SETUP_AT, STATIONS_AT, ExamSimulation, station_code

    t0 = time.perf_counter()
    if cache.exists():
        shutil.rmtree(cache)
    home = cache / "home"
    factor = math.ceil((events_wanted + new) * 1.03 / CITY_EVENTS)
    city = sample.SCALES["city"]
    sample.SCALES["bench"] = sample.Scale(sites=city.sites * factor, rooms=city.rooms * factor,
                                          candidates=city.candidates * factor, counties=city.counties)
    plan = sample.sample_plan("bench")
    instance, _ = init_instance(home, origin="nanchang.exam/zk2017", institute="3601", now=SETUP_AT, secret=SECRET,
                                url=f"sqlite:///{cache / 'full.db'}")
    with instance.db.write_session() as s:
        import_plan(s, plan, SETUP_AT, seal_prefix="FT17")
        import_people(s, sample.sample_people(plan))
    instance.set_setting("exam", plan.exam)
    issue_item_labels(instance, plan.exam, SETUP_AT)
    issue_badges(instance, plan.exam, SETUP_AT)
    print(f"  plan x{factor}: {len(plan.units)} units; labels and badges signed ({time.perf_counter() - t0:.0f} s)",
          flush=True)

    # Stations: real keys in the registry (kept in memory; the bench never writes station key files).
    handing = [u for u in plan.units if u.kind in (UnitKind.PRINTER, UnitKind.CITY, UnitKind.COUNTY, UnitKind.SITE,
                                                    UnitKind.ROOM, UnitKind.GRADING)]
    kids: dict[str, str] = {}
    with instance.db.write_session() as s:
        for unit in handing:
            code = station_code(unit.code)
            private = Ed25519PrivateKey.generate()
            seed = private.private_bytes_raw()
            raw = private.public_key().public_bytes_raw()
            _SEEDS[code] = seed
            kids[code] = key_id(raw).hex()
            s.add(KeyRecord(kid=kids[code], public_raw=raw, role=Role.STATION.value, owner=code,
                            valid_from=STATIONS_AT))
            s.add(Station(code=code, unit=unit.code, name=unit.name, kid=kids[code], registered_at=STATIONS_AT))
    ledger = Ledger(instance, clock=lambda: LABELS_AT)
    ledger.record_labels(plan.exam)
    simulation = ExamSimulation(instance, plan, {})
    simulation.build()
    ordered = sorted(simulation.out.events, key=lambda e: (e[0], e[1], e[2], e[3]["id"]))
    total = min(len(ordered), events_wanted + new)
    ordered = ordered[:total]
    if total < events_wanted + new:
        print(f"  warning: the scaled exam has only {total} events", flush=True)
    assert all(_jcs(e[3]) == canonical_json(e[3]) for e in ordered[:: max(1, total // 2000)])
    print(f"  {total} events planned ({time.perf_counter() - t0:.0f} s)", flush=True)

    # Server receive times: the ledger takes batches of 1,000 and stamps them with the batch's last arrival.
    received = []
    for start in range(0, total, CHUNK):
        arrival = max(e[0] for e in ordered[start:start + CHUNK])
        received.extend([arrival] * len(ordered[start:start + CHUNK]))

    with instance.db.session() as s:
        first = s.get(LogHead, 1).size
        heads = {item: h for item, h in s.execute(select(ItemHead.item, ItemHead.leaf_hash))}
        from store.custody_rules import labels_before

        labels = labels_before(s, first)
        items = {r.item_id: ItemInfo(item_id=r.item_id, kind=ItemKind(r.kind), subject=r.subject,
                                     destination=r.destination, count=r.count, seal=r.seal, parent_box=r.parent_box,
                                     label=labels.get(r.item_id))
                 for r in s.scalars(select(Item).where(Item.exam == plan.exam))}
    ctx = multiprocessing.get_context("fork")
    alerts_out = ctx.Queue()
    judge = ctx.Process(target=_judge, args=(plan, items, [(received[i], ordered[i][3]) for i in range(total)],
                                             first, alerts_out))
    judge.start()
    with ctx.Pool(workers) as pool:
        chunks = [[(e[2], e[3]) for e in ordered[i:i + 5000]] for i in range(0, total, 5000)]
        sigs = [sig for part in pool.imap(_sign_chunk, chunks) for sig in part]
    print(f"  {total} events signed ({time.perf_counter() - t0:.0f} s)", flush=True)

    alerts = alerts_out.get()
    judge.join()
    print(f"  {len(alerts)} alerts judged ({time.perf_counter() - t0:.0f} s)", flush=True)

    def leaves(lo: int, hi: int) -> tuple[list[dict[str, Any]], list[bytes]]:
        rows, hashes = [], []
        for n in range(lo, hi):
            _, _, station, raw = ordered[n]
            item = raw["item"]
            prev = heads.get(item)
            leaf = {"type": "handover", "event": raw, "kid": kids[station], "sig": sigs[n],
                    "received_at": _fmt(received[n]), "item": item, "item_prev": prev.hex() if prev else None}
            data = _jcs(leaf)
            h = leaf_hash(data)
            heads[item] = h
            hashes.append(h)
            rows.append({"idx": first + n, "data": data, "hash": h, "type": "handover", "item": item,
                         "event_key": f"{station}/{raw['id']}", "station": station, "received_at": received[n]})
        return rows, hashes

    sign_key = instance.keys.private_key(Role.LOG_SIGNER, "3601", LABELS_AT)
    origin = instance.origin

    def append(lo: int, hi: int) -> bytes:
        """Store events [lo, hi) as the ledger's writer would: leaves, nodes, head, checkpoints, chain heads."""
        note = b""
        from store.logstore import LogStore

        last: dict[str, tuple[int, bytes]] = {}
        with instance.db.write_session() as s:
            nodes: dict[tuple[int, int], bytes] = {}
            size = first + lo
            store = LogStore(s)

            def get(ids: Any) -> list[bytes]:
                missing = [x for x in ids if x not in nodes]
                found = dict(zip(missing, store.get_nodes(missing), strict=True)) if missing else {}
                return [nodes[x] if x in nodes else found[x] for x in ids]

            for start in range(lo, hi, CHUNK):
                end = min(hi, start + CHUNK)
                rows, hashes = leaves(start, end)
                result = integrate(size, hashes, get)
                s.execute(insert(LogLeaf), rows)
                s.execute(insert(LogNode), [{"level": lv, "idx": i, "hash": h} for (lv, i), h in result.nodes.items()])
                nodes.update(result.nodes)
                for row in rows:
                    last[row["item"]] = (row["idx"], row["hash"])
                size = result.new_size
                note = sign_note(Checkpoint(origin, size, result.root).body(), origin, sign_key)
                s.add(LogCheckpoint(size=size, note=note.decode(), signed_at=received[end - 1]))
                head = s.get(LogHead, 1)
                head.size, head.root = size, result.root
                s.flush()
            stored = [{"leaf_idx": a[0], "item": a[1], "unit": a[2], "code": a[3], "severity": a[4], "message": a[5],
                       "message_zh": a[6], "details": a[7], "created_at": a[8]}
                      for a in alerts if first + lo <= a[0] < first + hi]
            if stored:
                s.execute(insert(AlertRecord), stored)
            for item, (idx, h) in last.items():
                row = s.get(ItemHead, item)
                if row is None:
                    s.add(ItemHead(item=item, leaf_hash=h, idx=idx, state=None, state_size=0))
                else:
                    row.leaf_hash, row.idx = h, idx
        return note

    base = min(events_wanted, total)
    note = append(0, base)
    write_witness_copy(home, note)
    instance.db.dispose()
    shutil.copyfile(cache / "full.db", cache / "base.db")
    shutil.copytree(home, cache / "home-base")
    print(f"  base log stored: {first + base} leaves ({time.perf_counter() - t0:.0f} s)", flush=True)
    if total > base:
        note = append(base, total)
        write_witness_copy(home, note)
    instance.close()
    with sqlite3.connect(cache / "full.db") as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    (cache / "meta.json").write_text(json.dumps({"base_events": base, "new_events": total - base,
                                                 "labels_and_keys": first, "factor": factor}), encoding="utf-8")
    print(f"  built in {time.perf_counter() - t0:.0f} s", flush=True)


def append_new(work_db: Path, full_db: Path, base_leaves: int) -> None:
    """The new events arrive: copy their rows from full.db as the ledger's writer would have stored them."""
    c = sqlite3.connect(work_db)
    try:
        c.execute("ATTACH DATABASE ? AS src", (str(full_db),))
        c.execute("BEGIN")
        c.execute("INSERT INTO log_leaves SELECT * FROM src.log_leaves WHERE idx >= ?", (base_leaves,))
        c.execute("INSERT OR IGNORE INTO log_nodes SELECT * FROM src.log_nodes")
        c.execute("INSERT OR IGNORE INTO log_checkpoints SELECT * FROM src.log_checkpoints")
        c.execute("INSERT INTO alerts (leaf_idx, item, unit, code, severity, message, message_zh, details, created_at) "
                  "SELECT leaf_idx, item, unit, code, severity, message, message_zh, details, created_at "
                  "FROM src.alerts WHERE leaf_idx >= ?", (base_leaves,))
        c.execute("DELETE FROM item_heads")
        c.execute("INSERT INTO item_heads SELECT * FROM src.item_heads")
        c.execute("UPDATE log_head SET size = (SELECT size FROM src.log_head), root = (SELECT root FROM src.log_head)")
        c.execute("COMMIT")
    finally:
        c.close()


def _cpu() -> float:
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="handover events in the base log")
    parser.add_argument("--new", type=int, default=300_000, help="events that arrive before the incremental run")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--cache", type=Path, help="cache folder (default /tmp/custody-verify-bench-...)")
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    cache = args.cache or Path(f"/tmp/custody-verify-bench-v1-{args.events}-{args.new}")
    if args.rebuild or not (cache / "meta.json").exists():
        print(f"building the bench log in {cache} (cached for later runs) ...", flush=True)
        build(cache, args.events, args.new, args.workers)
    meta = json.loads((cache / "meta.json").read_text(encoding="utf-8"))
    from store.db import Database

    for name in ("base.db", "full.db"):  # a cache built before a newer migration: bring it up to date
        db = Database(f"sqlite:///{cache / name}")
        db.migrate()
        db.dispose()

    from store.instance import open_instance
    from store.verification import VerifyOptions, verify_instance

    work = cache / "work"
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(cache / "home-base", work / "home")
    shutil.copyfile(cache / "base.db", work / "custody.db")
    instance = open_instance(work / "home", secret=SECRET, url=f"sqlite:///{work / 'custody.db'}")
    base_leaves = meta["labels_and_keys"] + meta["base_events"]
    print(f"log: {base_leaves:,} leaves ({meta['base_events']:,} handover events, {meta['labels_and_keys']:,} label "
          f"and key leaves); {os.cpu_count()} cores, {args.workers} verification workers", flush=True)
    cpu0 = _cpu()
    full = verify_instance(instance, VerifyOptions(full=True, workers=args.workers))
    full_cpu = _cpu() - cpu0
    stats = full.report["stats"]
    assert full.ok, json.dumps(full.report["findings"][:5], ensure_ascii=False)
    instance.close()

    append_new(work / "custody.db", cache / "full.db", base_leaves)
    shutil.copyfile(cache / "home" / "checkpoint", work / "home" / "checkpoint")
    instance = open_instance(work / "home", secret=SECRET, url=f"sqlite:///{work / 'custody.db'}")
    t0, cpu0 = time.perf_counter(), _cpu()
    incremental = verify_instance(instance, VerifyOptions(workers=args.workers))
    inc_seconds = time.perf_counter() - t0
    inc_cpu = _cpu() - cpu0
    assert incremental.ok, json.dumps(incremental.report["findings"][:5], ensure_ascii=False)
    assert incremental.report["mode"] == "incremental"
    instance.close()
    rate, openssl_rate = ed25519_rates()

    full_rate = stats["events_per_second"]
    new_leaves = incremental.report["verified_to"] - incremental.report["verified_from"]
    print()
    print(f"full verification:        {full.report['verified_to']:,} leaves in {stats['seconds']:.1f} s = "
          f"{full_rate:,.0f} events/s ({stats['workers']} workers)   target >= {TARGET_FULL:,.0f}   "
          f"{'PASS' if full_rate >= TARGET_FULL else 'FAIL'}")
    print(f"incremental verification: {new_leaves:,} new events in {inc_seconds:.1f} s (whole run, "
          f"{new_leaves / inc_seconds:,.0f} events/s)   target <= {TARGET_INCREMENTAL:.0f} s   "
          f"{'PASS' if inc_seconds <= TARGET_INCREMENTAL else 'FAIL'}")
    cores = os.cpu_count() or 1
    print(f"CPU time: full {full_cpu:.0f} s, incremental {inc_cpu:.0f} s (all processes); on {cores} otherwise idle "
          f"cores that is at best {full.report['verified_to'] / (full_cpu / cores):,.0f} events/s full and "
          f"{inc_cpu / cores:.1f} s incremental. Load average now: {os.getloadavg()[0]:.1f} (other work on the "
          f"machine slows the wall-clock figures)")
    print(f"Ed25519 verification, one core: {rate:,.0f} signatures/s with libsodium, what the verifier checks with "
          f"(the limit: {os.cpu_count()} cores give at most {rate * (os.cpu_count() or 1):,.0f}/s before anything "
          f"else); OpenSSL: {openssl_rate:,.0f}/s")


if __name__ == "__main__":
    main()
