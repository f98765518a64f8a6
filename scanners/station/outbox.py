"""The durable local outbox: signed events, their receipts, refusal evidence and session drafts.

One SQLite file (``outbox.sqlite`` in the station home) in WAL mode with
``synchronous=FULL``: every commit is on disk (the WAL is fsynced) before the
call returns. Writes take the write lock first (``BEGIN IMMEDIATE``), so two
station processes (the window and a ``station sync`` job) never interleave.

Event ids are the station code and a sequence number (``ST-K001-0000042``)
taken from ``meta.next_seq`` *in the same transaction* that stores the
events: a number is used once, and only by an event that is stored.

What survives a crash, step by step (also in docs/station.md):

- scanning: the session draft (scans, badges, exceptions) is rewritten at
  every change; a restart resumes it. Nothing is signed yet.
- confirm: the events are signed and inserted, the draft is dropped, the
  sequence advanced and the session stored (with an outgoing session's
  manifest texts) in one transaction. Killed before the commit: nothing of it
  is stored, the draft is still there, the user was never told "done". After
  the commit: the events are on disk; only then is success shown.
- send: events stay ``pending`` until a receipt that verifies is stored beside
  them (one transaction per batch). Killed before, during or after the
  server stored them: they are sent again, and the server answers
  ``duplicate`` with the original leaf and a fresh receipt.
"""

from __future__ import annotations

import json
import random
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from custody.events import format_time, make_event, sign_event
from custody.labels import Signer
from keys.durable import fsync_dir
from scanners.station.faults import pause_point

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY, action TEXT NOT NULL, counterpart TEXT, confirmed_at TEXT NOT NULL, summary TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, session TEXT NOT NULL, item TEXT NOT NULL,
    action TEXT NOT NULL, station_time TEXT NOT NULL, submission TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'receipted', 'refused', 'conflict')),
    attempts INTEGER NOT NULL DEFAULT 0, next_attempt REAL NOT NULL DEFAULT 0, last_error TEXT,
    result TEXT, leaf_index INTEGER, leaf_hash TEXT, receipt TEXT, settled_at TEXT);
CREATE INDEX IF NOT EXISTS events_state ON events (state, next_attempt);
CREATE INDEX IF NOT EXISTS events_item ON events (item);
CREATE TABLE IF NOT EXISTS refusals (
    seq INTEGER PRIMARY KEY, session TEXT, seen_at TEXT NOT NULL, reason TEXT NOT NULL, message TEXT NOT NULL,
    text TEXT NOT NULL, text_sha256 TEXT NOT NULL, frame TEXT, item TEXT,
    reported INTEGER NOT NULL DEFAULT 0, report_receipt TEXT,
    UNIQUE (session, text_sha256, reason));
CREATE TABLE IF NOT EXISTS drafts (session TEXT PRIMARY KEY, updated_at TEXT NOT NULL, body TEXT NOT NULL);
"""

#: Longest QR text kept as refusal evidence (a label has about 430 characters).
MAX_EVIDENCE_TEXT = 4096


@dataclass(frozen=True)
class OutboxEvent:
    seq: int
    id: str
    session: str
    item: str
    action: str
    station_time: str
    submission: dict[str, Any]
    state: str
    attempts: int
    next_attempt: float
    last_error: str | None
    leaf_index: int | None
    leaf_hash: str | None
    receipt: str | None


@dataclass(frozen=True)
class Settled:
    """What a send decided for one event: receipted (accepted/duplicate), refused, or conflict."""

    id: str
    state: str
    status: str
    leaf_index: int | None
    leaf_hash: str | None
    receipt: str | None
    error: str | None = None


class Backoff:
    """Exponential backoff with jitter: attempt n waits a random time in [d/2, d], d = min(cap, base * 2^(n-1))."""

    def __init__(self, base: float = 2.0, cap: float = 300.0, rng: random.Random | None = None):
        self.base, self.cap = base, cap
        self.rng = rng or random.Random()

    def delay(self, attempts: int) -> float:
        d = min(self.cap, self.base * 2 ** max(0, attempts - 1))
        return self.rng.uniform(d / 2, d)


class Outbox:
    """The outbox of one station. Safe to open from several processes and threads."""

    def __init__(self, path: Path, code: str):
        self.path = path
        self.code = code
        created = not path.exists()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self.conn = sqlite3.connect(path, isolation_level=None, timeout=30.0, check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        mode = self.conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise RuntimeError(f"the outbox {path} cannot use WAL journaling (got {mode})")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("PRAGMA busy_timeout=30000")
        with self._write():
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    self.conn.execute(statement)
            self.conn.execute("INSERT OR IGNORE INTO meta (name, value) VALUES ('next_seq', '1')")
        if created:
            fsync_dir(path.parent)  # the new file's directory entry is durable too

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def pragma(self, name: str) -> Any:
        return self.conn.execute(f"PRAGMA {name}").fetchone()[0]

    # --- confirm ---------------------------------------------------------------------

    def record_session(self, session_id: str, action: str, counterpart: str | None, summary: dict[str, Any],
                       drafts: Sequence[dict[str, Any]], signer: Signer, now: datetime) -> list[str]:
        """Sign and store a confirmed session's events in one durable transaction; returns their ids.

        ``drafts`` are :func:`custody.events.make_event` keyword arguments
        without ``id``; the outbox numbers them. When this returns, the events
        are on disk (commit with ``synchronous=FULL``) and the draft is gone.
        """
        ids: list[str] = []
        with self._write() as c:
            seq = int(c.execute("SELECT value FROM meta WHERE name = 'next_seq'").fetchone()[0])
            for draft in drafts:
                event_id = f"{self.code}-{seq:07d}"
                raw = make_event(id=event_id, **draft)
                submission = sign_event(raw, signer.kid, signer.sign)
                c.execute("INSERT INTO events (seq, id, session, item, action, station_time, submission) "
                          "VALUES (?, ?, ?, ?, ?, ?, ?)",
                          (seq, event_id, session_id, raw["item"], raw["action"], raw["station_time"],
                           json.dumps(submission, ensure_ascii=False, sort_keys=True)))
                ids.append(event_id)
                seq += 1
            c.execute("UPDATE meta SET value = ? WHERE name = 'next_seq'", (str(seq),))
            c.execute("INSERT INTO sessions (id, action, counterpart, confirmed_at, summary) VALUES (?, ?, ?, ?, ?)",
                      (session_id, action, counterpart, format_time(now),
                       json.dumps({**summary, "events": ids}, ensure_ascii=False)))
            c.execute("DELETE FROM drafts WHERE session = ?", (session_id,))
            pause_point("confirm_before_commit")
        return ids

    def session_confirmed(self, session_id: str) -> bool:
        return self.conn.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone() is not None

    def session_summary(self, session_id: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT summary FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def next_session_number(self) -> int:
        row = self.conn.execute("SELECT value FROM meta WHERE name = 'next_session'").fetchone()
        return int(row[0]) if row else 1

    def allocate_session_id(self) -> str:
        with self._write() as c:
            row = c.execute("SELECT value FROM meta WHERE name = 'next_session'").fetchone()
            n = int(row[0]) if row else 1
            c.execute("INSERT OR REPLACE INTO meta (name, value) VALUES ('next_session', ?)", (str(n + 1),))
        return f"{self.code}-S{n:05d}"

    # --- drafts ------------------------------------------------------------------------

    def save_draft(self, session_id: str, body: dict[str, Any], now: datetime) -> None:
        with self._write() as c:
            c.execute("INSERT OR REPLACE INTO drafts (session, updated_at, body) VALUES (?, ?, ?)",
                      (session_id, format_time(now), json.dumps(body, ensure_ascii=False)))

    def load_draft(self, session_id: str | None = None) -> dict[str, Any] | None:
        """A session draft by id, or the latest one."""
        if session_id:
            row = self.conn.execute("SELECT body FROM drafts WHERE session = ?", (session_id,)).fetchone()
        else:
            row = self.conn.execute("SELECT body FROM drafts ORDER BY updated_at DESC, rowid DESC LIMIT 1").fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def drop_draft(self, session_id: str) -> None:
        with self._write() as c:
            c.execute("DELETE FROM drafts WHERE session = ?", (session_id,))

    def drafts(self) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in self.conn.execute("SELECT session, updated_at FROM drafts ORDER BY updated_at")]

    # --- refusal evidence -----------------------------------------------------------------

    def record_refusal(self, *, session: str | None, seen_at: datetime, reason: str, message: str, text: str,
                       text_sha256: str, frame: str | None, item: str | None) -> bool:
        """Keep the evidence of a refused scan (once per session, text and reason); True if new."""
        with self._write() as c:
            cur = c.execute("INSERT OR IGNORE INTO refusals (session, seen_at, reason, message, text, text_sha256, "
                            "frame, item) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            (session, format_time(seen_at), reason, message, text[:MAX_EVIDENCE_TEXT],
                             text_sha256, frame, item))
            return cur.rowcount == 1

    def unreported_refusals(self, limit: int = 200) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT * FROM refusals WHERE reported = 0 ORDER BY seq LIMIT ?", (limit,))
        return [dict(r) for r in rows]

    def mark_refusals_reported(self, receipts: dict[int, str]) -> None:
        with self._write() as c:
            for seq, receipt in receipts.items():
                c.execute("UPDATE refusals SET reported = 1, report_receipt = ? WHERE seq = ?", (receipt, seq))

    # --- sending ----------------------------------------------------------------------------

    def _event(self, row: sqlite3.Row) -> OutboxEvent:
        return OutboxEvent(row["seq"], row["id"], row["session"], row["item"], row["action"], row["station_time"],
                           json.loads(row["submission"]), row["state"], row["attempts"], row["next_attempt"],
                           row["last_error"], row["leaf_index"], row["leaf_hash"], row["receipt"])

    def due(self, now: float, limit: int, *, force: bool = False) -> list[OutboxEvent]:
        """Pending events whose next attempt is due (all pending with ``force``), oldest first."""
        query = "SELECT * FROM events WHERE state = 'pending'" + ("" if force else " AND next_attempt <= ?")
        args: tuple[Any, ...] = () if force else (now,)
        rows = self.conn.execute(query + " ORDER BY seq LIMIT ?", (*args, limit))
        return [self._event(r) for r in rows]

    def events(self, state: str | None = None) -> list[OutboxEvent]:
        query = "SELECT * FROM events" + (" WHERE state = ?" if state else "") + " ORDER BY seq"
        return [self._event(r) for r in self.conn.execute(query, (state,) if state else ())]

    def retry_later(self, ids: Sequence[str], now: float, error: str, backoff: Backoff) -> float:
        """Count a failed attempt for these events and schedule the next; returns the delay chosen."""
        with self._write() as c:
            attempts = max([int(c.execute("SELECT attempts FROM events WHERE id = ?", (i,)).fetchone()[0])
                            for i in ids] or [0]) + 1
            delay = backoff.delay(attempts)
            c.executemany("UPDATE events SET attempts = ?, next_attempt = ?, last_error = ? WHERE id = ? "
                          "AND state = 'pending'", [(attempts, now + delay, error[:500], i) for i in ids])
        return delay

    def settle(self, settled: Sequence[Settled], now: datetime) -> None:
        """Store what the server answered, with the verified receipts, in one transaction."""
        with self._write() as c:
            for s in settled:
                c.execute("UPDATE events SET state = ?, result = ?, leaf_index = ?, leaf_hash = ?, receipt = ?, "
                          "last_error = ?, settled_at = ?, attempts = attempts + 1 WHERE id = ? AND state = 'pending'",
                          (s.state, s.status, s.leaf_index, s.leaf_hash, s.receipt, s.error, format_time(now), s.id))
            pause_point("receipts_before_commit")

    def counts(self) -> dict[str, int]:
        counts = {"pending": 0, "receipted": 0, "refused": 0, "conflict": 0}
        for state, n in self.conn.execute("SELECT state, count(*) FROM events GROUP BY state"):
            counts[state] = n
        counts["refusals_unreported"] = self.conn.execute(
            "SELECT count(*) FROM refusals WHERE reported = 0").fetchone()[0]
        counts["refusals"] = self.conn.execute("SELECT count(*) FROM refusals").fetchone()[0]
        return counts

    def oldest_pending(self) -> tuple[str, str, str | None] | None:
        row = self.conn.execute("SELECT id, station_time, last_error FROM events WHERE state = 'pending' "
                                "ORDER BY seq LIMIT 1").fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def history(self) -> dict[str, list[dict[str, Any]]]:
        """This station's confirmed events by item (what it already recorded, for the scan checks)."""
        out: dict[str, list[dict[str, Any]]] = {}
        for row in self.conn.execute("SELECT id, session, item, action, station_time FROM events ORDER BY seq"):
            out.setdefault(row[2], []).append({"id": row[0], "session": row[1], "action": row[3], "time": row[4]})
        return out


def utc_now() -> datetime:
    return datetime.now(UTC)


Clock = Callable[[], datetime]
