"""Load benchmark of the station API: 50 stations posting signed batches to `custody serve` on SQLite.

Sets up a Nanchang-sized instance (the sample city plan, every label issued and
in the log) in a temporary folder, registers one station per exam site, starts
`custody serve` as a subprocess on a free port of 127.0.0.1, and lets 50 station
threads post signed batches (each station one request at a time, like a desk,
paced to the offered rate) for a bounded time. Then it stops the server and
checks, in the database, that every acknowledged event is in the log at the
index and with the leaf hash its receipt gave, and verifies a sample of receipts.

Events are signed before the clock starts: signing events is the stations'
work, not the server's; each request is signed (headers) when it is sent.

Prints sustained events/s, request latency p50/p99, and the lost-event check.
Target: >= 2,000 events/s for 60 s with p99 <= 500 ms and zero lost.

    .venv/bin/python bench/api_load.py [--seconds 60] [--stations 50] [--rate 2400] [--batch 25]
                                       [--threads 16] [--scale city|tiny] [--keep DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

SECRET = "bench-passphrase-not-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Desk:
    """One bench station: its code, unit, key, and the pre-built request bodies it will send."""

    code: str
    unit: str
    key: Ed25519PrivateKey
    kid: bytes
    bodies: list[tuple[bytes, list[str]]] = field(default_factory=list)  # (body, event ids)
    latencies: list[float] = field(default_factory=list)
    acknowledged: list[tuple[str, int, str, str]] = field(default_factory=list)  # (event id, index, hash, receipt)
    statuses: dict[str, int] = field(default_factory=dict)
    sent_at: list[tuple[float, int]] = field(default_factory=list)  # (time acknowledged, events)
    errors: list[str] = field(default_factory=list)


def setup(home: Path, scale: str, stations: int) -> list[Desk]:
    """A fresh instance with the sample exam, labels in the log, and one station per exam site."""
    from sqlalchemy import select

    from custody.keyring import Role, key_id
    from custody.plan import UnitKind
    from custody.sample import EXAM, EXAM_NAME, sample_people, sample_plan
    from keys.files import public_raw
    from store.instance import init_instance
    from store.issuance import issue_badges, issue_item_labels
    from store.ledger import Ledger
    from store.models import Station
    from store.plans import import_people, import_plan

    now = datetime.now(UTC) - timedelta(days=1)
    instance, _ = init_instance(home, origin="bench.exam/zk2017", institute="3601", now=now,
                                secret=SECRET.encode(), url=f"sqlite:///{home / 'custody.db'}")
    plan = sample_plan(scale)
    with instance.db.write_session() as s:
        import_plan(s, plan, now, seal_prefix="FT17")
        import_people(s, sample_people(plan))
    instance.set_setting("exam", EXAM)
    issue_item_labels(instance, EXAM, now)
    issue_badges(instance, EXAM, now)
    sites = plan.of_kind(UnitKind.SITE)
    desks = []
    rows = []
    for n in range(stations):
        site = sites[n % len(sites)]
        code = f"ST-BENCH-{n + 1:02d}"
        key = Ed25519PrivateKey.generate()
        raw = public_raw(key)
        instance.keys.register(raw, Role.STATION, code, now)
        rows.append(Station(code=code, unit=site.code, name=f"{site.name} 压力测试台", kid=key_id(raw).hex(),
                            registered_at=now))
        desks.append(Desk(code, site.code, key, key_id(raw)))
    with instance.db.write_session() as s:
        s.add_all(rows)
    Ledger(instance).record_labels(EXAM)  # labels and keys are leaves before any event
    with instance.db.session() as s:
        from store.models import Item, Person
        items = list(s.scalars(select(Item).where(Item.exam == EXAM)))
        people = list(s.scalars(select(Person)))
    instance.close()
    print(f"instance: {EXAM_NAME}, {len(items):,} items, {len(desks)} stations at {len({d.unit for d in desks})} "
          f"sites", flush=True)
    return desks, items, people, plan  # type: ignore[return-value]


def build_bodies(desks: list[Desk], items: list[Any], people: list[Any], plan: Any, events_per_desk: int,
                 batch: int) -> None:
    """Sign every desk's events (receive scans of the items bound for its site) and pack them in batches."""
    from custody.events import Action, Person, SealCondition, make_event, sign_event
    from custody.labels import cose_from_text
    from custody.plan import UnitKind

    badges: dict[str, list[Person]] = {}
    for p in people:
        cose = cose_from_text(p.badge_text)
        badges.setdefault(p.unit, []).append(Person(p.staff_id, hashlib.sha256(cose).hexdigest()))
    site_of = {}
    for item in items:
        site = plan.nearest(item.destination, UnitKind.SITE)
        if site is not None:
            site_of.setdefault(site.code, []).append(item)
    label = {i.item_id: hashlib.sha256(cose_from_text(i.label_text)).hexdigest() for i in items}
    now = datetime.now(UTC).replace(microsecond=0)
    for desk in desks:
        county = plan.nearest(desk.unit, UnitKind.COUNTY)
        mine = site_of[desk.unit]
        signer_kid, sign = desk.kid, desk.key.sign
        events = []
        for n in range(events_per_desk):
            item = mine[n % len(mine)]
            raw = make_event(id=f"{desk.code}-{n:07d}", item=item.item_id, label=label[item.item_id],
                             action=Action.RECEIVE, station=desk.code, station_time=now,
                             from_unit=county.code, to_unit=desk.unit,
                             handed_by=tuple(badges.get(county.code, [])[:2]),
                             received_by=tuple(badges.get(desk.unit, [])[:2]),
                             seal_number=item.seal, seal_condition=SealCondition.INTACT, count=item.count)
            events.append(sign_event(raw, signer_kid, sign))
        for start in range(0, len(events), batch):
            chunk = events[start:start + batch]
            desk.bodies.append((json.dumps({"events": chunk}, separators=(",", ":")).encode(),
                                [e["event"]["id"] for e in chunk]))


def run_desk(desk: Desk, port: int, start: float, stop: float, interval: float) -> None:
    from web.station_auth import sign_request

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    due = start + random.random() * interval  # spread the stations' first requests
    for body, ids in desk.bodies:
        now = time.perf_counter()
        if now >= stop:
            break
        if due > now:
            time.sleep(due - now)
        due += interval
        headers = sign_request("POST", "/api/v1/events", body, station=desk.code, kid=desk.kid, sign=desk.key.sign,
                               now=datetime.now(UTC))
        headers["Content-Type"] = "application/json"
        sent = time.perf_counter()
        try:
            connection.request("POST", "/api/v1/events", body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            desk.errors.append(f"{type(exc).__name__}: {exc}")
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            continue
        done = time.perf_counter()
        desk.latencies.append(done - sent)
        if response.status != 200:
            desk.errors.append(f"HTTP {response.status}: {data[:200]!r}")
            continue
        results = json.loads(data)["results"]
        acknowledged = 0
        for event_id, result in zip(ids, results, strict=True):
            desk.statuses[result["status"]] = desk.statuses.get(result["status"], 0) + 1
            if result["status"] in ("accepted", "duplicate"):
                desk.acknowledged.append((event_id, result["index"], result["leaf_hash"], result["receipt"]))
                acknowledged += 1
        desk.sent_at.append((done, acknowledged))
    connection.close()


def check_log(home: Path, desks: list[Desk], samples: int = 300) -> dict[str, Any]:
    """Every acknowledged event is in the log at its index with its hash; a sample of receipts verifies."""
    from sqlalchemy import select

    from custody.log.note import parse_verifier_key
    from custody.log.proofs import verify_tlog_proof
    from store.db import Database
    from store.models import LogLeaf

    db = Database(f"sqlite:///{home / 'custody.db'}")
    with db.session() as s:
        stored = {key: (idx, h.hex()) for idx, h, key in s.execute(
            select(LogLeaf.idx, LogLeaf.hash, LogLeaf.event_key).where(LogLeaf.event_key.like("ST-BENCH-%")))}
    db.dispose()
    acknowledged = [(d.code, *a) for d in desks for a in d.acknowledged]
    lost = [a for a in acknowledged if stored.get(f"{a[0]}/{a[1]}") != (a[2], a[3])]
    unique = {f"{a[0]}/{a[1]}" for a in acknowledged}
    log_key = parse_verifier_key(subprocess.run(
        [sys.executable, "-m", "custody", "--home", str(home), "log-key"], capture_output=True, text=True,
        env={**os.environ, "CUSTODY_PASSPHRASE": SECRET}, check=True).stdout.strip())
    rng = random.Random(7)
    verified = 0
    for _, _, index, leaf_hash, receipt in rng.sample(acknowledged, min(samples, len(acknowledged))):
        assert verify_tlog_proof(receipt, bytes.fromhex(leaf_hash), log_key).index == index
        verified += 1
    return {"acknowledged": len(acknowledged), "unique": len(unique), "stored": len(stored), "lost": len(lost),
            "receipts_verified": verified}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the timed run (default 60)")
    parser.add_argument("--stations", type=int, default=50)
    parser.add_argument("--rate", type=float, default=2400.0, help="events/s offered by all stations together")
    parser.add_argument("--batch", type=int, default=25, help="events per request")
    parser.add_argument("--threads", type=int, default=16, help="waitress worker threads")
    parser.add_argument("--scale", choices=["city", "tiny"], default="city")
    parser.add_argument("--keep", type=Path, help="keep the instance in this folder (default: a temporary one)")
    args = parser.parse_args()

    folder = args.keep or Path(tempfile.mkdtemp(prefix="custody-api-load-"))
    home = folder / "home"
    t = time.perf_counter()
    desks, items, people, plan = setup(home, args.scale, args.stations)
    per_desk = int(args.rate * args.seconds * 1.15 / args.stations) + args.batch
    build_bodies(desks, items, people, plan, per_desk, args.batch)
    print(f"set-up: {time.perf_counter() - t:.0f} s ({per_desk * len(desks):,} events signed in advance)",
          flush=True)

    port = free_port()
    env = {**os.environ, "CUSTODY_PASSPHRASE": SECRET, "PYTHONPATH": str(ROOT)}
    env.pop("CUSTODY_DATABASE_URL", None)
    # The server's output goes to a file: an unread pipe fills up (waitress warns about its task queue under
    # load) and then blocks the server's main loop on a log write, which stalls every request.
    server_log_path = folder / "serve.log"
    server_log = server_log_path.open("w", encoding="utf-8")
    server = subprocess.Popen([sys.executable, "-m", "custody", "--home", str(home), "serve", "--host", "127.0.0.1",
                               "--port", str(port), "--threads", str(args.threads)], env=env,
                              stdout=server_log, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 60
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/checkpoint")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            if server.poll() is not None or time.time() > deadline:
                server_log.flush()
                print(server_log_path.read_text(encoding="utf-8"), file=sys.stderr)
                raise SystemExit("custody serve did not start")
            time.sleep(0.3)
        interval = args.batch * args.stations / args.rate
        print(f"custody serve on 127.0.0.1:{port} ({args.threads} threads); {args.stations} stations, "
              f"{args.batch} events a request, one request every {interval:.2f} s each "
              f"(offered {args.rate:,.0f} events/s) for {args.seconds:.0f} s", flush=True)
        start = time.perf_counter() + 0.5
        stop = start + args.seconds
        threads = [threading.Thread(target=run_desk, args=(d, port, start, stop, interval)) for d in desks]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        elapsed = max(time.perf_counter(), stop) - start
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        server_log.close()

    latencies = sorted(x for d in desks for x in d.latencies)
    events = sum(n for d in desks for _, n in d.sent_at)
    windows: dict[int, int] = {}
    for d in desks:
        for at, n in d.sent_at:
            windows[int((at - start) // 5)] = windows.get(int((at - start) // 5), 0) + n
    full = [windows.get(w, 0) / 5 for w in range(int(args.seconds // 5))]
    statuses: dict[str, int] = {}
    for d in desks:
        for k, v in d.statuses.items():
            statuses[k] = statuses.get(k, 0) + v
    errors = [e for d in desks for e in d.errors]
    p50 = statistics.median(latencies) * 1000 if latencies else float("nan")
    p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000 if latencies else float("nan")
    rate = events / elapsed
    print(f"requests: {len(latencies):,}, errors: {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))
    print(f"results: {statuses}")
    print(f"sustained: {rate:,.0f} events/s acknowledged over {elapsed:.1f} s "
          f"(5-second windows: min {min(full, default=0):,.0f}, median {statistics.median(full) if full else 0:,.0f}"
          f", max {max(full, default=0):,.0f} events/s)")
    worst = latencies[-1] * 1000 if latencies else 0
    print(f"latency per request: p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {worst:.0f} ms")
    check = check_log(home, desks)
    print(f"log check: {check['acknowledged']:,} acknowledged, {check['unique']:,} distinct events, "
          f"{check['stored']:,} in the log, lost {check['lost']}; {check['receipts_verified']} receipts verified")
    ok = rate >= 2000 and p99 <= 500 and check["lost"] == 0 and not errors
    print(f"target (>= 2,000 events/s for {args.seconds:.0f} s, p99 <= 500 ms, zero lost): "
          f"{'PASS' if ok else 'FAIL'}")
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
