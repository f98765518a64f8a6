"""The storage driver of the Merkle log: leaves, nodes, the head, checkpoints.

The tree arithmetic is the core's (``custody.log.merkle.integrate``); this
module only reads the nodes the core asks for and stores what it returns, on
SQLite or PostgreSQL alike. Every method runs inside the caller's write
transaction (``Database.write_session``), so a batch is stored whole or not at
all: a crash before the commit leaves the previous tree, consistent; after the
commit, leaves, nodes, head and checkpoint are all durable together.

The latest checkpoint is also kept outside the database, in the instance
folder (``checkpoint``), as a witness would. A database restored from a backup
older than that file is refused (:class:`LogRollback`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy.orm import Session

from custody.errors import LogError
from custody.keyring import Role
from custody.log.checkpoint import Checkpoint, parse_checkpoint
from custody.log.merkle import (
    EMPTY_ROOT,
    Integration,
    consistency_proof,
    inclusion_proof,
    inclusion_proofs,
    integrate,
    verify_consistency,
)
from custody.log.note import NoteVerifier, parse_unverified_note, parse_verifier_key, sign_note, verifier_key
from custody.verify.checkpoints import open_with_keys
from keys.durable import write_atomically
from store.db import bulk_insert, placeholder
from store.models import KeyRecord, LogCheckpoint, LogHead, LogLeaf, LogNode

_NodeRow = tuple[int, int, bytes]  # (level, idx, hash) as the driver returns it


class LogRollback(LogError):
    """The database is older than a checkpoint this instance signed: restored from a backup, or rewritten."""


class CheckpointInconsistent(LogError):
    """Signing was refused: the new tree is not an extension of a checkpoint signed before."""


@dataclass(frozen=True)
class NewLeaf:
    data: bytes
    hash: bytes
    type: str
    item: str | None
    event_key: str | None
    station: str | None
    received_at: datetime


def _bind_value(connection: Any, column: Any) -> Callable[[Any], Any]:
    """What the driver is handed for a value of ``column`` (its type's processing), remembered per value."""
    dialect = connection.dialect
    process = column.type.dialect_impl(dialect).bind_processor(dialect) or (lambda value: value)
    seen: dict[Any, Any] = {}

    def value(v: Any) -> Any:
        if v not in seen:
            seen[v] = process(v)
        return seen[v]

    return value


class LogStore:
    """The log's tables, read and written through one session (one transaction)."""

    def __init__(self, session: Session):
        self.session = session
        #: Nodes read or written in this transaction; a complete node never changes.
        self.cache: dict[tuple[int, int], bytes] = {}
        self._head: tuple[int, bytes] | None = None
        self._head_stored: bool | None = None  # whether the head's row exists (None: not read yet)

    def head(self) -> tuple[int, bytes]:
        """The tree's size and root, as first read in this transaction (or as :meth:`append` left them).

        In the driver's own SQL, like the head's update in :meth:`append`: read and written once a
        batch, the ORM's get and flush cost a writer more than a millisecond a batch."""
        if self._head is None:
            row = self.session.connection().exec_driver_sql(
                f"SELECT size, root FROM {LogHead.__tablename__} WHERE id = 1").first()
            self._head_stored = row is not None
            self._head = (int(row[0]), bytes(row[1])) if row is not None else (0, EMPTY_ROOT)
        return self._head

    def get_nodes(self, ids: Sequence[tuple[int, int]]) -> list[bytes]:
        """The hashes of ``ids``; raises if any is missing (the tree is damaged).

        Served from the cache first (nodes are immutable once written); the rest
        in one indexed query (a proof's ~2·log2(n) nodes span ~log2(n) levels: one
        round trip, not one per level, which is what a proof costs on PostgreSQL).
        """
        if not ids:
            return []
        pending = [node for node in dict.fromkeys(ids) if node not in self.cache]
        if pending:
            self._read_nodes(pending)
        missing = [i for i in ids if i not in self.cache]
        if missing:
            raise LogError(f"the stored tree lacks node(s) {missing[:5]} (level, index): the log tables are damaged")
        return [self.cache[i] for i in ids]

    def _read_nodes(self, pending: Sequence[tuple[int, int]]) -> None:
        """Read ``pending`` nodes into the cache: on PostgreSQL in one query, else 500 a query."""
        connection = self.session.connection()
        if connection.dialect.name == "postgresql":
            # The wanted ids as two arrays joined to the primary key: one statement text for every read, so
            # the driver prepares it once (a text that varies with the proof is parsed and planned anew each
            # time: at 1,000,000 leaves 1.35 ms a proof's nodes, against 0.53 ms this way).
            rows = connection.exec_driver_sql(
                "SELECT n.level, n.idx, n.hash FROM unnest(%s::int[], %s::bigint[]) AS w(level, idx) "
                f"JOIN {LogNode.__tablename__} n ON n.level = w.level AND n.idx = w.idx",
                ([level for level, _ in pending], [idx for _, idx in pending]))
            self.cache.update({(level, idx): bytes(h) for level, idx, h in cast("Iterable[_NodeRow]", rows)})
            return
        mark = placeholder(connection)
        for start in range(0, len(pending), 500):
            by_level: dict[int, list[int]] = {}
            for level, idx in pending[start:start + 500]:
                by_level.setdefault(level, []).append(idx)
            # The driver's own SQL: an expression built per read was most of a proof's time. Each
            # term is answered from the (level, idx) primary key (SQLite: a MULTI-INDEX OR; not so
            # a row-value IN, which it answers with a scan of the table).
            where = " OR ".join(f"(level = {mark} AND idx IN ({', '.join([mark] * len(part))}))"
                                for part in by_level.values())
            params = tuple(x for level, part in by_level.items() for x in (level, *part))
            rows = connection.exec_driver_sql(f"SELECT level, idx, hash FROM {LogNode.__tablename__} WHERE {where}",
                                              params)
            self.cache.update({(level, idx): bytes(h) for level, idx, h in cast("Iterable[_NodeRow]", rows)})

    def append(self, leaves: Sequence[NewLeaf]) -> tuple[int, Integration]:
        """Store ``leaves`` after the current tree; returns (first index, integration)."""
        size, _ = self.head()
        result = integrate(size, [leaf.hash for leaf in leaves], self.get_nodes)
        self.cache.update(result.nodes)
        if leaves:
            # The driver's own bulk insert (see store.db.bulk_insert): SQLAlchemy's per-row parameter
            # processing was most of an append. The one value that needs processing is the time, the
            # same for a batch.
            connection = self.session.connection()
            stored_time = _bind_value(connection, LogLeaf.__table__.c.received_at)
            bulk_insert(connection, LogLeaf.__tablename__,
                        ("idx", "data", "hash", "type", "item", "event_key", "station", "received_at"),
                        ((size + i, leaf.data, leaf.hash, leaf.type, leaf.item, leaf.event_key, leaf.station,
                          stored_time(leaf.received_at)) for i, leaf in enumerate(leaves)))
            bulk_insert(connection, LogNode.__tablename__, ("level", "idx", "hash"),
                        ((level, idx, h) for (level, idx), h in result.nodes.items()))
        connection = self.session.connection()
        table, mark = LogHead.__tablename__, placeholder(connection)
        connection.exec_driver_sql(f"UPDATE {table} SET size = {mark}, root = {mark} WHERE id = 1" if self._head_stored
                                   else f"INSERT INTO {table} (id, size, root) VALUES (1, {mark}, {mark})",
                                   (result.new_size, result.root))
        self._head_stored = True
        self._head = (result.new_size, result.root)
        return size, result

    # --- checkpoints ---------------------------------------------------------------

    def signed_note(self, size: int | None = None) -> tuple[int, str] | None:
        """(size, note) of the checkpoint signed at ``size``, else of the latest, else None: in the driver's
        own SQL (read for every proof served and every batch signed: the ORM's query cost more than the
        query itself)."""
        connection = self.session.connection()
        table = LogCheckpoint.__tablename__
        if size is None:
            row = connection.exec_driver_sql(f"SELECT size, note FROM {table} ORDER BY size DESC LIMIT 1").first()
        else:
            row = connection.exec_driver_sql(f"SELECT size, note FROM {table} WHERE size = {placeholder(connection)}",
                                             (size,)).first()
        return (row[0], row[1]) if row is not None else None

    def sign_checkpoint(self, origin: str, sign_key: object, verifiers: Sequence[NoteVerifier],
                        now: datetime, *, signed_before: bytes | None = None) -> bytes:
        """Sign the current head, after proving it extends the latest signed checkpoint.

        ``verifiers``: every log key the instance has had (the latest checkpoint may
        be signed by one retired since). ``signed_before``: the note the caller itself
        signed last; a latest checkpoint that is exactly that note is known good, and
        its signature is not checked again (any other is). Idempotent at one size: an
        existing checkpoint at the current size is returned.
        """
        size, root = self.head()
        previous = self.signed_note()  # one query: the checkpoint at this size is the latest if it exists
        if previous is not None and previous[0] == size:
            return previous[1].encode()
        if previous is not None:
            text = previous[1].encode()
            old = (parse_checkpoint(parse_unverified_note(text).body) if text == signed_before
                   else open_with_keys(text, verifiers).checkpoint)
            if old.size > size:
                raise LogRollback(f"the log has {size} leaves but a checkpoint for {old.size} was signed")
            try:
                verify_consistency(old.size, size, old.root_hash, root,
                                   consistency_proof(old.size, size, self.get_nodes))
            except LogError as exc:
                raise CheckpointInconsistent(f"refusing to sign size {size}: not consistent with the checkpoint "
                                             f"at size {old.size}: {exc}") from None
        note = sign_note(Checkpoint(origin, size, root).body(), origin, sign_key)  # type: ignore[arg-type]
        connection = self.session.connection()
        mark = placeholder(connection)
        signed_at = _bind_value(connection, LogCheckpoint.__table__.c.signed_at)(now)
        connection.exec_driver_sql(f"INSERT INTO {LogCheckpoint.__tablename__} (size, note, signed_at) "
                                   f"VALUES ({mark}, {mark}, {mark})", (size, note.decode(), signed_at))
        return note

    def proof(self, index: int, size: int) -> list[bytes]:
        return inclusion_proof(index, size, self.get_nodes)

    def proofs(self, indexes: Sequence[int], size: int) -> list[list[bytes]]:
        """The audit paths of several leaves in the tree of ``size`` (a batch's receipts)."""
        return inclusion_proofs(indexes, size, self.get_nodes)


def log_verifiers(origin: str, registry: Sequence[KeyRecord]) -> list[NoteVerifier]:
    """Every log signing key of the registry, as note verifiers named by the origin."""
    return [parse_verifier_key(verifier_key(origin, r.public_raw)) for r in registry
            if r.role == Role.LOG_SIGNER.value]


# --- the witness copy of the latest checkpoint, outside the database --------------------


def write_witness_copy(home: Path, note: bytes) -> None:
    """Replace ``home/checkpoint`` atomically (write, fsync, rename, fsync of the folder) if ``note`` is newer."""
    path = home / "checkpoint"
    current = read_witness_copy(home)
    new_size = parse_checkpoint(parse_unverified_note(note).body).size
    if current is not None and parse_checkpoint(parse_unverified_note(current).body).size >= new_size:
        return
    write_atomically(path, note)


def witness_stamp(home: Path) -> tuple[int, int, int] | None:
    """What identifies the witness copy's current version without reading it (it is replaced, never
    rewritten in place: a new version is a new file): inode, size and modification time."""
    try:
        st = (home / "checkpoint").stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def read_witness_copy(home: Path) -> bytes | None:
    try:
        return (home / "checkpoint").read_bytes()
    except FileNotFoundError:
        return None


def check_not_rolled_back(store: LogStore, home: Path, verifiers: Sequence[NoteVerifier]) -> None:
    """Refuse a database older than the checkpoint kept in the instance folder (signed by any of
    ``verifiers``, the instance's log keys)."""
    held = read_witness_copy(home)
    if held is None:
        return
    checkpoint = open_with_keys(held, verifiers).checkpoint
    size, root = store.head()
    if size < checkpoint.size:
        raise LogRollback(
            f"the database holds {size} leaves but this instance signed a checkpoint at size {checkpoint.size} "
            f"(kept in {home / 'checkpoint'}): the database was restored from an older backup or truncated. "
            "Refusing to run; restore the latest database or investigate.")
    try:
        verify_consistency(checkpoint.size, size, checkpoint.root_hash, root,
                           consistency_proof(checkpoint.size, size, store.get_nodes))
    except LogError as exc:
        raise LogRollback(
            f"the database's tree is not an extension of the checkpoint at size {checkpoint.size} that this "
            f"instance signed (kept in {home / 'checkpoint'}): history was rewritten ({exc}). Refusing to run."
        ) from None
