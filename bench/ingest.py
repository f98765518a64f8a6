"""Ingest benchmark for the custody log (issue 3).

Prints, on SQLite and on PostgreSQL:
  * events/s appended through Ledger.submit: station signatures checked, events
    chained per item, custody rules run, leaves and tree nodes stored, a checkpoint
    signed per batch, receipts (tlog-proofs) produced, in group-committed batches;
  * inclusion-proof time at 1,000,000 leaves (median and p99 over random leaves);
  * the CPU an event takes while appending, in the writer, the signature workers and this process
    (the machine's speed drifts from run to run; these show where the time goes), and the most events/s
    that CPU allows: the busiest interpreter lock, and all processes on the machine's cores;
  * the same batches appended by the writer alone, their signatures checked beforehand: the writer's
    own rate and CPU, with nothing beside it on the cores (the most the writer could give);
  * single-core Ed25519 verification speed on this machine (the limit: libsodium, which the server checks
    signatures with; OpenSSL's beside it) and the ratio.

Events are signed before the clock starts: signing is the stations' work, not the server's.
Batches are submitted in log order with ``--in-flight`` of them not yet appended (default 1: one
batch at a time; 2: the next batch's signatures are checked while the writer appends this one, as
when many stations submit at once). On 2026-12-01, alternated, two in flight gave 0-24 % more
events/s than one; three, four or six no more than two (the writer then takes the queued batches as
one group and never waits for the next, but the cores are no less busy: the CPU every process spends
on an event is the limit; see the README). Signatures are checked in ``--verify-workers``
processes (default: one per core; 0 checks them in the submitting thread). With ``--writer-process``
the appends run in a writer process of their own, as in ``custody serve`` (default: a writer thread).

    .venv/bin/python bench/ingest.py [--events 20000] [--batch 1000] [--proof-leaves 1000000]
                                     [--databases sqlite,postgresql] [--verify-workers N] [--in-flight 1]
                                     [--writer-process] [--repeat 1]

With ``--repeat N`` each database's ingest is measured N times, each on a new database, and a last
line gives the median, the lowest and the highest, and PASS only if every run met the target.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

PG_ADMIN = os.environ.get("CUSTODY_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
SECRET = b"bench-passphrase-not-secret"
T0 = datetime(2017, 5, 2, 1, 0, tzinfo=UTC)


def ed25519_rates(seconds: float = 2.0) -> tuple[float, float]:
    """Ed25519 verifications a second on one core: through ``custody.ed25519`` (libsodium, what the server
    checks every signature with: the limit) and, for comparison, OpenSSL through ``cryptography``."""
    from custody import ed25519

    key = Ed25519PrivateKey.generate()
    public = key.public_key()
    raw = public.public_bytes_raw()
    message = b"x" * 600
    signature = key.sign(message)

    def rate(check: Any) -> float:
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 2:
            for _ in range(500):
                check()
            n += 500
        return n / (time.perf_counter() - start)

    if not ed25519.verifies(raw, signature, message):
        sys.exit("Ed25519: a fresh signature did not verify")
    ours = rate(lambda: ed25519.verifies(raw, signature, message))
    return ours, rate(lambda: public.verify(signature, message))


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """User plus system CPU seconds of a process, or of one of its threads, so far (Linux ``/proc``)."""
    path = f"/proc/{pid}/task/{tid}/stat" if tid is not None else f"/proc/{pid}/stat"
    try:
        text = Path(path).read_text()
    except OSError:  # gone, or not Linux
        return float("nan")
    fields = text[text.rindex(")") + 2:].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds spent between :meth:`start` and :meth:`stop` by the writer (the ledger's writer
    thread, or its writer process), the signature workers, and this whole process. The machine's
    speed drifts from run to run; the CPU an event takes shows where the time goes."""

    def __init__(self, ledger: Any):
        self.ledger = ledger  # its writer thread, not another by that name (an earlier ledger's never ends)

    def start(self) -> None:
        import multiprocessing

        children = multiprocessing.active_children()
        self.writer_pid = next((c.pid for c in children if c.name == "custody-log-writer"), None)
        self.workers = [c.pid for c in children if c.name != "custody-log-writer" and c.pid is not None]
        # with a writer process, the thread of that name only hands it the groups
        self.writer_tid = self._writer_thread() if self.writer_pid is None else None
        self.before = self._read()
        if self.writer_tid is None and self.writer_pid is None:  # started by the first batch: all of it counts
            self.before = (0.0, *self.before[1:])

    def _writer_thread(self) -> int | None:
        writer = self.ledger._writer  # the bench reaches inside: started by the first batch
        return writer.native_id if writer is not None else None

    def _read(self) -> tuple[float, float, float]:
        own = os.getpid()
        writer = (cpu_seconds(own, self.writer_tid) if self.writer_tid is not None else
                  cpu_seconds(self.writer_pid) if self.writer_pid is not None else float("nan"))
        return writer, sum(cpu_seconds(pid) for pid in self.workers), cpu_seconds(own)

    def stop(self) -> dict[str, float]:
        if self.writer_pid is None:
            self.writer_tid = self.writer_tid or self._writer_thread()
        after = self._read()
        writer, workers, process = (b - a for a, b in zip(self.before, after, strict=True))
        return {"writer_cpu": writer, "workers_cpu": workers, "process_cpu": process, "workers": len(self.workers)}


def cpu_bounds(r: dict[str, float], per: float, writer_process: bool) -> str:
    """The most events/s the CPU an event took allows: the busiest interpreter (its lock runs one thread's
    Python at a time: the writer's with the submission path, unless the writer has a process of its own), and
    every process together on this machine's cores. Upper bounds: a process's CPU includes C code that runs
    outside its lock (SQLite, the fsyncs)."""
    own = r["process_cpu"] * per
    writer_apart = r["writer_cpu"] * per if writer_process else 0.0
    lock = max(own, writer_apart)
    total = own + writer_apart + r["workers_cpu"] * per
    cores = os.cpu_count() or 1
    which = "the writer process" if writer_apart > own else "this process"
    return (f"bounds from that CPU: one interpreter lock ({which}, {lock:,.0f} µs an event) at most "
            f"{1e6 / lock:,.0f} events/s; all processes ({total:,.0f} µs an event on {cores} cores) at most "
            f"{cores * 1e6 / total:,.0f} events/s")


def make_database(kind: str, folder: Path) -> tuple[str, object]:
    if kind == "sqlite":
        return f"sqlite:///{folder / 'custody.db'}", None
    from sqlalchemy import create_engine, text

    name = f"custody_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name, (admin, name)


def drop_database(handle: object) -> None:
    if handle is None:
        return
    from sqlalchemy import text

    admin, name = handle  # type: ignore[misc]
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def city_instance(folder: Path, url: str):  # type: ignore[no-untyped-def]
    from custody.sample import EXAM, sample_people, sample_plan
    from store import simulation
    from store.instance import init_instance
    from store.issuance import issue_badges, issue_item_labels
    from store.plans import import_people, import_plan

    instance, _ = init_instance(folder / "home", origin="bench.exam/zk2017", institute="3601", now=T0,
                                secret=SECRET, url=url)
    plan = sample_plan("city")
    with instance.db.write_session() as s:
        import_plan(s, plan, T0, seal_prefix="FT17")
        import_people(s, sample_people(plan))
    instance.set_setting("exam", EXAM)
    issue_item_labels(instance, EXAM, simulation.LABELS_AT)
    issue_badges(instance, EXAM, simulation.LABELS_AT)
    return instance, plan


@contextmanager
def exam_ledger(kind: str, events: int, batch: int, **ledger_options: Any) -> Iterator[
        tuple[Any, dict[str, datetime], list[tuple[datetime, list[dict[str, Any]]]]]]:
    """A ledger on a new city instance (labels logged, stations registered), its settable clock, and the
    simulated exam's first batches of signed submissions (at least ``events``), each with its arrival time."""
    from store import simulation
    from store.ledger import Ledger, settle_collector

    with tempfile.TemporaryDirectory() as tmp:
        url, handle = make_database(kind, Path(tmp))
        try:
            instance, plan = city_instance(Path(tmp), url)
            clock = {"now": simulation.LABELS_AT}
            ledger = Ledger(instance, clock=lambda: clock["now"], **ledger_options)
            ledger.start()
            ledger.record_labels(plan.exam)
            settle_collector()  # as custody serve does once started
            sim = simulation.ExamSimulation(instance, plan,
                                            simulation.register_stations(instance, plan, simulation.STATIONS_AT))
            sim.build()
            signed, total = [], 0
            for arrival, submissions in sim.batches(batch):
                signed.append((arrival, submissions))
                total += len(submissions)
                if total >= events:
                    break
            yield ledger, clock, signed
            ledger.close()
            instance.close()
        finally:
            drop_database(handle)


def bench_ingest(kind: str, events: int, batch: int, workers: int, in_flight: int,
                 writer_process: bool = False) -> dict[str, float]:
    with exam_ledger(kind, events, batch, verify_workers=workers, writer_process=writer_process) as (
            ledger, clock, signed):
        total = sum(len(b) for _, b in signed)
        statuses: dict[str, int] = {}
        # Batches in flight, oldest first: the writer's clock is the oldest one's arrival.
        flight: deque[tuple[datetime, Future[list[dict[str, Any]]]]] = deque()
        clock["now"] = signed[0][0]

        def finish_oldest() -> None:
            for result in flight[0][1].result():
                statuses[result["status"]] = statuses.get(result["status"], 0) + 1
            flight.popleft()
            if flight:
                clock["now"] = flight[0][0]

        meter = CpuMeter(ledger)
        meter.start()
        start = time.perf_counter()
        for arrival, submissions in signed:
            while len(flight) >= in_flight:
                finish_oldest()
            if not flight:
                clock["now"] = arrival
            flight.append((arrival, ledger.submit_nowait(submissions)))
        while flight:
            finish_oldest()
        elapsed = time.perf_counter() - start
        cpu = meter.stop()
    return {"events": total, "seconds": elapsed, "rate": total / elapsed, "batches": len(signed),
            "accepted": statuses.get("accepted", 0), **cpu}


def bench_writer_alone(kind: str, events: int, batch: int) -> dict[str, float]:
    """The same batches appended one at a time in this thread, their signatures checked beforehand: what the
    writer alone does, with no signature checks beside it (on two cores, they slow it down). The first batch
    is appended before the clock starts (it logs the stations' keys, after which every batch is checked
    against the registry as it then is). CPU is this process's: the appends and the snapshot thread."""
    with exam_ledger(kind, events, batch, verify_workers=0) as (ledger, clock, arrivals):
        clock["now"] = arrivals[0][0]
        ledger.submit(arrivals[0][1])
        # the bench reaches inside: checked here, appended as the writer thread would (Ledger has no
        # public way to split the two)
        checked = [(arrival, ledger._verify(submissions)) for arrival, submissions in arrivals[1:]]
        counted = sum(len(pending) for _, pending in checked)
        cpu, start = time.process_time(), time.perf_counter()
        for arrival, pending in checked:
            clock["now"] = arrival
            ledger._append_group(pending)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"events": counted, "rate": counted / elapsed, "cpu": cpu}


def bench_proofs(kind: str, leaves: int, samples: int = 400) -> dict[str, float]:
    """Build a tree of ``leaves`` synthetic leaves through the real store, then time proofs."""
    from custody.log.merkle import leaf_hash
    from store.instance import init_instance
    from store.ledger import Ledger
    from store.logstore import LogStore, NewLeaf

    with tempfile.TemporaryDirectory() as tmp:
        url, handle = make_database(kind, Path(tmp))
        try:
            instance, _ = init_instance(Path(tmp) / "home", origin="bench.exam/proofs", institute="3601", now=T0,
                                        secret=SECRET, url=url)
            ledger = Ledger(instance, clock=lambda: T0 + timedelta(days=1))
            built = time.perf_counter()
            chunk = 50_000
            for start in range(0, leaves, chunk):
                with instance.db.write_session() as s:
                    rows = []
                    for i in range(start, min(leaves, start + chunk)):
                        data = b'{"n":%d,"type":"bench"}' % i
                        rows.append(NewLeaf(data, leaf_hash(data), "bench", None, None, None, T0))
                    LogStore(s).append(rows)
            ledger.append_records([{"type": "bench_checkpoint"}])  # signs a checkpoint over it all
            built = time.perf_counter() - built
            size = ledger.size()
            rng = random.Random(7)
            times = []
            for _ in range(samples):
                index = rng.randrange(size)
                t = time.perf_counter()
                ledger.inclusion_proof(index)
                times.append((time.perf_counter() - t) * 1000)
            instance.close()
            times.sort()
            return {"size": size, "build_s": built, "median_ms": statistics.median(times),
                    "p99_ms": times[int(len(times) * 0.99) - 1]}
        finally:
            drop_database(handle)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=30000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--proof-leaves", type=int, default=1_000_000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--verify-workers", type=int, default=os.cpu_count() or 1,
                        help="processes checking signatures (default: one per core; 0: in the submitting thread)")
    parser.add_argument("--in-flight", type=int, default=1,
                        help="batches submitted and not yet appended (default 1: one batch at a time; 2: the next "
                             "batch's signatures are checked while the writer appends this one)")
    parser.add_argument("--writer-process", action="store_true",
                        help="append in a writer process of its own, as custody serve does (default: a thread)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="ingest runs per database, each on a new database (the machine's speed drifts: the "
                             "target counts as met only if every run meets it)")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    verify_rate, openssl_rate = ed25519_rates()
    print(f"Ed25519 verification, one core: {verify_rate:,.0f}/s with libsodium, what the server checks with "
          f"(the limit for ingest); OpenSSL: {openssl_rate:,.0f}/s")
    targets = {"sqlite": 5000, "postgresql": 3000}
    for kind in args.databases.split(","):
        rates = []
        for run in range(1, args.repeat + 1):
            r = bench_ingest(kind, args.events, args.batch, args.verify_workers, args.in_flight, args.writer_process)
            rates.append(r["rate"])
            verdict = "PASS" if r["rate"] >= targets[kind] else "FAIL"
            label = f"[{kind}] ingest" + (f" (run {run} of {args.repeat})" if args.repeat > 1 else "")
            print(f"{label}: {r['events']:,} events in {r['batches']} batches, {r['seconds']:.1f} s: "
                  f"{r['rate']:,.0f} events/s (target >= {targets[kind]:,}) {verdict}; "
                  f"{r['rate'] / verify_rate:.2f} of the Ed25519 limit; accepted {r['accepted']:,}; "
                  f"signatures in {args.verify_workers} worker process(es), {args.in_flight} batch(es) in flight, "
                  f"writer in {'its own process' if args.writer_process else 'a thread'}")
            per = 1e6 / r["events"]
            writer = "the hand-over to the writer" if args.writer_process else "the writer thread"
            print(f"[{kind}] CPU an event while appending: writer {r['writer_cpu'] * per:,.0f} µs (busy "
                  f"{r['writer_cpu'] / r['seconds']:.0%} of the time), signature workers "
                  f"{r['workers_cpu'] * per:,.0f} µs ({r['workers']} processes), this process in all "
                  f"{r['process_cpu'] * per:,.0f} µs ({writer}, the submitting thread, the bench)")
            print(f"[{kind}] {cpu_bounds(r, per, args.writer_process)}")
        if args.repeat > 1:
            met = sum(rate >= targets[kind] for rate in rates)
            print(f"[{kind}] ingest over {args.repeat} runs: median {statistics.median(rates):,.0f}, lowest "
                  f"{min(rates):,.0f}, highest {max(rates):,.0f} events/s; target >= {targets[kind]:,} met in {met} "
                  f"of {args.repeat}: {'PASS' if met == args.repeat else 'FAIL'}")
        w = bench_writer_alone(kind, args.events, args.batch)
        print(f"[{kind}] the writer alone (signatures checked beforehand, nothing beside it): {w['events']:,} "
              f"events, {w['rate']:,.0f} events/s, CPU {w['cpu'] * 1e6 / w['events']:,.0f} µs an event")
        p = bench_proofs(kind, args.proof_leaves)
        verdict = "PASS" if p["p99_ms"] <= 5 else "FAIL"
        print(f"[{kind}] inclusion proof at {p['size']:,} leaves: median {p['median_ms']:.2f} ms, "
              f"p99 {p['p99_ms']:.2f} ms (target <= 5 ms) {verdict}; tree built in {p['build_s']:.0f} s")


if __name__ == "__main__":
    main()
