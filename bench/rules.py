"""Benchmark of the custody rules alone (``custody.rules.Tracker``), with a checksum of what they decide.

Runs the handover events of the simulated city exam (``store.simulation``: the ingest bench's
events, with its exceptions) through a fresh tracker, in the order and with the receive times
the ledger would give them (batches of arrivals within a minute), and prints:

  * the tracker's time per event (best of ``--repeat`` runs, the first run not timed);
  * how many item states the events changed (a box scan changes every bundle packed in it);
  * a checksum of every outcome (each alert's code, item, severity and details; each changed
    state) and of the final states and box contents.

The checksum is the oracle for a change meant to make the rules faster without changing what
they decide: run the bench before and after; the checksums must be equal.

    .venv/bin/python bench/rules.py [--events N] [--repeat 3] [--instance DIR]

The labels and badges are signed with keys made for each new instance, so checksums compare
only on one instance: build it once with ``--instance DIR`` and run every version against it.

When the machine's speed drifts more than the change being measured, count instructions instead:
``--callgrind`` runs the events once with callgrind's instrumentation on only for that run
(``callgrind_control``; Debian's valgrind), and callgrind prints the count when the process ends.
Fix the hash seed so that sets and dicts lay out alike (the same code then repeats within ~1 %):

    PYTHONHASHSEED=0 valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=/dev/null \
        .venv/bin/python bench/rules.py --instance DIR --events 10000 --callgrind
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import SECRET, city_instance  # noqa: E402


def exam_events(folder: Path) -> tuple[Any, list[tuple[Any, datetime]]]:
    """The city instance in ``folder`` (built there unless it is) and its events with receive times, in log order."""
    from custody.events import parse_event
    from store import simulation
    from store.instance import open_instance
    from store.plans import load_plan

    url = f"sqlite:///{folder / 'custody.db'}"
    if (folder / "custody.db").exists():
        instance = open_instance(folder / "home", secret=SECRET, url=url)
        with instance.db.session() as s:
            plan = load_plan(s, instance.current_exam(s))
    else:
        instance, plan = city_instance(folder, url)
    sim = simulation.ExamSimulation(instance, plan, {})  # not signed: the rules judge what a signature vouches for
    sim.build()
    events = [(parse_event(raw), received) for received, batch in sim.arrivals() for _, raw in batch]
    return instance, events


def outcome_digest(outcomes: list[Any], tracker: Any) -> str:
    digest = hashlib.sha256()
    for outcome in outcomes:
        digest.update(json.dumps([[a.code, a.item, a.severity, a.details] for a in outcome.alerts],
                                 sort_keys=True, default=str).encode())
        for item, state in outcome.changed.items():
            digest.update(json.dumps([item, state.to_json()], sort_keys=True).encode())
    digest.update(json.dumps({i: s.to_json() for i, s in tracker.changed_states().items()}, sort_keys=True).encode())
    digest.update(json.dumps({box: tracker.packed_in(box) for box in sorted(tracker.items)}).encode())
    return digest.hexdigest()[:16]


def fresh_tracker(instance: Any, exam: str) -> Any:
    """A tracker of the exam's items in their initial states, the collector settled as the ledger's writer runs."""
    from store.custody_rules import load_tracker
    from store.ledger import settle_collector

    with instance.db.session() as s:
        tracker = load_tracker(s, exam, 0).tracker
    settle_collector()
    return tracker


def count_instructions(instance: Any, exam: str, events: list[tuple[Any, datetime]]) -> None:
    """Record ``events`` once, with callgrind's instrumentation on for just that (it prints the count)."""
    import os
    import subprocess

    tracker = fresh_tracker(instance, exam)
    pid = str(os.getpid())
    subprocess.run(["callgrind_control", "--instr=on", pid], check=True, capture_output=True)
    for event, received in events:
        tracker.record(event, received)
    subprocess.run(["callgrind_control", "--instr=off", pid], check=True, capture_output=True)
    print(f"custody rules: {len(events):,} events recorded under callgrind; its count follows when this ends")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=0, help="the first N events (default: all)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--instance", type=Path,
                        help="build the city instance in this folder, or use the one built there before: the "
                             "labels are signed with new keys each build, so compare checksums on one instance")
    parser.add_argument("--callgrind", action="store_true",
                        help="run the events once, counting instructions under callgrind (see above)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.instance or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        instance, events = exam_events(folder)
        if args.events:
            events = events[:args.events]
        exam = instance.current_exam()
        if args.callgrind:
            count_instructions(instance, exam, events)
            instance.close()
            return
        times, digest, changed = [], "", 0
        for run in range(args.repeat + 1):
            tracker = fresh_tracker(instance, exam)
            outcomes = []
            start = time.perf_counter()
            for event, received in events:
                outcome = tracker.record(event, received)
                if run == 0:
                    outcomes.append(outcome)
            elapsed = time.perf_counter() - start
            if run == 0:  # kept every outcome for the checksum: not timed
                digest = outcome_digest(outcomes, tracker)
                changed = sum(len(o.changed) for o in outcomes)
                alerts = sum(len(o.alerts) for o in outcomes)
                del outcomes
            else:
                times.append(elapsed)
        instance.close()
    best = min(times)
    print(f"custody rules: {len(events):,} events, {changed:,} state changes, {alerts:,} alerts; "
          f"best of {len(times)}: {best:.2f} s, {best / len(events) * 1e6:.1f} µs an event; checksum {digest}")


if __name__ == "__main__":
    main()
