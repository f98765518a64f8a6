"""The ledger: every accepted record becomes one leaf of the Merkle log.

All appends go through :meth:`Ledger.append_batch`, one write transaction
each (SQLite ``BEGIN IMMEDIATE`` / a PostgreSQL advisory lock), so the log
never forks, however many threads and processes write. Concurrent callers of
:meth:`Ledger.submit` are merged by a group-commit writer thread: one
transaction and one checkpoint signature for many events. In a server the
thread hands each group to a writer process (``writer_process``, see
:mod:`store.writer_process`), which appends it with an interpreter of its own
while the thread hands over the next.

What survives a crash: a batch is committed whole (leaves, tree nodes, head,
item chains, alerts, checkpoint) or not at all. A caller gets its receipts
only after the commit; a station that got no receipt sends again, and the
replay is recognised by its event id (idempotent: one leaf per event).
"""

from __future__ import annotations

import base64
import gc
import hashlib
import json
import logging
import queue
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import and_, case, func, insert, or_, select
from sqlalchemy.orm import Session

from custody.errors import CustodyError
from custody.events import Event, format_time
from custody.keyring import KeyRing, Role
from custody.labels import cose_from_text
from custody.log.jcs import canonical_json, canonical_spliced
from custody.log.merkle import leaf_hash
from custody.log.note import NoteVerifier, parse_verifier_key, verifier_key
from custody.log.proofs import format_consistency_proof, format_tlog_proof, format_tlog_proofs
from custody.rules.codes import CRITICAL, INFO, WARNING
from store.db import bulk_insert, bulk_update, select_where_in
from store.instance import Instance
from store.logstore import (
    LogStore,
    NewLeaf,
    check_not_rolled_back,
    log_verifiers,
    witness_stamp,
    write_witness_copy,
)
from store.models import (
    KEY_LEAF_TYPES,
    AlertRecord,
    IssuedLabel,
    Item,
    ItemHead,
    KeyRecord,
    LogCheckpoint,
    LoggedKey,
    LogLeaf,
)
from store.verifier_pool import MIN_BATCH, Verdict, VerifierPool, _to_wire, check

log = logging.getLogger(__name__)

#: Alert severities, most severe first (the order the dashboard lists them in).
SEVERITY_ORDER = {CRITICAL: 0, WARNING: 1, INFO: 2}
#: Bytes of a refused submission kept as evidence (its SHA-256 covers all of it).
MAX_EVIDENCE = 4096
MAX_BATCH = 2000
#: Groups handed to a writer process and not yet answered, at most: it appends one while the next is sent.
IN_FLIGHT = 2
#: Seconds :meth:`Ledger.close` waits for the writer to append what was queued before it.
CLOSE_WAIT = 60.0
#: Young-generation threshold of the garbage collector in a serving process (see :func:`settle_collector`).
GC_YOUNG = 20_000


class LedgerClosed(CustodyError):
    """The ledger was closed (the server is stopping): nothing more is queued; send again later."""


_CLOSING = "the log is closing: the submissions were not appended; send them again"


def settle_collector(young: int = GC_YOUNG) -> None:
    """Garbage-collector settings for a long-running writer, once it has started (:meth:`Ledger.start`).

    A city's custody states are hundreds of thousands of objects the collector tracks, and a box
    scan replaces hundreds of them. With Python's defaults a full collection walked every one of
    them every few thousand events (0.5 s each, measured on the simulated exam: a stall of every
    request waiting for the writer) and a young collection ran every 700 allocations. What is alive
    at start-up (plan, states, registry, the web application) is frozen out of the collector, and
    the young generation is collected every ``young`` allocations (a few ms each). Objects are
    still freed by reference counting as before; only unreachable cycles wait longer.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(young, 20, 10)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass
class _Pending:
    """One submission waiting for the writer: verified (or refused) before taking the lock."""

    submission: Any
    event: Event | None = None
    kid: str = ""
    sig: str = ""
    error: str | None = None
    error_code: str | None = None
    result: dict[str, Any] = field(default_factory=dict)
    generation: int = 0  # of the key registry it was verified against
    wire: tuple[Any, ...] | None = None  # the worker's verdict, for the writer process (event not rebuilt)

    @classmethod
    def of(cls, submission: Any, verdict: Verdict, generation: int) -> _Pending:
        return cls(submission, verdict.event, verdict.kid, verdict.sig, verdict.error, verdict.error_code,
                   generation=generation, wire=verdict.wire)

    def to_wire(self) -> tuple[Any, ...]:
        """The verdict as plain values for the writer process: as the worker sent it, if it came from one."""
        if self.wire is not None:
            return self.wire
        return _to_wire(Verdict(self.event, self.kid, self.sig, self.error, self.error_code))


#: A batch queued for the writer: its submissions checked, the station that sent it, its results' future.
_Queued = tuple[list[_Pending], str | None, Future[list[dict[str, Any]]]]


@dataclass
class _LogSigning:
    """The log's signing key at some time, its verifier, and the window it is good for."""

    private: Any
    verifiers: tuple[NoteVerifier, ...]  # every log key the instance has had (for its earlier checkpoints)
    valid_from: datetime
    valid_until: datetime | None
    revoked_at: datetime | None

    @classmethod
    def current(cls, ledger: Ledger, now: datetime) -> _LogSigning:
        keys, institute = ledger.instance.keys, ledger.instance.institute
        row = keys.current(Role.LOG_SIGNER, institute, now)
        verifiers = tuple(log_verifiers(ledger.origin, keys.records()))
        return cls(keys.private_key(Role.LOG_SIGNER, institute, now), verifiers, row.valid_from, row.valid_until,
                   row.revoked_at)

    def usable(self, now: datetime) -> bool:
        return self.valid_from <= now and all(end is None or now < end for end in (self.valid_until, self.revoked_at))


class Ledger:
    """The custody log of one instance."""

    def __init__(self, instance: Instance, *, clock: Callable[[], datetime] | None = None, verify_workers: int = 0,
                 writer_process: bool = False):
        """``verify_workers``: processes that check station signatures (0: the caller's thread does).
        ``writer_process``: submissions are appended by a child process (see store.writer_process),
        not by a thread of this one; the ledger's other appends (records, labels) stay here."""
        self.instance = instance
        self.db = instance.db
        self.origin = instance.origin
        self.clock = clock or (lambda: datetime.now(UTC))
        self._keyring: KeyRing | None = None
        self._keys_generation = 0  # counts the registry's re-reads
        self._keys_lock = threading.Lock()
        self._pool = VerifierPool(self.db.url, verify_workers) if verify_workers > 0 else None
        self._remote: Any = None
        if writer_process:
            from store.writer_process import WriterProcess

            self._remote = WriterProcess(instance)
        self._signing: _LogSigning | None = None  # the log key, kept until the registry changes
        #: Batches for the writer thread; None tells it to end (close()).
        self._queue: queue.Queue[_Queued | None] = queue.Queue()
        self._writer: threading.Thread | None = None
        self._writer_lock = threading.Lock()
        self._closed = False  # set by close(): the writer appends what was queued before, then ends
        self._custody: Any = None  # the custody rules tracker, built on first use
        self._end: int | None = None  # the log size after this ledger's last append
        #: The witness copy's version and the tree head last found consistent (or left so by this ledger).
        self._witnessed: tuple[Any, tuple[int, bytes]] | None = None
        self._signed_note: bytes | None = None  # the checkpoint this ledger signed and committed last
        self._rules_lock = threading.Lock()  # taken inside a write session, never the other way round

    # --- keys -----------------------------------------------------------------------

    def _log_public(self) -> bytes:
        with self.db.session() as s:
            row = s.scalars(select(KeyRecord).where(KeyRecord.role == Role.LOG_SIGNER.value,
                                                    KeyRecord.private_file.is_not(None))
                            .order_by(KeyRecord.valid_from.desc(), KeyRecord.id.desc())).first()
        if row is None:
            raise CustodyError("the instance has no log signing key; run `custody init`")
        return row.public_raw

    def log_key(self) -> str:
        """The log's public key as a signed-note verifier key ``<origin>+<hash>+<base64>``."""
        return verifier_key(self.origin, self._log_public())

    def log_key_rollovers(self) -> list[str]:
        """Every rollover note of the log key, oldest first (see :mod:`custody.log.rollover`)."""
        with self.db.session() as s:
            return [note for note in s.scalars(
                select(KeyRecord.rollover).where(KeyRecord.role == Role.LOG_SIGNER.value,
                                                 KeyRecord.rollover.is_not(None))
                .order_by(KeyRecord.valid_from, KeyRecord.id)) if note]

    def verifier(self) -> NoteVerifier:
        return parse_verifier_key(self.log_key())

    def start(self) -> None:
        """Get ready for submissions now, not on the first one (a server calls this before taking
        requests): start the signature-checking processes (and the writer process) and build the
        custody rules' states."""
        if self._pool is not None:
            self._pool.start()
        if self._remote is not None:
            self._remote.start()  # it builds the custody states it judges by; this process's follow the log
        exam = self.instance.current_exam()
        if exam:
            from store.custody_rules import load_tracker

            with self.db.session() as s, self._rules_lock:
                self._custody = load_tracker(s, exam, LogStore(s).head()[0])

    def keyring(self, refresh: bool = False) -> KeyRing:
        return self._registry(refresh)[0]

    def _registry(self, refresh: bool = False) -> tuple[KeyRing, int]:
        """The key registry as last read, and its generation (re-read with ``refresh``)."""
        with self._keys_lock:
            if self._keyring is None or refresh:
                self._keyring = self.instance.keys.keyring()
                self._keys_generation += 1
            return self._keyring, self._keys_generation

    # --- reading --------------------------------------------------------------------

    def size(self) -> int:
        with self.db.session() as s:
            return LogStore(s).head()[0]

    def latest_checkpoint(self) -> str:
        with self.db.session() as s:
            signed = LogStore(s).signed_note()
        if signed is None:
            raise CustodyError("the log has no checkpoint yet")
        return signed[1]

    def checkpoint(self, size: int) -> str:
        with self.db.session() as s:
            signed = LogStore(s).signed_note(size)
        if signed is None:
            from custody.errors import NotFound
            raise NotFound(f"no checkpoint was signed at tree size {size}")
        return signed[1]

    def checkpoints(self) -> list[tuple[int, str]]:
        with self.db.session() as s:
            return [(r.size, r.note) for r in s.scalars(select(LogCheckpoint).order_by(LogCheckpoint.size))]

    def leaf(self, index: int) -> LogLeaf:
        with self.db.session() as s:
            row = s.get(LogLeaf, index)
        if row is None:
            from custody.errors import NotFound
            raise NotFound(f"the log has no leaf {index}")
        return row

    def inclusion_proof(self, index: int, size: int | None = None, *, extra: bool = False) -> str:
        """A c2sp.org/tlog-proof@v1 text for leaf ``index`` against a signed checkpoint.

        Against the latest checkpoint by default, or the one signed at ``size``.
        With ``extra`` the proof carries the leaf's bytes (as a receipt does).
        """
        from custody.errors import NotFound

        def read(s: Session) -> str:
            store = LogStore(s)
            signed = store.signed_note(size)
            if signed is None:
                raise NotFound(f"no checkpoint was signed at tree size {size}")
            signed_size, note = signed
            if index >= signed_size:
                raise NotFound(f"leaf {index} is not in the checkpoint of size {signed_size}")
            # index < signed_size: its leaf row exists (leaves are written with the checkpoint that covers them)
            data = cast(LogLeaf, s.get(LogLeaf, index)).data if extra else None
            return format_tlog_proof(index, store.proof(index, signed_size), note.encode(), extra=data)

        # the checkpoint, once read, and the nodes and leaf under it never change
        return self.db.immutable_read(read)

    def consistency_proof(self, old: int, new: int | None = None) -> str:
        from custody.log.merkle import consistency_proof

        with self.db.session() as s:
            store = LogStore(s)
            new = store.head()[0] if new is None else new
            return format_consistency_proof(consistency_proof(old, new, store.get_nodes))

    def item_history(self, exam: str, item_id: str) -> list[dict[str, Any]]:
        """Every leaf about an item, oldest first, with its alerts."""
        with self.db.session() as s:
            leaves = s.scalars(select(LogLeaf).where(LogLeaf.item == item_id).order_by(LogLeaf.idx)).all()
            alerts = s.scalars(select(AlertRecord).where(AlertRecord.item == item_id)).all()
        by_leaf: dict[int, list[dict[str, Any]]] = {}
        for a in alerts:
            by_leaf.setdefault(a.leaf_idx, []).append(_alert_json(a))
        return [{"index": leaf.idx, "leaf_hash": leaf.hash.hex(), "leaf": json.loads(leaf.data),
                 "received_at": leaf.received_at.isoformat(), "alerts": by_leaf.get(leaf.idx, [])}
                for leaf in leaves]

    def alerts(self, units: set[str] | None = None, limit: int = 200, *, most_severe_first: bool = False,
               severity: str | None = None, code: str | None = None, offset: int = 0) -> list[dict[str, Any]]:
        """The newest ``limit`` alerts at ``units`` (all units if None), of ``severity`` and ``code`` if given,
        after skipping ``offset``; with ``most_severe_first`` the critical ones first, then warnings, then the
        rest, each newest first."""
        query = _alert_filter(select(AlertRecord), units, severity, code)
        if most_severe_first:
            query = query.order_by(case(SEVERITY_ORDER, value=AlertRecord.severity, else_=len(SEVERITY_ORDER)))
        query = query.order_by(AlertRecord.id.desc()).offset(offset).limit(limit)
        with self.db.session() as s:
            return [_alert_json(a) for a in s.scalars(query)]

    def alert_count(self, units: set[str] | None = None, *, severity: str | None = None,
                    code: str | None = None) -> int:
        """How many alerts :meth:`alerts` has for these filters, without a limit."""
        query = _alert_filter(select(func.count()).select_from(AlertRecord), units, severity, code)
        with self.db.session() as s:
            return int(s.scalar(query) or 0)

    def alert_codes(self, units: set[str] | None = None) -> list[str]:
        """The rule codes of the alerts at ``units`` (all units if None), sorted."""
        query = _alert_filter(select(AlertRecord.code).distinct(), units, None, None).order_by(AlertRecord.code)
        with self.db.session() as s:
            return list(s.scalars(query))

    def item_states(self, exam: str) -> dict[str, dict[str, Any]]:
        """Every item's custody state now (items still in their initial state are absent), as JSON.

        From this process's tracker when it is current; otherwise the stored
        snapshot with the handovers after it replayed (see store.custody_rules).
        With the writer in another process this process's tracker follows the log:
        each call replays only what was appended since the last.
        """
        from store.custody_rules import current_states, follow

        with self.db.session() as s:
            size = LogStore(s).head()[0]
            with self._rules_lock:
                cached = self._custody
                if cached is not None and cached.current(size, exam):
                    return cached.states_json()  # type: ignore[no-any-return]
                if self._remote is not None:  # no writer here to hold up: build or follow under the lock
                    self._custody = follow(s, cached, exam, size)
                    return self._custody.states_json()  # type: ignore[no-any-return]
            return current_states(s, exam, size)

    def flush_states(self) -> None:
        """Store the custody states now (normally done every few seconds by the writer)."""
        from store.custody_rules import load_tracker, store_states

        if self._remote is not None:
            self._remote.flush_states()
            return
        exam = self.instance.current_exam()
        if not exam:
            return
        with self.db.write_session() as s, self._rules_lock:
            size = LogStore(s).head()[0]
            cached = self._custody
            if cached is None or not cached.current(size, exam):
                cached = load_tracker(s, exam, size)
            store_states(s, cached)
            self._custody = cached

    # --- writing --------------------------------------------------------------------

    def submit(self, submissions: Sequence[Any], *, station: str | None = None) -> list[dict[str, Any]]:
        """Verify and append station submissions; one result per submission, in order.

        Verification (signatures) runs in the caller's thread; the append runs in
        the group-commit writer. Results: ``accepted`` (with index, leaf hash and
        a receipt), ``duplicate`` (already in the log: same index and receipt) or
        ``refused`` (with the reason; the refusal itself is a leaf, as evidence).
        An empty list is a batch all the same: the writer (thread or process) logs the key registry's facts
        the log lacks, as every batch does first; the web's key page relies on it for a revocation.
        """
        return self.submit_nowait(submissions, station=station).result()

    def submit_nowait(self, submissions: Sequence[Any], *,
                      station: str | None = None) -> Future[list[dict[str, Any]]]:
        """:meth:`submit` that returns once the submissions are verified and queued for the writer.

        The future gives the results. Submissions queued by one thread are appended in the
        order it queued them, so a caller can verify its next batch while the writer appends
        this one without reordering the log.
        """
        if self._closed:  # checked again when queued; this spares the signature checks
            raise LedgerClosed(_CLOSING)
        pending = self._verify(submissions)
        unknown = [n for n, p in enumerate(pending) if p.error_code == "unknown_key"]
        if unknown:
            # A key registered a moment ago by another process: look again once.
            self._registry(refresh=True)
            for n, p in zip(unknown, self._verify([submissions[n] for n in unknown]), strict=True):
                pending[n] = p
        done: Future[list[dict[str, Any]]] = Future()
        with self._writer_lock:  # queued before close() queues the writer's stop, or refused
            if self._closed:
                raise LedgerClosed(_CLOSING)
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(target=self._write_loop, name="custody-ledger-writer", daemon=True)
                self._writer.start()
            self._queue.put((pending, station, done))
        return done

    def _verify(self, submissions: Sequence[Any]) -> list[_Pending]:
        """Check signatures against the registry as last read: in the workers if there are, else here."""
        keys, generation = self._registry()
        verdicts = None
        if self._pool is not None and len(submissions) >= MIN_BATCH:
            # a writer process rebuilds the events itself: not here as well
            verdicts = self._pool.check(submissions, generation, build=self._remote is None)
        if verdicts is None:
            verdicts = [check(s, keys) for s in submissions]
        return [_Pending.of(s, v, generation) for s, v in zip(submissions, verdicts, strict=True)]

    def _open_batch(self, session: Session, store: LogStore, now: datetime) -> tuple[_BatchBuilder, _LogSigning]:
        """In the write lock: a batch with the registry facts the log lacks, and the log's key.

        A key revoked, rotated or registered by another process (``custody keys revoke``
        while ``custody serve`` runs) shows as a registry fact the log lacks, or as leaves
        another writer appended: then the registry (and the log key) are read again.
        Refuses a database older than the checkpoint kept in the instance folder.
        """
        builder = _BatchBuilder(session, format_time(now), now)
        builder.add_key_facts()
        if builder.key_marks or self._keys_logged_by_others(session, store):
            self._registry(refresh=True)
            self._signing = None
        signing = self._signing
        if signing is None or not signing.usable(now):
            signing = self._signing = _LogSigning.current(self, now)
        # Checked again whenever the witness copy or the head changed since this ledger last saw them
        # agree (another process appended, the database was restored, the copy was replaced).
        seen = (witness_stamp(self.instance.home), store.head())
        if seen != self._witnessed:
            check_not_rolled_back(store, self.instance.home, signing.verifiers)
            self._witnessed = seen
        return builder, signing

    def _committed(self, note: bytes, head: tuple[int, bytes]) -> None:
        """After an append's commit: remember the log's size, and keep ``note`` (signed for ``head``) as
        the witness copy in the instance folder."""
        self._end = head[0]
        self._signed_note = note
        write_witness_copy(self.instance.home, note)
        self._witnessed = (witness_stamp(self.instance.home), head)

    def _current_keys(self, pending: list[_Pending]) -> tuple[list[_Pending], int]:
        """``pending`` verified against the key registry as it is now (every submission verified
        against an older copy of it is verified again), and that registry's generation."""
        keys, generation = self._registry()
        stale = [n for n, p in enumerate(pending) if p.generation != generation]
        if stale:
            pending = list(pending)
            for n in stale:
                pending[n] = _Pending.of(pending[n].submission, check(pending[n].submission, keys), generation)
        return pending, generation

    def _keys_logged_by_others(self, session: Session, store: LogStore) -> bool:
        """Whether another writer logged a registry fact (a key, its end, its revocation) since this ledger's
        last append."""
        size = store.head()[0]
        if self._end is None:
            return True
        if size == self._end:
            return False
        return session.scalar(select(LogLeaf.idx).where(LogLeaf.idx >= self._end, LogLeaf.idx < size,
                                                        LogLeaf.type.in_(KEY_LEAF_TYPES)).limit(1)) is not None

    def _write_loop(self) -> None:
        """Append queued submissions, several queued batches to a group, until :meth:`close` queues None."""
        if self._remote is not None:
            self._write_loop_remote()
            return
        stopping = False
        while not stopping:
            group, stopping = self._take_group()
            if not group:
                return
            try:
                results = self._append_group([p for pending, _, _ in group for p in pending])
            except BaseException as exc:  # the whole group failed: nothing was stored
                self._forget()
                _fail(group, exc)
                continue
            _deliver(group, results)

    def _write_loop_remote(self) -> None:
        """:meth:`_write_loop` with a writer process: this thread hands groups over, a second one takes their
        answers, so the next group is sent while the writer process appends the last (at most
        :data:`IN_FLIGHT` with it at once; one at a time, it waited idle at every hand-over)."""
        slots = threading.BoundedSemaphore(IN_FLIGHT)
        sent: queue.SimpleQueue[list[_Queued] | None] = queue.SimpleQueue()
        answers = threading.Thread(target=self._answer_loop, args=(sent, slots), name="custody-ledger-answers",
                                   daemon=True)
        answers.start()
        try:
            stopping = False
            while not stopping:
                slots.acquire()  # before the group is taken: it takes in what was queued while waiting
                group, stopping = self._take_group()
                if not group:
                    slots.release()
                    break
                try:
                    self._hand_over([p for queued, _, _ in group for p in queued])
                except BaseException as exc:  # not handed over: nothing of it was stored
                    slots.release()
                    self._forget()
                    _fail(group, exc)
                else:
                    sent.put(group)
        finally:
            sent.put(None)
            answers.join()

    def _answer_loop(self, sent: queue.SimpleQueue[list[_Queued] | None], slots: threading.BoundedSemaphore) -> None:
        """The writer process's answers, in the order the groups were sent, to their callers."""
        while (group := sent.get()) is not None:
            try:
                results = self._answer()
            except BaseException as exc:  # the whole group failed: nothing was stored
                self._forget()
                _fail(group, exc)
                continue
            finally:
                slots.release()
            _deliver(group, results)

    def _hand_over(self, pending: list[_Pending]) -> None:
        """Send a group to the writer process. It takes these verdicts as its own when its copy of the key
        registry is no newer than this one: it reads the registry again whenever this one's generation
        changes, and says when it read it again itself (then so does this process: :meth:`_answer`)."""
        pending, generation = self._current_keys(pending)
        self._remote.send(generation, self.clock(), pending)

    def _answer(self) -> list[dict[str, Any]]:
        """The writer process's results for the oldest group handed over."""
        results, refreshed = self._remote.receive()
        if refreshed:  # the writer read the key registry again: so must this process
            self._registry(refresh=True)
        return results  # type: ignore[no-any-return]

    def _take_group(self) -> tuple[list[_Queued], bool]:
        """Batches from the queue for one append, up to MAX_BATCH submissions (waits for the first), and
        whether close() queued its stop after them."""
        first = self._queue.get()
        if first is None:
            return [], True
        group = [first]
        count = len(first[0])
        while count < MAX_BATCH:
            try:
                more = self._queue.get_nowait()
            except queue.Empty:
                break
            if more is None:  # the group queued before the stop is the last
                return group, True
            group.append(more)
            count += len(more[0])
        return group, False

    def _forget(self) -> None:
        """After a failed append: build the custody states and read the key registry again before the next."""
        self._custody = None
        self._end = None

    def _append_group(self, pending: list[_Pending]) -> list[dict[str, Any]]:
        """Append a group of verified submissions, here or in the writer process."""
        if self._remote is None:
            return self._append_pending(pending)
        self._hand_over(pending)
        return self._answer()

    def _append_pending(self, pending: list[_Pending]) -> list[dict[str, Any]]:
        now = self.clock()
        results: list[dict[str, Any]] = []
        with self.db.write_session() as s:
            store = LogStore(s)
            builder, signing = self._open_batch(s, store, now)
            pending, _ = self._current_keys(pending)
            builder.prefetch(p.event.item for p in pending if p.event is not None)
            builder.prefetch_labels(p.event.label for p in pending if p.event is not None)
            known = builder.known_events(f"{p.event.station}/{p.event.id}" for p in pending if p.event is not None)
            keys_seen: dict[str, int] = {}
            for p in pending:
                if p.event is None:
                    results.append(builder.refuse(p.submission, p.error_code or "malformed", p.error or "", None))
                    continue
                event = p.event
                key = f"{event.station}/{event.id}"
                if key in keys_seen or key in known:
                    results.append({"status": "duplicate", "event_id": event.id, "_key": key})
                    continue
                problem = builder.label_problem(event)
                if problem:
                    results.append(builder.refuse(p.submission, "label_not_issued", problem, event.station))
                    continue
                keys_seen[key] = len(builder.leaves)
                results.append(builder.handover(event, p.kid, p.sig, key))
            first, note, head = self._store_batch(store, builder, signing, now)
            for r in results:
                key = r.pop("_key", None)
                if r["status"] == "duplicate":
                    existing = builder.existing_event(key) if key else None
                    r["index"] = existing if existing is not None else first + keys_seen[key or ""]
                else:
                    r["index"] += first
            paths = store.proofs([r["index"] for r in results], head[0])
            leaves = []
            for r in results:
                relative = r["index"] - first
                if relative >= 0:  # this batch's leaf: its hash was just computed from its data
                    data, digest = builder.leaves[relative].data, builder.leaves[relative].hash
                else:  # a duplicate's earlier leaf
                    data = cast(LogLeaf, s.get(LogLeaf, r["index"])).data  # a logged duplicate: its row exists
                    digest = leaf_hash(data)
                r["leaf_hash"] = digest.hex()
                leaves.append(data)
            receipts = format_tlog_proofs(zip((r["index"] for r in results), paths, leaves, strict=True), note)
            for r, receipt in zip(results, receipts, strict=True):
                r["receipt"] = receipt
        self._committed(note, head)
        return results

    def _judge(self, session: Session, first: int, end: int, accepted: list[tuple[int, Event, datetime]],
               labels: list[tuple[int, str, str]]) -> None:
        """Run the custody rules over accepted handovers (and issued labels); store alerts and item states."""
        if not accepted and self._custody is None:
            return
        from store.custody_rules import judge

        with self._rules_lock:
            self._custody = judge(session, self.instance.current_exam(session), first, end, accepted, self._custody,
                                  labels=labels)

    def _store_batch(self, store: LogStore, builder: _BatchBuilder, signing: _LogSigning,
                     now: datetime) -> tuple[int, bytes, tuple[int, bytes]]:
        """In the write session: the batch's leaves and the rows that go with them stored, the checkpoint
        signed. Returns the first leaf's index, the checkpoint and the head (for :meth:`_committed`)."""
        first, _ = store.append(builder.leaves)
        builder.finish(first, self._judge)
        note = store.sign_checkpoint(self.origin, signing.private, signing.verifiers, now,
                                     signed_before=self._signed_note)
        return first, note, store.head()

    def append_records(self, records: Iterable[dict[str, Any]]) -> list[int]:
        """Append institute records (a backup order, a verification result) as leaves; returns indexes."""
        now = self.clock()
        with self.db.write_session() as s:
            store = LogStore(s)
            builder, signing = self._open_batch(s, store, now)
            marks = [builder.record(dict(r)) for r in records]
            first, note, head = self._store_batch(store, builder, signing, now)
        if any(leaf.type == "backup_order" for leaf in builder.leaves):
            # The tracker learns orders from the log when it is built: rebuild it.
            self._custody = None
        self._committed(note, head)
        return [first + m for m in marks]

    def log_registry(self) -> int:
        """Append now the key registry's facts the log lacks (a key registered or revoked, e.g. by ``custody keys
        revoke``), which would otherwise wait for the next batch; returns how many leaves that took."""
        now = self.clock()
        with self.db.write_session() as s:
            store = LogStore(s)
            builder, signing = self._open_batch(s, store, now)
            if not builder.leaves:
                return 0
            _, note, head = self._store_batch(store, builder, signing, now)
        self._committed(note, head)
        return len(builder.leaves)

    def record_labels(self, exam: str) -> int:
        """Append a ``label`` leaf for every issued label not yet in the log; returns how many."""
        now = self.clock()
        with self.db.write_session() as s:
            store = LogStore(s)
            builder, signing = self._open_batch(s, store, now)
            logged = set(s.scalars(select(IssuedLabel.label_hash)))
            # label_text is not None: the query filters it
            rows = cast("Sequence[tuple[str, str, datetime | None]]",
                        s.execute(select(Item.item_id, Item.label_text, Item.issued_at)
                                  .where(Item.exam == exam, Item.label_text.is_not(None)).order_by(Item.id)).all())
            count = 0
            builder.prefetch(item_id for item_id, _, _ in rows)  # the chain heads, 500 a query (not one each)
            for item_id, text, issued_at in rows:
                cose = cose_from_text(text)
                assert cose is not None
                digest = hashlib.sha256(cose).hexdigest()
                if digest in logged:
                    continue
                builder.label(item_id, text, digest, issued_at)
                count += 1
            _, note, head = self._store_batch(store, builder, signing, now)
        self._committed(note, head)
        return count

    def close(self) -> None:
        """Stop taking submissions, append those already queued (their callers get their receipts), end the
        writer, and store the custody states, so the next start replays nothing (they are derivable anyway).
        A submission made after this is refused with :class:`LedgerClosed`."""
        with self._writer_lock:
            self._closed = True
            writer = self._writer
            if writer is not None and writer.is_alive():
                self._queue.put(None)
        if writer is not None and writer is not threading.current_thread():
            writer.join(CLOSE_WAIT)
            if writer.is_alive():
                log.warning("the log writer did not finish the queued submissions within %.0f s", CLOSE_WAIT)
        if self._pool is not None:
            self._pool.close()
        if self._remote is not None:
            self._remote.close()  # it stores the custody states
        elif self._custody is not None and self._custody.unsaved:
            self.flush_states()


def _fail(group: list[_Queued], exc: BaseException) -> None:
    """The whole group failed (nothing of it was stored): each caller gets the error."""
    for _, _, done in group:
        done.set_exception(exc)


def _deliver(group: list[_Queued], results: list[dict[str, Any]]) -> None:
    """Each caller of the group its own batch's results."""
    offset = 0
    for pending, _, done in group:
        done.set_result(results[offset:offset + len(pending)])
        offset += len(pending)


def _alert_filter(query: Any, units: set[str] | None, severity: str | None, code: str | None) -> Any:
    if units is not None:
        query = query.where(AlertRecord.unit.in_(units))
    if severity:
        query = query.where(AlertRecord.severity == severity)
    if code:
        query = query.where(AlertRecord.code == code)
    return query


def _alert_json(a: AlertRecord) -> dict[str, Any]:
    return {"id": a.id, "index": a.leaf_idx, "item": a.item, "unit": a.unit, "code": a.code,
            "severity": a.severity, "message": a.message, "message_zh": a.message_zh,
            "details": json.loads(a.details or "{}"), "created_at": a.created_at.isoformat()}


class _BatchBuilder:
    """Builds the leaves of one batch and the rows that go with them."""

    def __init__(self, session: Session, received: str, now: datetime):
        self.session = session
        self.received = received
        self.now = now
        self.leaves: list[NewLeaf] = []
        self.heads: dict[str, bytes | None] = {}
        self.existing_heads: dict[str, bytes | None] = {}
        self.issued: dict[str, str] = {}
        self.item_of: list[str | None] = []
        self.labels: list[tuple[str, str, int]] = []
        self.handovers: list[tuple[int, Event]] = []
        self.key_marks: list[tuple[int, str, int]] = []

    def prefetch(self, items: Iterable[str]) -> None:
        """Read the chain heads of ``items`` in one query (and remember which rows exist)."""
        wanted = [i for i in dict.fromkeys(items) if i not in self.heads]
        found = {item: bytes(h) if h is not None else None
                 for item, h in self._where_in(ItemHead.__tablename__, "item, leaf_hash", "item", wanted)}
        self.existing_heads.update(found)
        for item in wanted:
            self.heads[item] = found.get(item)

    def _where_in(self, table: str, columns: str, key: str, values: Sequence[str]) -> list[Any]:
        return select_where_in(self.session.connection(), table, columns, key, values)

    def _prev(self, item: str) -> bytes | None:
        if item not in self.heads:
            self.prefetch([item])
        return self.heads[item]

    def _add(self, leaf: dict[str, Any], item: str | None, event_key: str | None = None,
             station: str | None = None) -> int:
        return self._add_data(canonical_json(leaf), leaf["type"], item, event_key, station)

    def _add_data(self, data: bytes, kind: str, item: str | None, event_key: str | None = None,
                  station: str | None = None) -> int:
        digest = leaf_hash(data)
        self.leaves.append(NewLeaf(data, digest, kind, item, event_key, station, self.now))
        if item is not None:
            self.heads[item] = digest
        return len(self.leaves) - 1

    def _chained(self, leaf: dict[str, Any], item: str) -> dict[str, Any]:
        prev = self._prev(item)
        return {**leaf, "item": item, "item_prev": prev.hex() if prev else None}

    def known_events(self, keys: Iterable[str]) -> set[str]:
        """Which of these idempotency keys are already in the log (one query per 500)."""
        return {key for key, in self._where_in(LogLeaf.__tablename__, "event_key", "event_key",
                                               list(dict.fromkeys(keys)))}

    def existing_event(self, key: str) -> int | None:
        return self.session.scalar(select(LogLeaf.idx).where(LogLeaf.event_key == key))

    def prefetch_labels(self, hashes: Iterable[str]) -> None:
        wanted = [h for h in dict.fromkeys(hashes) if h not in self.issued]
        self.issued.update(self._where_in(IssuedLabel.__tablename__, "label_hash, item", "label_hash", wanted))

    def label_problem(self, event: Event) -> str | None:
        if event.label not in self.issued:
            self.prefetch_labels([event.label])
        owner = self.issued.get(event.label)
        if owner is None:
            return (f"event {event.id}: the scanned label {event.label[:16]}… was never issued by the institute "
                    "(forged, photocopied from another item, or damaged)")
        if owner != event.item:
            return f"event {event.id}: the scanned label belongs to item {owner}, not {event.item}"
        return None

    def handover(self, event: Event, kid: str, sig: str, key: str) -> dict[str, Any]:
        prev = self._prev(event.item)
        # The event is the exact bytes the station signed (parse_event made them canonical); the key
        # id, signature, time, item and chain hash are plain text or null.
        data = canonical_spliced({"type": "handover", "kid": kid, "sig": sig, "received_at": self.received,
                                  "item": event.item, "item_prev": prev.hex() if prev else None},
                                 {"event": event.canonical()})
        mark = self._add_data(data, "handover", event.item, key, event.station)
        self.handovers.append((mark, event))
        return {"status": "accepted", "event_id": event.id, "index": mark}

    def refuse(self, submission: Any, code: str, reason: str, station: str | None) -> dict[str, Any]:
        try:
            presented = canonical_json(submission) if isinstance(submission, (dict, list)) else \
                str(submission).encode("utf-8", "replace")
        except Exception:
            presented = repr(submission).encode("utf-8", "replace")
        event_id = None
        if isinstance(submission, Mapping) and isinstance(submission.get("event"), Mapping):
            event_id = submission["event"].get("id")
            station = station or (submission["event"].get("station") if isinstance(
                submission["event"].get("station"), str) else None)
        leaf = {"type": "refusal", "station": station, "error": code, "reason": reason[:500],
                "presented_sha256": hashlib.sha256(presented).hexdigest(),
                "presented": _b64(presented[:MAX_EVIDENCE]), "presented_bytes": len(presented),
                "received_at": self.received}
        mark = self._add(leaf, None, None, station[:64] if isinstance(station, str) else None)
        return {"status": "refused", "event_id": event_id if isinstance(event_id, str) else None,
                "error": code, "reason": reason, "index": mark}

    def label(self, item: str, text: str, digest: str, issued_at: datetime | None) -> None:
        leaf = self._chained({"type": "label", "label": digest, "text": text,
                              "issued_at": format_time(issued_at) if issued_at else None,
                              "received_at": self.received}, item)
        self.labels.append((digest, item, self._add(leaf, item)))

    def record(self, leaf: dict[str, Any]) -> int:
        if not isinstance(leaf.get("type"), str) or leaf["type"] in ("handover", "label", "refusal", "key"):
            raise ValueError("an institute record needs its own type")
        leaf = {**leaf, "received_at": self.received}
        item = leaf.get("item")
        if isinstance(item, str):
            leaf = self._chained(leaf, item)
        return self._add(leaf, item if isinstance(item, str) else None)

    def add_key_facts(self) -> None:
        """Log registry facts not yet in the log: new keys, ends of validity (a rotation) and revocations.

        Usually there are none, which six counts show (every logged key is a registered one: a
        foreign key; every logged end or revocation a key that has one: neither is ever undone); only
        otherwise are the facts looked up. The counts cost a tenth of the lookup, once per batch.
        """
        keys, logged = KeyRecord.__tablename__, LoggedKey.__tablename__
        counts = self.session.connection().exec_driver_sql(
            f"SELECT (SELECT count(*) FROM {keys}), (SELECT count(*) FROM {logged}), "
            f"(SELECT count(*) FROM {keys} WHERE revoked_at IS NOT NULL), "
            f"(SELECT count(*) FROM {logged} WHERE revoked_idx IS NOT NULL), "
            f"(SELECT count(*) FROM {keys} WHERE valid_until IS NOT NULL), "
            f"(SELECT count(*) FROM {logged} WHERE retired_idx IS NOT NULL)").one()
        if counts[0] == counts[1] and counts[2] == counts[3] and counts[4] == counts[5]:
            return
        rows = self.session.execute(
            select(KeyRecord, LoggedKey.revoked_idx, LoggedKey.key_id, LoggedKey.retired_idx)
            .outerjoin(LoggedKey, LoggedKey.key_id == KeyRecord.id)
            .where(or_(LoggedKey.key_id.is_(None),
                       and_(KeyRecord.revoked_at.is_not(None), LoggedKey.revoked_idx.is_(None)),
                       and_(KeyRecord.valid_until.is_not(None), LoggedKey.retired_idx.is_(None))))
            .order_by(KeyRecord.id)).all()
        for key, revoked_idx, logged_id, retired_idx in rows:
            if logged_id is None:
                leaf = {"type": "key", "kid": key.kid, "role": key.role, "owner": key.owner,
                        "public_key": _b64(key.public_raw), "valid_from": format_time(key.valid_from),
                        "valid_until": format_time(key.valid_until) if key.valid_until else None,
                        "received_at": self.received}
                if key.rollover:  # a log key made by a rotation: the old key's note vouching for it
                    leaf["rollover"] = key.rollover
                mark = self._add(leaf, None)
                self.key_marks.append((key.id, "registered", mark))
                if key.valid_until is not None:  # its key leaf holds its end
                    self.key_marks.append((key.id, "retired", mark))
            elif key.valid_until is not None and retired_idx is None:  # rotated: the registry ended it
                mark = self._add({"type": "retirement", "kid": key.kid, "public_key": _b64(key.public_raw),
                                  "valid_until": format_time(key.valid_until), "received_at": self.received}, None)
                self.key_marks.append((key.id, "retired", mark))
            if key.revoked_at is not None and revoked_idx is None:
                mark = self._add({"type": "revocation", "kid": key.kid, "public_key": _b64(key.public_raw),
                                  "revoked_at": format_time(key.revoked_at), "reason": key.revocation_reason,
                                  "received_at": self.received}, None)
                self.key_marks.append((key.id, "revoked", mark))

    def finish(self, first: int,
               judge: Callable[[Session, int, int, list[tuple[int, Event, datetime]],
                                list[tuple[int, str, str]]], None]) -> None:
        """Store the rows that go with the leaves: chain heads, issued labels, key marks, rules."""
        s = self.session
        last_of: dict[str, int] = {}
        for i, leaf in enumerate(self.leaves):
            if leaf.item is not None:
                last_of[leaf.item] = i
        self.prefetch(last_of)
        updates = [(item, self.leaves[i].hash, first + i) for item, i in last_of.items() if item in self.existing_heads]
        bulk_update(s.connection(), ItemHead.__tablename__, ("item", "text"),
                    (("leaf_hash", "bytea"), ("idx", "bigint")), updates)
        inserts = [(item, self.leaves[i].hash, first + i, None, 0)
                   for item, i in last_of.items() if item not in self.existing_heads]
        if inserts:
            bulk_insert(s.connection(), ItemHead.__tablename__, ("item", "leaf_hash", "idx", "state", "state_size"),
                        inserts)
        for digest, item, mark in self.labels:
            s.add(IssuedLabel(label_hash=digest, item=item, leaf_idx=first + mark))
        registered = [{"key_id": key_id, "registered_idx": first + mark}
                      for key_id, what, mark in self.key_marks if what == "registered"]
        if registered:
            s.execute(insert(LoggedKey), registered)
        for key_id, what, mark in self.key_marks:
            if what in ("revoked", "retired"):
                row = s.get(LoggedKey, key_id)
                assert row is not None  # logged as registered before, or just above
                if what == "revoked":
                    row.revoked_idx = first + mark
                else:
                    row.retired_idx = first + mark
        s.flush()
        judge(s, first, first + len(self.leaves), [(first + mark, event, self.now) for mark, event in self.handovers],
              [(first + mark, item, digest) for digest, item, mark in self.labels])
