"""What SQLite's WAL checkpoint threshold and page cache do to storing the log's leaves.

Builds the log's leaf table with its indexes (the DDL of ``store.models.LogLeaf``), appends
``--leaves`` handover-like leaves in transactions of ``--batch`` (random items and idempotency keys,
as stations send them) with the settings of ``custody`` (``store.db``: journal_mode WAL, synchronous
FULL), and prints the time and CPU a leaf takes for each combination of WAL checkpoint threshold
(pages) and page cache (KiB). Each combination runs ``--repeat`` times, alternated with the others,
on a new database file; the best run is printed.

    .venv/bin/python bench/sqlite_settings.py [--leaves 300000] [--batch 1000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Table  # noqa: E402
from sqlalchemy.dialects import sqlite  # noqa: E402
from sqlalchemy.schema import CreateIndex, CreateTable  # noqa: E402

from store.db import WAL_CHECKPOINT_PAGES, WRITER_CACHE_KIB  # noqa: E402
from store.models import LogLeaf  # noqa: E402

#: (WAL checkpoint pages, page cache KiB): SQLite's defaults, then each of custody's settings alone, then both.
SETTINGS = [(1000, 2000), (WAL_CHECKPOINT_PAGES, 2000), (1000, WRITER_CACHE_KIB),
            (WAL_CHECKPOINT_PAGES, WRITER_CACHE_KIB)]


def run(folder: Path, leaves: int, batch: int, checkpoint: int, cache: int) -> tuple[float, float]:
    """Seconds and CPU seconds a leaf takes with these settings, on a new database in ``folder``."""
    path = folder / f"leaves-{checkpoint}-{cache}-{time.monotonic_ns()}.db"
    db = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=FULL", f"wal_autocheckpoint={checkpoint}", f"cache_size=-{cache}"):
        db.execute(f"PRAGMA {pragma}")
    dialect, table = sqlite.dialect(), LogLeaf.__table__
    assert isinstance(table, Table)
    db.execute(str(CreateTable(table).compile(dialect=dialect)))
    for index in table.indexes:
        db.execute(str(CreateIndex(index).compile(dialect=dialect)))
    rng = random.Random(1)
    items = [f"FT17-{n:06d}" for n in range(20_000)]
    data = b"x" * 1100  # about a handover leaf's size
    columns = ("idx", "data", "hash", "type", "item", "event_key", "station", "received_at")
    insert = f"INSERT INTO {LogLeaf.__tablename__} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    wall = cpu = 0.0
    for first in range(0, leaves, batch):
        rows = [(idx, data, hashlib.sha256(idx.to_bytes(8, "big")).digest(), "handover", rng.choice(items),
                 f"ST-{rng.randrange(2000)}/{rng.getrandbits(64):016x}", "ST-1", "2017-06-12 08:00:00.000000")
                for idx in range(first, min(first + batch, leaves))]
        start, start_cpu = time.perf_counter(), time.process_time()
        db.execute("BEGIN IMMEDIATE")
        db.executemany(insert, rows)
        db.execute("COMMIT")
        wall += time.perf_counter() - start
        cpu += time.process_time() - start_cpu
    db.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return wall / leaves, cpu / leaves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leaves", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    best: dict[tuple[int, int], tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            for setting in SETTINGS:
                wall, cpu = run(Path(tmp), args.leaves, args.batch, *setting)
                old = best.get(setting)
                best[setting] = (min(wall, old[0]), min(cpu, old[1])) if old else (wall, cpu)
    for (checkpoint, cache), (wall, cpu) in best.items():
        print(f"WAL checkpoint at {checkpoint:>6,} pages, page cache {cache:>6,} KiB: "
              f"{wall * 1e6:5.1f} µs a leaf, CPU {cpu * 1e6:5.1f} µs "
              f"({args.leaves:,} leaves, batches of {args.batch:,})")


if __name__ == "__main__":
    main()
