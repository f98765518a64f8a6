"""The nightly verification driver: reads the log tables, runs the core's checks, keeps the signed report.

``verify_instance`` streams every leaf in index order (from the last verified
size for an incremental run, from 0 with ``full``) and, per chunk:

- in this process: the leaf hash from its bytes, the index sequence (deleted,
  inserted, beyond the head), the row's columns against its bytes, the tree
  recomputed node by node and compared with every stored node, each item's
  ``item_prev`` chain and the custody rules re-run in log order;
- in a pool of processes (one per core): the Ed25519 checks of every leaf
  (station signatures with the key valid at the event's time, labels).

Then: every stored checkpoint's signature, its root against the recomputed
tree and its consistency with the next one; the head; checkpoints held outside
the database (the witness copy ``<home>/checkpoint``, the last report's
checkpoint, witness homes); station receipts; the alerts table.

What survives a crash: nothing is written until the end. A run stores its
signed report (``verification_runs`` and ``<home>/reports/``) and, only if
everything held, the state the next incremental run resumes from.
"""

from __future__ import annotations

import base64
import hashlib
import json
import multiprocessing
import os
import random
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast, overload

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from custody.errors import CustodyError, LogError
from custody.keyring import KeyRing, PublicKey, Role
from custody.log.merkle import consistency_proof, inclusion_proof, verify_inclusion
from custody.log.merkle import leaf_hash as compute_leaf_hash
from custody.log.note import ALG_COSIGNATURE_V1, NoteVerifier
from custody.verify.checkpoints import HeldCheckpoint, check_chain, check_outside, open_stored, open_with_keys
from custody.verify.findings import Finding, Findings
from custody.verify.leaves import parse_utc
from custody.verify.receipts import check_receipt
from custody.verify.replay import ChainAudit, RulesReplay, compare_alerts
from custody.verify.report import (
    ReportSignatureError,
    build_report,
    render_html,
    report_digest,
    sign_report,
    verify_report,
)
from custody.verify.shares import Shares, ShareWorker
from custody.verify.tree import LeafMismatch, TreeAudit, classify_leaf_mismatches, node_ranges
from keys.durable import write_atomically
from store.instance import Instance
from store.logstore import LogStore, log_verifiers, read_witness_copy
from store.models import (
    KEY_LEAF_TYPES,
    AlertRecord,
    Item,
    ItemHead,
    KeyRecord,
    LogCheckpoint,
    LogHead,
    LogLeaf,
    LogNode,
)
from store.verification_models import VerificationRun, VerificationState

CHUNK = 4096
IN_FLIGHT = 6
_ZERO = bytes(32)


@dataclass
class VerifyOptions:
    """How to verify. ``workers`` 0 runs every check in this process (tests); None: one per core."""

    full: bool = False
    receipts: Path | None = None
    witness_homes: Sequence[Path] = ()
    workers: int | None = None
    chunk: int = CHUNK
    sample: int = 64
    rules: bool = True
    sign: bool = True
    progress: Callable[[int, int], None] | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


@dataclass
class Outcome:
    report: dict[str, Any]
    findings: Findings
    json_path: Path | None = None
    html_path: Path | None = None

    @property
    def ok(self) -> bool:
        return bool(self.report["ok"])


# --- the processes that share the expensive checks -------------------------------------

_WorkRow = tuple[int, bytes, datetime, str | None, str | None]  # see ShareWorker.process


def _share_main(worker: ShareWorker, inbox: Any, outbox: Any) -> None:
    import gc

    gc.disable()  # allocation-heavy, short-lived objects: the cycle collector only costs time here
    try:
        while True:
            rows = inbox.get()
            if rows is None:
                break
            worker.process(rows)
        outbox.put(worker.result())
    except BaseException as exc:  # report it: the parent must not wait forever
        outbox.put({"error": f"{type(exc).__name__}: {exc}"})


class _Pipeline:
    """Feeds every chunk to each share: in forked processes, or inline when ``workers`` is 0."""

    def __init__(self, keys: KeyRing, shares: Shares, make_replay: Callable[[int], RulesReplay | None],
                 workers: int):
        self.inline: ShareWorker | None = None
        self.procs: list[tuple[Any, Any, Any]] = []
        if workers == 0:
            self.inline = ShareWorker(keys, 0, shares, make_replay(0))
            return
        ctx = multiprocessing.get_context("fork")
        for share in range(workers):
            inbox, outbox = ctx.Queue(maxsize=IN_FLIGHT), ctx.Queue()
            worker = ShareWorker(keys, share, shares, make_replay(share))
            proc = ctx.Process(target=_share_main, args=(worker, inbox, outbox), daemon=True)
            proc.start()
            self.procs.append((proc, inbox, outbox))

    def submit(self, rows: list[_WorkRow]) -> None:
        if self.inline is not None:
            self.inline.process(rows)
            return
        for _, inbox, _ in self.procs:
            inbox.put(rows)

    def finish(self) -> list[dict[str, Any]]:
        if self.inline is not None:
            return [self.inline.result()]
        for _, inbox, _ in self.procs:
            inbox.put(None)
        results = [outbox.get() for _, _, outbox in self.procs]
        for proc, _, _ in self.procs:
            proc.join()
        errors = [r["error"] for r in results if "error" in r]
        if errors:
            raise CustodyError(f"a verification process failed: {errors[0]}")
        return results

    def abort(self) -> None:
        for proc, _, _ in self.procs:
            if proc.is_alive():
                proc.terminate()
            proc.join()


# --- keys ------------------------------------------------------------------------------

def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@overload
def _fmt(when: datetime) -> str: ...
@overload
def _fmt(when: None) -> None: ...
@overload
def _fmt(when: datetime | None) -> str | None: ...
def _fmt(when: datetime | None) -> str | None:
    """RFC 3339 UTC, whole seconds, ``Z`` (the format of times in leaves)."""
    if when is None:
        return None
    if when.utcoffset() != _NO_OFFSET:
        when = when.astimezone(UTC)
    return when.isoformat()[:19] + "Z"


_NO_OFFSET = UTC.utcoffset(None)


def _rollover_findings(origin: str, log_keys: Sequence[tuple[int, dict[str, Any], bytes]],
                       by_raw: dict[bytes, KeyRecord]) -> list[Finding]:
    """Each log key leaf that carries a rollover (a rotation's new key): the rollover must be signed by the log
    key logged before it and name this key, and the registry must hold the same note (stations and witnesses
    fetch it from there). ``log_keys``: the log keys' leaves in log order (index, leaf, raw key)."""
    from custody.log.note import verifier_key
    from custody.log.rollover import follow_rollovers

    findings: list[Finding] = []
    for n, (idx, leaf, raw) in enumerate(log_keys):
        note = leaf.get("rollover")
        if note is None:
            continue
        key = verifier_key(origin, raw)
        try:  # a note that is no text, or of no log key logged before, chains to nothing
            chain = follow_rollovers(verifier_key(origin, log_keys[n - 1][2]), [note]) \
                if n and isinstance(note, str) else []
        except (LogError, ValueError):
            chain = []
        if chain[-1:] != [key]:
            before = f"log key {log_keys[n - 1][1].get('kid')}" if n else "no log key before it"
            findings.append(Finding(
                "rollover_invalid", f"leaf {idx}: the rollover to log key {leaf.get('kid')} is not signed by "
                f"{before}, or names another key", f"第 {idx} 条日志：日志密钥 {leaf.get('kid')} 的交接声明无效",
                index=idx, expected=f"a rollover signed by {before}", found="a note that does not chain"))
        row = by_raw.get(raw)
        if row is not None and row.rollover != note:
            findings.append(Finding(
                "key_registry_mismatch", f"leaf {idx} logs the rollover to log key {leaf.get('kid')}; the registry "
                "holds " + ("none" if row.rollover is None else "another note"),
                f"第 {idx} 条日志记录的日志密钥交接声明与密钥登记表不符", index=idx))
    return findings


def _keys_from_log(s: Session, registry: list[KeyRecord], origin: str) -> tuple[KeyRing, list[Finding]]:
    """The key ring the log itself establishes (key, retirement and revocation leaves), cross-checked with
    the registry; and each log key rotation's rollover checked (:func:`_rollover_findings`).

    A revocation counts from the earliest time either source gives: a revocation
    the registry lost still voids what the key signed afterwards. So does a key's end
    of validity (a rotation): a registry that extends a retired key is a finding, and
    what the key signed after the logged end is not valid.
    """
    findings: list[Finding] = []
    by_raw = {r.public_raw: r for r in registry}
    logged: dict[bytes, dict[str, Any]] = {}
    revoked: dict[bytes, tuple[datetime, int, dict[str, Any]]] = {}  # each key's revocation leaf that holds
    every_revocation: dict[bytes, list[tuple[datetime, int]]] = {}  # each key's readable revocation leaves
    unreadable: list[tuple[int, dict[str, Any], bytes]] = []
    ended: dict[bytes, tuple[datetime, int, dict[str, Any]]] = {}  # each key's logged end that holds (the earliest)
    log_keys: list[tuple[int, dict[str, Any], bytes]] = []  # the log keys' key leaves, in log order
    for idx, data in s.execute(select(LogLeaf.idx, LogLeaf.data).where(LogLeaf.type.in_(KEY_LEAF_TYPES))
                               .order_by(LogLeaf.idx)):
        try:
            leaf = json.loads(data)
            raw = base64.b64decode(leaf["public_key"])
        except (ValueError, KeyError, TypeError):
            continue  # the leaf checks name a malformed leaf
        row = by_raw.get(raw)
        if leaf.get("type") in ("key", "retirement") and leaf.get("valid_until") is not None:
            end = parse_utc(leaf.get("valid_until"))
            if end is None:
                findings.append(Finding(
                    "key_registry_mismatch", f"leaf {idx} ends key {leaf.get('kid')} at an unreadable time "
                    f"{leaf.get('valid_until')!r}", f"第 {idx} 条日志中密钥 {leaf.get('kid')} 的失效时间无法识别",
                    index=idx, expected="a UTC time", found=str(leaf.get("valid_until"))))
            elif raw not in ended or end < ended[raw][0]:
                ended[raw] = (end, idx, leaf)
        if leaf.get("type") == "retirement":
            continue
        if leaf.get("type") == "key":
            logged[raw] = leaf
            if leaf.get("role") == Role.LOG_SIGNER.value:
                log_keys.append((idx, leaf, raw))
            if row is None or (row.role, row.owner, _fmt(row.valid_from)) != (leaf.get("role"), leaf.get("owner"),
                                                                            leaf.get("valid_from")):
                found = f"{row.role}/{row.owner}/{_fmt(row.valid_from)}" if row else "no registry row"
                findings.append(Finding(
                    "key_registry_mismatch",
                    f"leaf {idx} registers key {leaf.get('kid')} ({leaf.get('role')}, {leaf.get('owner')}, valid from "
                    f"{leaf.get('valid_from')}); the registry has {found}",
                    f"第 {idx} 条日志登记的密钥 {leaf.get('kid')} 与密钥登记表不符", index=idx,
                    expected=f"{leaf.get('role')}/{leaf.get('owner')}/{leaf.get('valid_from')}", found=found))
        else:
            # A key revoked again from an earlier time has a revocation leaf for each: the earliest holds.
            at = parse_utc(leaf.get("revoked_at"))
            if at is None:
                unreadable.append((idx, leaf, raw))  # no registry time is written like it: reported below
                continue
            every_revocation.setdefault(raw, []).append((at, idx))
            if raw not in revoked or at < revoked[raw][0]:
                revoked[raw] = (at, idx, leaf)
    compared = [(idx, leaf, raw) for raw, (_, idx, leaf) in revoked.items()] + unreadable
    for idx, leaf, raw in sorted(compared, key=lambda found: found[0]):
        row = by_raw.get(raw)
        if row is None or row.revoked_at is None or _fmt(row.revoked_at) != leaf.get("revoked_at"):
            found = _fmt(row.revoked_at) if row and row.revoked_at else "not revoked"
            findings.append(Finding(
                "key_registry_mismatch",
                f"leaf {idx} revokes key {leaf.get('kid')} from {leaf.get('revoked_at')}; "
                f"the registry says {found}",
                f"第 {idx} 条日志吊销了密钥 {leaf.get('kid')}，密钥登记表却记为 {found}", index=idx,
                expected=str(leaf.get("revoked_at")), found=found))
    for raw, (_, idx, leaf) in sorted(ended.items(), key=lambda found: found[1][1]):
        row = by_raw.get(raw)
        if row is not None and _fmt(row.valid_until) != leaf.get("valid_until"):
            found = _fmt(row.valid_until) if row.valid_until else "valid with no end"
            findings.append(Finding(
                "key_registry_mismatch",
                f"leaf {idx} ends key {leaf.get('kid')} at {leaf.get('valid_until')}; the registry says {found}",
                f"第 {idx} 条日志记录密钥 {leaf.get('kid')} 于 {leaf.get('valid_until')} 失效，"
                f"密钥登记表却记为 {found}",
                index=idx, expected=str(leaf.get("valid_until")), found=found))
    findings += _rollover_findings(origin, log_keys, by_raw)
    ring = KeyRing()
    for raw, leaf in logged.items():
        row = by_raw.get(raw)
        try:
            role = Role(leaf["role"])
        except (ValueError, KeyError):
            continue
        valid_from = parse_utc(leaf.get("valid_from")) or datetime.min.replace(tzinfo=UTC)
        # the earlier end of the two: an end the log does not hold yet (rotated since the last batch) counts
        ends = [when for when in (row.valid_until if row is not None else None,
                                  ended[raw][0] if raw in ended else None) if when is not None]
        valid_until = min(ends) if ends else None
        held = revoked.get(raw)
        at, reason = (held[0], held[2].get("reason")) if held is not None else (None, None)
        if row is not None and row.revoked_at is not None and (at is None or row.revoked_at < at):
            at, reason = row.revoked_at, row.revocation_reason
        ring.add(PublicKey(raw, role, str(leaf.get("owner")), valid_from, valid_until, at, reason,
                           tuple(every_revocation.get(raw, ()))))
    return ring, findings


def _reported_until(s: Session, log_keys: Sequence[NoteVerifier]) -> int:
    """How far the last full verification that can be trusted went (its signed report's ``verified_to``; 0
    if none): a key revoked in a leaf below that was known to it, and what the key had signed from its
    revocation time on was reported then (a finding, the alarm)."""
    rows = s.execute(select(VerificationRun.report).where(VerificationRun.verified_from == 0)
                     .order_by(VerificationRun.verified_to.desc()).limit(5)).scalars()
    for text in rows:
        try:
            report = json.loads(text)
            if not isinstance(report, dict):
                continue
            verify_report(report, log_keys)
        except (ValueError, TypeError, ReportSignatureError):
            continue  # a damaged or unsigned report vouches for nothing
        if report.get("mode") == "full" and report.get("verified_from") == 0 and isinstance(
                report.get("verified_to"), int):
            return int(report["verified_to"])
    return 0


def _reported_before(finding: Finding, reported_until: int) -> bool:
    """Whether ``finding`` (a ``revoked_key_signature``) only repeats what an earlier full verification
    reported: the key was revoked after the server had accepted the event (no revocation leaf covering its
    signing time precedes its leaf: nothing the server knew was broken), and one such revocation leaf lies
    below ``reported_until``. A revocation known only to the registry is news until it is logged."""
    leaves = finding.details.get("revocation_leaves") or []
    indexes = [idx for idx, _ in leaves if isinstance(idx, int)]
    if not indexes or finding.index is None or any(idx < finding.index for idx in indexes):
        return False
    return any(idx < reported_until for idx in indexes)


def _revoked_afterwards_detail(notices: Sequence[Finding]) -> str:
    """The check row for handovers signed by keys revoked afterwards: per key, how many and which leaves."""
    by_key: dict[str, list[int]] = {}
    stations: dict[str, str] = {}
    for f in notices:
        kid = str(f.details.get("kid"))
        by_key.setdefault(kid, []).append(f.index or 0)
        stations[kid] = str(f.details.get("station"))
    keys = "; ".join(f"key {kid} ({stations[kid]}): {len(found)} handover(s), leaves {min(found)}..{max(found)}"
                     for kid, found in sorted(by_key.items()))
    return (f"{keys}. Signed from the time the key was revoked from, accepted before the revocation was logged, "
            "and reported by an earlier full verification: the log holds; as evidence they prove nothing "
            "(the investigation flags them revoked_key)")


def witness_verifiers(registry: list[KeyRecord]) -> list[NoteVerifier]:
    """Witness keys in the registry (role ``witness``, owner = the witness's key name), as cosigners."""
    out = []
    for r in registry:
        if r.role == Role.WITNESS.value:
            try:
                out.append(NoteVerifier(r.owner, ALG_COSIGNATURE_V1, r.public_raw))
            except LogError:
                continue
    return out


# --- state ------------------------------------------------------------------------------

def _load_state(s: Session, verifiers: Sequence[NoteVerifier]) -> tuple[dict[str, Any] | None, list[Finding], str]:
    """The saved state if its snapshot matches the signed report of the run that saved it."""
    row = s.get(VerificationState, 1)
    if row is None:
        return None, [], "no earlier successful run: full verification"
    run = s.scalars(select(VerificationRun).where(VerificationRun.digest == row.report_digest)).first()
    problem = None
    if run is None:
        problem = "the report that saved it is gone"
    else:
        try:
            report = json.loads(run.report)
        except ValueError:
            report = None
        if not isinstance(report, dict):
            problem = "the report that saved it is not a JSON object"
        else:
            try:
                verify_report(report, verifiers)
            except ReportSignatureError as exc:
                problem = f"its report's signature fails ({exc})"
            else:
                if report.get("state_digest") != row.snapshot_digest or \
                        hashlib.sha256(row.snapshot).hexdigest() != row.snapshot_digest:
                    problem = "the snapshot's digest differs from the one in the signed report"
    if problem:
        return None, [Finding("state_untrusted", f"the saved verification state at size {row.verified_size} "
                              f"cannot be trusted: {problem}; verifying in full",
                              "上次核验保存的状态被改动，改为全量核验", size=row.verified_size)], \
            "full (state untrusted)"
    snapshot = json.loads(zlib.decompress(row.snapshot))
    return snapshot, [], f"incremental from size {row.verified_size}"


# --- the run ----------------------------------------------------------------------------

def _leaf_rows(s: Session, start: int, chunk: int) -> Iterator[list[Any]]:
    query = (select(LogLeaf.idx, LogLeaf.data, LogLeaf.hash, LogLeaf.type, LogLeaf.item, LogLeaf.event_key,
                    LogLeaf.station, LogLeaf.received_at)
             .where(LogLeaf.idx >= start).order_by(LogLeaf.idx).execution_options(yield_per=chunk))
    connection = s.connection().execution_options(stream_results=True, yield_per=chunk)
    for part in connection.execute(query).partitions(chunk):
        yield list(part)


def _stored_nodes(s: Session, start: int, end: int) -> dict[tuple[int, int], bytes]:
    ranges = node_ranges(start, end)
    if not ranges:
        return {}
    cond = or_(*(and_(LogNode.level == level, LogNode.idx.between(first, last)) for level, first, last in ranges))
    rows = s.execute(select(LogNode.level, LogNode.idx, LogNode.hash).where(cond))
    return {(level, idx): h for level, idx, h in rows}


def _row_problem(row: Any, leaf: dict[str, Any]) -> str | None:
    """Columns stored beside the leaf that its bytes contradict."""
    kind = leaf.get("type")
    item = leaf.get("item") if isinstance(leaf.get("item"), str) else None
    event = cast("dict[str, Any]", leaf.get("event")) if kind == "handover" and isinstance(leaf.get("event"), dict) \
        else {}
    station = event.get("station") if kind == "handover" else (leaf.get("station") if kind == "refusal" else None)
    if isinstance(station, str):
        station = station[:64]
    key = f"{event.get('station')}/{event.get('id')}" if kind == "handover" else None
    want = {"type": kind, "item": item, "event_key": key, "station": station}
    have = {"type": row.type, "item": row.item, "event_key": row.event_key, "station": row.station}
    diff = [f"{k} is {have[k]!r}, the leaf says {want[k]!r}" for k in want if want[k] != have[k]]
    received = leaf.get("received_at")
    if isinstance(received, str) and _fmt(row.received_at) != received:
        diff.append(f"received_at is {_fmt(row.received_at)}, the leaf says {received}")
    return "; ".join(diff) or None


def verify_instance(instance: Instance, options: VerifyOptions | None = None) -> Outcome:
    """Verify the instance's log; store and return the signed report. Raises only for usage problems."""
    options = options or VerifyOptions()
    started = options.clock()
    t0 = time.perf_counter()
    home = instance.home
    origin = instance.origin
    findings = Findings()
    checks: list[dict[str, Any]] = []

    def check(name: str, name_zh: str, ok: bool, detail: str) -> None:
        checks.append({"name": name, "name_zh": name_zh, "ok": ok, "detail": detail})

    # Open the log key first: a run that cannot sign its report should stop before the work, not after.
    signer = _log_signer(instance, started) if options.sign else None
    db = instance.db
    # Appends may go on while this runs. What is held outside the database is read before it: the ledger
    # writes the witness copy after its commit, so none of it can be ahead of the head read below.
    copy = read_witness_copy(home)
    last_report = _latest_report_file(home)
    witness_notes = [[(path, path.read_bytes()) for path in _witness_files(Path(witness_home))]
                     for witness_home in options.witness_homes]
    with db.session() as s:
        if not db.is_sqlite:  # one snapshot for the head and what it is compared with (SQLite's read is one)
            s.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        registry = list(s.scalars(select(KeyRecord).order_by(KeyRecord.id)))
        log_keys = log_verifiers(origin, registry)
        cosigners = witness_verifiers(registry)
        head = s.get(LogHead, 1)
        head_size, head_root = (head.size, head.root) if head else (0, None)
        leaf_count, max_idx = s.execute(select(func.count(LogLeaf.idx), func.max(LogLeaf.idx))).one()
        stored_cps = [(r.size, r.note) for r in s.scalars(select(LogCheckpoint).order_by(LogCheckpoint.size))]
        keyring, key_findings = _keys_from_log(s, registry, instance.origin)
        snapshot, state_findings, mode_detail = _load_state(s, log_keys)
        revoked_since = s.scalar(select(func.count()).select_from(LogLeaf).where(
            LogLeaf.type == "revocation", LogLeaf.idx >= snapshot["size"])) if snapshot is not None else 0
        last_run = s.execute(select(VerificationRun.digest, VerificationRun.ok)
                             .order_by(VerificationRun.id.desc()).limit(1)).first()
        reported_until = _reported_until(s, log_keys)
    previous = last_run.digest if last_run is not None else None
    findings.extend(key_findings)
    findings.extend(state_findings)
    if not log_keys:
        raise CustodyError("the key registry has no log signing key: nothing to verify checkpoints with")
    check("key registry vs log", "密钥登记与日志", not key_findings,
          f"{len(keyring)} keys established by the log, {len(registry)} in the registry")

    # A state from a larger tree than the database now has: that is a rollback, verify in full.
    if snapshot is not None and snapshot["size"] > head_size:
        findings.add(Finding("log_rolled_back", f"the last verification saw {snapshot['size']} leaves; "
                             "the database now "
                             f"has {head_size}: it was restored from an older backup or truncated",
                             f"上次核验时日志有 {snapshot['size']} 条，现在只有 {head_size} 条：数据库被回滚或截断",
                             size=snapshot["size"], expected=f"at least {snapshot['size']} leaves",
                             found=f"{head_size} leaves"))
        snapshot, known = None, None
    # The last successful run anchors even a full run: what it saw must still be there.
    known = snapshot
    if options.full:
        snapshot, mode_detail = None, "full verification requested"
    elif snapshot is not None and last_run is not None and not last_run.ok:
        # What the last run found lies below the saved state: an incremental run would only sample it
        # and could pass with the problem still there. Until a run passes, every run is full.
        snapshot, mode_detail = None, "full: the last run found problems"
    elif snapshot is not None and (leaf_count != head_size
                                   or (max_idx if max_idx is not None else -1) != head_size - 1):
        # Rows were deleted or added below the head: only a full pass can name them.
        snapshot, mode_detail = None, (f"full: the log holds {leaf_count} leaves up to index {max_idx}, "
                                       f"its head says {head_size}")
    elif snapshot is not None and revoked_since:
        # A key revoked since may have been revoked back to before it (a station laptop stolen and noticed
        # late): what it signed below the saved state is then evidence no more, and only a full pass
        # checks those handovers again. Revocations are rare; the weekly full run is too late for one.
        snapshot, mode_detail = None, (f"full: {revoked_since} key revocation(s) logged since the last run; "
                                       "what those keys signed before is checked again")
    start = snapshot["size"] if snapshot else 0
    mode = "incremental" if snapshot else "full"

    # --- checkpoints in the database ---
    held: list[HeldCheckpoint] = []
    for size, note in stored_cps:
        opened, problems = open_stored(size, note.encode(), log_keys, cosigners, "stored")
        findings.extend(problems)
        if opened is not None:
            held.append(opened)
    by_size = {h.checkpoint.size: h for h in held}

    # --- checkpoints held outside the database ---
    outside: list[HeldCheckpoint] = []
    if copy is not None:
        _add_outside(outside, findings, copy, log_keys, cosigners, f"the witness copy {home / 'checkpoint'}")
    if last_report is not None and last_report.get("checkpoint"):
        try:
            verify_report(last_report, log_keys)
            _add_outside(outside, findings, last_report["checkpoint"].encode(), log_keys, cosigners,
                         "the last verification report")
        except ReportSignatureError:
            pass  # an unsigned or foreign report file vouches for nothing
    for held_by_witness in witness_notes:
        seen: set[bytes] = set()
        for path, witness_note in held_by_witness:
            body = witness_note.split(b"\n\n", 1)[0]
            if body not in seen:  # the latest is kept twice: as checkpoint and in checkpoints/
                seen.add(body)
                _add_outside(outside, findings, witness_note, log_keys, cosigners, f"witness {path}")

    # --- stream the leaves ---
    interest = {h.checkpoint.size for h in held} | {h.checkpoint.size for h in outside} | {head_size}
    if known is not None:
        interest.add(known["size"])
    if snapshot:
        audit = TreeAudit(start, [bytes.fromhex(h) for h in snapshot["compact"]])
        if audit.root().hex() != snapshot["root"]:
            findings.add(Finding("state_untrusted", "the saved compact range does not give the saved root",
                                 "保存的状态不一致", size=start))
        chains = ChainAudit({k: (v[0], bytes.fromhex(v[1])) for k, v in snapshot["heads"].items()})
    else:
        audit = TreeAudit()
        chains = ChainAudit()
    roots: dict[int, bytes] = {start: audit.root()}
    workers = (os.cpu_count() or 1) if options.workers is None else options.workers
    setup = _replay_setup(instance, snapshot) if options.rules else None
    if setup is not None and snapshot is not None and "labels" not in snapshot:
        # a snapshot from before labels were replayed: the labels issued before it, from the log
        snapshot["labels"] = _logged_labels(instance, start)
    shares = Shares(max(workers, 1), _box_links(setup, snapshot))
    pipeline = _Pipeline(keyring, shares, lambda share: _make_replay(setup, snapshot, shares, share), workers)
    conflict = False
    mismatches: list[LeafMismatch] = []
    row_problems = 0
    expected_idx = start
    beyond: list[tuple[int, str | None]] = []
    dirty: set[tuple[int, int]] = set()
    total = max(head_size, (max_idx or -1) + 1) - start
    done = 0
    try:
        with db.session() as s, db.session() as nodes_session:
            for rows in _leaf_rows(s, start, options.chunk):
                last = rows[-1].idx
                stored = _stored_nodes(nodes_session, expected_idx, min(last + 1, head_size)) \
                    if expected_idx < head_size else {}
                work: list[_WorkRow] = []
                for row in rows:
                    idx, data = row.idx, row.data
                    if idx >= head_size:
                        beyond.append((idx, row.item))
                        continue
                    while expected_idx < idx:  # a gap: deleted rows
                        ref = stored.get((0, expected_idx))
                        dirty.add((0, expected_idx))
                        findings.add(Finding("leaf_missing", f"leaf {expected_idx} is missing from the log (deleted); "
                                             f"the stored tree has hash {ref.hex() if ref else 'nothing'} there",
                                             f"第 {expected_idx} 条日志被删除", index=expected_idx,
                                             expected=ref.hex() if ref else None, found="no leaf"))
                        _feed(audit, ref or _ZERO, stored, dirty, findings, mismatches, None, roots, interest)
                        expected_idx += 1
                    expected_idx = idx + 1
                    h = compute_leaf_hash(data)
                    ref = stored.get((0, idx))
                    if h != row.hash and ref == h:
                        findings.add(Finding("leaf_row_mismatch", f"leaf {idx}: the stored hash column is "
                                             f"{row.hash.hex()}, but its bytes and the tree give {h.hex()}",
                                             f"第 {idx} 条日志的哈希列被改动", index=idx, item=row.item,
                                             expected=h.hex(), found=row.hash.hex()))
                    elif h != row.hash or (ref is not None and ref != h):
                        mismatches.append(LeafMismatch(idx, h, ref if ref is not None else row.hash, row.item))
                        dirty.add((0, idx))
                    _feed(audit, h, stored, dirty, findings, mismatches, row.item, roots, interest)
                    try:
                        leaf = json.loads(data)
                    except ValueError:
                        leaf = None
                    if not isinstance(leaf, dict):
                        work.append((idx, data, row.received_at, None, None))
                        continue  # the leaf checks name it
                    kind, item = leaf.get("type"), leaf.get("item")
                    work.append((idx, data, row.received_at, kind if isinstance(kind, str) else None,
                                 item if isinstance(item, str) else None))
                    problem = _row_problem(row, leaf)
                    if problem:
                        row_problems += 1
                        findings.add(Finding("leaf_row_mismatch", f"leaf {idx}: {problem}",
                                             f"第 {idx} 条日志的索引列与内容不符", index=idx, item=row.item))
                    if isinstance(item, str) and "item_prev" in leaf:
                        broken = chains.add(idx, item, leaf.get("item_prev"), h)
                        if broken:
                            findings.add(broken)
                    event = leaf.get("event")
                    if isinstance(event, dict) and event.get("action") == "pack" and isinstance(item, str) \
                            and shares.conflicts(item, event.get("box") if isinstance(event.get("box"), str) else None):
                        conflict = True
                if work:
                    pipeline.submit(work)
                done += len(rows)
                if options.progress:
                    options.progress(done, total)
            grown = _head_size(db)  # read after the leaves: it counts every leaf appended since the start
            beyond = [(idx, item) for idx, item in beyond if idx >= grown]
            for n, (idx, item) in enumerate(beyond):
                if n < 20:
                    findings.add(Finding("leaf_beyond_head", f"leaf {idx} is stored beyond the tree's "
                                         f"{head_size} leaves: it was never logged (inserted)",
                                         f"第 {idx} 条日志位于树外（树只有 {head_size} 条）：未经记录的插入",
                                         index=idx, item=item, expected=f"{head_size} leaves", found=f"leaf {idx}"))
                else:
                    findings.count["leaf_beyond_head"] = findings.count.get("leaf_beyond_head", 0) + 1
            if expected_idx < head_size:  # the tail is gone
                findings.add(Finding("log_truncated", f"the tree head says {head_size} leaves but the log ends at "
                                     f"{expected_idx}: leaves {expected_idx}..{head_size - 1} were deleted",
                                     f"树头记录 {head_size} 条，日志只到第 {expected_idx} 条：尾部被截断",
                                     index=expected_idx, expected=f"{head_size} leaves",
                                     found=f"{expected_idx} leaves"))
        results = pipeline.finish()
    except BaseException:
        pipeline.abort()
        raise
    leaf_findings = [f for r in results for f in r["findings"]]
    # A key revoked back to before what it had signed (stolen, noticed late): the first full run that
    # sees the revocation names each such handover; later runs say so in a check, not as failures
    # (the log holds, and every run failing on it would make the alarm meaningless).
    notices: list[Finding] = []
    failures: list[Finding] = []
    for f in leaf_findings:
        (notices if f.code == "revoked_key_signature" and _reported_before(f, reported_until) else failures).append(f)
    leaf_findings = failures
    if notices:
        check("handovers signed by keys revoked afterwards", "事后吊销的密钥所签交接", True,
              _revoked_afterwards_detail(sorted(notices, key=lambda f: f.index or 0)))
    findings.extend(sorted(leaf_findings, key=lambda f: (f.index or 0, f.code)))
    replayed = None
    if setup is not None:
        if conflict and len(results) > 1:  # a pack joined two shares: judge everything in one tracker
            replayed = _replay_sequential(instance, setup, snapshot, start, head_size)
        else:
            replayed = {"alerts": [a for r in results for a in r["alerts"]],
                        "failures": [f for r in results for f in r["failures"]],
                        "states": {k: v for r in results for k, v in r["states"].items()},
                        "labels": {k: v for r in results for k, v in r["labels"].items()},
                        "orders": results[0]["orders"]}
    findings.extend(classify_leaf_mismatches(mismatches))
    audited = audit.size
    final_root = audit.root()
    roots[audited] = final_root
    elapsed = time.perf_counter() - t0

    # --- the head and the checkpoints against the recomputed tree ---
    if head is not None and audited == head_size and head_root != final_root:
        assert head_root is not None  # head_root is head.root when there is a head
        findings.add(Finding("head_mismatch", f"the stored head says root {head_root.hex()} at size {head_size}; the "
                             f"leaves give {final_root.hex()}", "树头根哈希与重新计算的结果不符",
                             size=head_size, expected=final_root.hex(), found=head_root.hex()))
    bad_roots = 0
    for held_cp in held:
        cp = held_cp.checkpoint
        if cp.size < start:
            continue
        if cp.size > audited:
            findings.add(Finding("checkpoint_beyond_log", f"the checkpoint at size {cp.size} was signed for more "
                                 f"leaves than the log holds ({audited}): its tail was truncated",
                                 f"规模 {cp.size} 的检查点超出日志现有的 {audited} 条：尾部被截断",
                                 size=cp.size, expected=f"{cp.size} leaves", found=f"{audited} leaves"))
            continue
        root = roots.get(cp.size)
        if root is not None and root != cp.root_hash:
            bad_roots += 1
            findings.add(Finding("checkpoint_root_mismatch", f"the signed checkpoint at size {cp.size} has root "
                                 f"{cp.root_hash.hex()}; the leaves give {root.hex()}",
                                 f"规模 {cp.size} 的签名检查点根哈希与日志重新计算的结果不符",
                                 size=cp.size, expected=cp.root_hash.hex(), found=root.hex()))
    if known is not None:
        gone = sorted(set(known.get("checkpoints", ())) - set(by_size) - {x for x, _ in stored_cps})
        for size in gone[:20]:
            findings.add(Finding("checkpoint_missing", f"the checkpoint at size {size}, verified before, is gone from "
                                 "the database", f"此前核验过的规模 {size} 检查点已从数据库中消失", size=size,
                                 expected=f"checkpoint {size}", found="no row"))
        seen_root = roots.get(known["size"])
        if seen_root is not None and seen_root.hex() != known["root"]:
            findings.add(Finding("history_rewritten", f"the last verification saw root {known['root']} at size "
                                 f"{known['size']}; the leaves now give {seen_root.hex()}: history was rewritten",
                                 f"上次核验时规模 {known['size']} 的根哈希与现在重新计算的结果不同：历史被改写",
                                 size=known["size"], expected=known["root"], found=seen_root.hex()))
    chain_scope = [h for h in held if h.checkpoint.size >= start or h.checkpoint.size == max(
        (x.checkpoint.size for x in held if x.checkpoint.size <= start), default=-1)]
    with db.session() as s:
        store = LogStore(s)

        def proof(old: int, new: int) -> Sequence[bytes]:
            try:
                return consistency_proof(old, new, store.get_nodes)
            except LogError:
                return []

        chain_findings = check_chain(chain_scope, proof)
        findings.extend(chain_findings)
        check("checkpoints", "签名检查点", not any(f.size is not None and f.code.startswith("checkpoint")
                                                 for f in findings.items),
              f"{len(stored_cps)} stored, {len(held)} validly signed, {bad_roots} with a wrong root, "
              f"{sum(1 for h in held if h.cosigned_by)} cosigned by a registered witness")

        # --- outside checkpoints ---
        outside_findings: list[Finding] = []
        for outside_cp in outside:
            size = outside_cp.checkpoint.size
            if size >= start or size in roots:
                outside_findings.extend(check_outside(outside_cp, audited, roots.get, head_size))
            else:
                try:
                    verify_consistency_to(outside_cp, audited, final_root, proof)
                except LogError as exc:
                    outside_findings.append(Finding(
                        "history_rewritten", f"{outside_cp.source} holds the checkpoint {size}; the log is not an "
                        f"extension of it: {exc}", f"{outside_cp.source} 持有的检查点 {size} 与日志不一致：历史被改写",
                        size=size))
        findings.extend(outside_findings)
        check("checkpoints held outside the database", "库外持有的检查点", not outside_findings,
              f"{len(outside)} held (witness copy, last report, witnesses)")

        # --- extra nodes beyond the tree ---
        extra = _extra_nodes(s, audited)
        grown = _head_size(db)  # nodes of leaves appended during the run are not extra
        extra = [(level, idx) for level, idx in extra if not 0 <= level < 64 or (idx + 1) << level > grown]
        for level, idx in extra[:20]:
            findings.add(Finding("node_extra", f"node ({level}, {idx}) is stored but the tree of {audited} leaves has "
                                 "no such complete subtree", f"存在多余的树节点 ({level}, {idx})",
                                 found=f"node ({level}, {idx})"))
        check("tree", "默克尔树", not mismatches and not any(
            f.code in ("node_mismatch", "node_missing", "node_extra", "head_mismatch") for f in findings.items),
            f"{audited - start} leaf hashes and their nodes recomputed; root {final_root.hex()}")

        # --- sampled inclusion of older leaves (incremental) ---
        if mode == "incremental" and start > 0 and options.sample:
            sample_findings = _sample_old_leaves(s, store, start, audited, final_root, options.sample)
            findings.extend(sample_findings)
            check("sampled older leaves", "抽查历史条目", not sample_findings,
                  f"{min(options.sample, start)} random leaves below {start} proved in the recomputed tree")

        # --- chains and alerts ---
        item_heads = [(r.item, r.leaf_hash, r.idx) for r in s.scalars(select(ItemHead))]
        grown = _head_size(db)  # an item given a leaf during the run has its head beyond the verified tree
        item_heads = [(i, h_, x) for i, h_, x in item_heads if x is None or not audited <= x < grown]
        touched = set(chains.heads) if mode == "full" else {i for i, _ in _touched(chains, start)}
        head_findings = chains.check_heads((i, h_, x) for i, h_, x in item_heads if i in touched)
        findings.extend(head_findings)
        check("item chains", "物品哈希链", not findings.count.get("item_chain_broken") and not head_findings,
              f"{len(chains.heads)} items")
        if replayed is not None:
            stored_alerts = [(a, b, c) for a, b, c in s.execute(
                select(AlertRecord.leaf_idx, AlertRecord.item, AlertRecord.code).where(AlertRecord.leaf_idx >= start))]
            grown = _head_size(db)  # alerts raised by leaves appended during the run: the next run judges them
            stored_alerts = [a for a in stored_alerts if not audited <= a[0] < grown]
            alert_findings = replayed["failures"] + compare_alerts(replayed["alerts"], stored_alerts)
            findings.extend(alert_findings)
            check("custody rules re-run", "托管规则复核", not alert_findings,
                  f"{len(replayed['alerts'])} alerts raised again, {len(stored_alerts)} stored"
                  + (" (in one process: a pack joined two box groups)" if conflict and len(results) > 1 else ""))

        # --- receipts ---
        if options.receipts is not None:
            receipt_findings, count = _check_receipts(s, options.receipts, log_keys, audited, final_root, proof)
            findings.extend(receipt_findings)
            check("station receipts", "交接台回执", not receipt_findings, f"{count} receipts from {options.receipts}")

    signatures_ok = not any(f.code in ("bad_station_signature", "revoked_key_signature", "key_not_valid",
                                       "unknown_key", "label_invalid", "leaf_malformed") for f in findings.items)
    check("signatures and labels", "签名与标签", signatures_ok,
          f"{audited - start} leaves checked with {max(workers, 1)} process(es)")
    check("leaf rows", "条目索引列", not row_problems and not findings.count.get("leaf_missing")
          and not beyond, f"{leaf_count} leaves stored, head size {head_size}")
    if findings.items and all(c["ok"] for c in checks):
        # Findings no check above covers (the saved state, a rollback, the reports): a failed report whose
        # every row reads "ok" left the reader to find the problem in the list below
        check("other findings", "其他问题", False,
              ", ".join(f"{code} ×{count}" for code, count in sorted(findings.count.items())))

    finished = options.clock()
    new_snapshot = {
        "size": audited, "root": final_root.hex(), "compact": [x.hex() for x in audit.compact()],
        "heads": {k: [v[0], v[1].hex()] for k, v in chains.heads.items()},
        "states": replayed["states"] if replayed else (snapshot or {}).get("states", {}),
        "orders": replayed["orders"] if replayed else (snapshot or {}).get("orders", []),
        "labels": replayed["labels"] if replayed else (snapshot or {}).get("labels", {}),
        "checkpoints": sorted(h.checkpoint.size for h in held if h.checkpoint.size <= audited),
    }
    blob = zlib.compress(json.dumps(new_snapshot, sort_keys=True, separators=(",", ":")).encode(), 1)
    blob_digest = hashlib.sha256(blob).hexdigest()
    latest_cp = max((h for h in held if h.checkpoint.size <= audited), key=lambda h: h.checkpoint.size, default=None)
    rate = (audited - start) / elapsed if elapsed > 0 else 0.0
    report = build_report(
        origin=origin, mode=mode, started_at=_fmt(started) or "", finished_at=_fmt(finished) or "",
        log_size=head_size, verified_from=start, verified_to=audited,
        checkpoint=latest_cp.note.decode() if latest_cp else None, findings=findings.items,
        finding_counts=dict(findings.count), checks=checks,
        stats={"leaves": audited - start, "seconds": round(elapsed, 3), "events_per_second": round(rate, 1),
               "workers": max(workers, 1), "mode_detail": mode_detail},
        previous=previous, state_digest=blob_digest)
    if signer is not None:
        report = sign_report(report, signer, _current_verifier(instance, log_keys))
    return _store(instance, report, findings, blob, blob_digest, audited, final_root, latest_cp, started, finished)


def verify_consistency_to(h: HeldCheckpoint, size: int, root: bytes, proof: Callable[[int, int], Sequence[bytes]]) \
        -> None:
    from custody.log.merkle import verify_consistency

    verify_consistency(h.checkpoint.size, size, h.checkpoint.root_hash, root, proof(h.checkpoint.size, size))


def _feed(audit: TreeAudit, h: bytes, stored: dict[tuple[int, int], bytes], dirty: set[tuple[int, int]],
          findings: Findings, mismatches: list[LeafMismatch], item: str | None, roots: dict[int, bytes],
          interest: set[int]) -> None:
    """Add one leaf hash to the audit and compare each node it completes with the stored one."""
    audit.add(h)
    for level, idx, value in audit.completed:
        have = stored.get((level, idx))
        if have == value:
            continue
        if level == 0:
            if (0, idx) not in dirty:
                dirty.add((0, idx))
                if have is None:
                    findings.add(Finding("node_missing", f"the tree node of leaf {idx} (level 0) is not stored",
                                         f"缺少第 {idx} 条日志的树节点", index=idx, item=item, expected=value.hex(),
                                         found="nothing"))
                else:
                    mismatches.append(LeafMismatch(idx, value, have, item))
            continue
        children_dirty = (level - 1, 2 * idx) in dirty or (level - 1, 2 * idx + 1) in dirty
        dirty.add((level, idx))
        if children_dirty:
            continue  # a changed leaf changes its ancestors: named once, at the leaf
        if have is None:
            findings.add(Finding("node_missing", f"node ({level}, {idx}) over leaves "
                                 f"{idx << level}..{((idx + 1) << level) - 1} is not stored",
                                 f"缺少树节点 ({level}, {idx})", expected=value.hex(), found="nothing"))
        else:
            findings.add(Finding("node_mismatch", f"node ({level}, {idx}) over leaves {idx << level}.."
                                 f"{((idx + 1) << level) - 1}: stored {have.hex()}, recomputed {value.hex()}",
                                 f"树节点 ({level}, {idx}) 被篡改", expected=value.hex(), found=have.hex()))
    audit.completed.clear()
    if audit.size in interest:
        roots[audit.size] = audit.root()


def _head_size(db: Any) -> int:
    """The tree size now, in a new read: whatever was read before it is part of a tree this size (the
    ledger commits leaves, nodes, chain heads, alerts and the head together)."""
    with db.session() as s:
        head = s.get(LogHead, 1)
        return head.size if head else 0


def _extra_nodes(s: Session, size: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for level in range(0, 64):
        rows = s.execute(select(LogNode.level, LogNode.idx).where(LogNode.level == level,
                                                                  LogNode.idx >= (size >> level)).limit(20)).all()
        out.extend((a, b) for a, b in rows)
    out.extend((a, b) for a, b in s.execute(select(LogNode.level, LogNode.idx).where(
        or_(LogNode.level < 0, LogNode.level >= 64)).limit(20)))
    return out


def _touched(chains: ChainAudit, start: int) -> Iterator[tuple[str, int]]:
    for item, (idx, _) in chains.heads.items():
        if idx >= start:
            yield item, idx


def _sample_old_leaves(s: Session, store: LogStore, start: int, size: int, root: bytes, count: int) -> list[Finding]:
    rng = random.Random()
    picks = sorted(rng.sample(range(start), min(count, start)))
    rows = dict(s.execute(select(LogLeaf.idx, LogLeaf.data).where(LogLeaf.idx.in_(picks))).all())
    out = []
    for idx in picks:
        data = rows.get(idx)
        if data is None:
            out.append(Finding("leaf_missing", f"leaf {idx} (verified before) is gone", f"第 {idx} 条日志被删除",
                               index=idx, found="no leaf"))
            continue
        try:
            verify_inclusion(compute_leaf_hash(data), idx, size, inclusion_proof(idx, size, store.get_nodes), root)
        except LogError as exc:
            out.append(Finding("leaf_hash_mismatch", f"leaf {idx} (verified before) is not in the tree: {exc}",
                               f"第 {idx} 条日志（已核验过）被改动", index=idx))
    return out


def _add_outside(out: list[HeldCheckpoint], findings: Findings, note: bytes, log_keys: Sequence[NoteVerifier],
                 cosigners: Sequence[NoteVerifier], source: str) -> None:
    try:
        verified = open_with_keys(note, log_keys, cosigners)
    except LogError as exc:
        try:
            verified = open_with_keys(note, log_keys)
        except LogError:
            findings.add(Finding("checkpoint_bad_signature",
                                 f"{source} is not a checkpoint signed by the log key: {exc}",
                                 f"{source} 不是日志密钥签署的检查点"))
            return
    out.append(HeldCheckpoint(verified.checkpoint, source, note,
                              tuple(s.verifier.name for s in verified.cosignatures)))


def _witness_files(home: Path) -> list[Path]:
    files = [home / "checkpoint"] if (home / "checkpoint").is_file() else []
    folder = home / "checkpoints"
    if folder.is_dir():
        files.extend(sorted(p for p in folder.iterdir() if p.is_file()))
    return files


def _replay_setup(instance: Instance, snapshot: dict[str, Any] | None) -> tuple[Any, dict[str, Any]] | None:
    """The plan and item table the custody rules judge with (None without a current exam)."""
    from custody.labels import ItemKind
    from custody.rules import ItemInfo
    from store.plans import load_plan

    exam = instance.current_exam()
    if not exam:
        return None
    with instance.db.session() as s:
        plan = load_plan(s, exam)
        # As store.custody_rules.load_tracker builds them; the labels come from the log's label leaves.
        items = {r.item_id: ItemInfo(item_id=r.item_id, kind=ItemKind(r.kind), subject=r.subject,
                                     destination=r.destination, count=r.count, seal=r.seal, parent_box=r.parent_box)
                 for r in s.scalars(select(Item).where(Item.exam == exam))}
    return plan, items


def _logged_labels(instance: Instance, size: int) -> dict[str, str]:
    """Each item's label as of log size ``size``, from the label leaves themselves (item -> label hash)."""
    labels: dict[str, str] = {}
    with instance.db.session() as s:
        query = (select(LogLeaf.data).where(LogLeaf.type == "label", LogLeaf.idx < size).order_by(LogLeaf.idx)
                 .execution_options(yield_per=CHUNK))
        for (data,) in s.execute(query):
            try:
                leaf = json.loads(data)
                labels[leaf["item"]] = leaf["label"]
            except (ValueError, KeyError, TypeError):
                continue  # a damaged leaf: the leaf checks name it
    return labels


def _box_links(setup: tuple[Any, dict[str, Any]] | None, snapshot: dict[str, Any] | None) -> list[tuple[str, Any]]:
    links: list[tuple[str, Any]] = []
    if setup is not None:
        links.extend((item, info.parent_box) for item, info in setup[1].items())
    for item, state in ((snapshot or {}).get("states") or {}).items():
        links.append((item, state.get("in_box")))
    return links


def _make_replay(setup: tuple[Any, dict[str, Any]] | None, snapshot: dict[str, Any] | None,
                 shares: Shares | None = None, share: int = 0) -> RulesReplay | None:
    """A tracker resumed from the snapshot's states and labels: only those of ``share``'s items when
    ``shares`` is given."""
    if setup is None:
        return None
    snap = snapshot or {}

    def mine(by_item: dict[str, Any]) -> dict[str, Any]:
        if shares is None or shares.n == 1:
            return by_item
        return {k: v for k, v in by_item.items() if shares.of(k) == share}

    return RulesReplay(setup[0], setup[1], states=mine(snap.get("states") or {}),
                       orders=[tuple(o) for o in snap.get("orders", [])], labels=mine(snap.get("labels") or {}))


def _replay_sequential(instance: Instance, setup: tuple[Any, dict[str, Any]], snapshot: dict[str, Any] | None,
                       start: int, end: int) -> dict[str, Any]:
    from custody.verify.shares import judged_at

    replay = _make_replay(setup, snapshot)
    assert replay is not None
    with instance.db.session() as s:
        query = (select(LogLeaf.idx, LogLeaf.data, LogLeaf.received_at)
                 .where(LogLeaf.idx >= start, LogLeaf.idx < end,
                        LogLeaf.type.in_(("handover", "label", "backup_order")))
                 .order_by(LogLeaf.idx)
                 .execution_options(yield_per=CHUNK))
        for idx, data, received in s.execute(query):
            try:
                leaf = json.loads(data)
            except ValueError:
                continue
            if isinstance(leaf, dict):
                replay.feed(idx, leaf, judged_at(received, leaf))
    return {"alerts": replay.alerts, "failures": replay.failures, "states": replay.state_json(),
            "labels": replay.labels, "orders": replay.orders}


def _check_receipts(s: Session, folder: Path, log_keys: Sequence[NoteVerifier], size: int, root: bytes,
                    proof: Callable[[int, int], Sequence[bytes]]) -> tuple[list[Finding], int]:
    unreadable: list[Finding] = []
    try:
        os.listdir(folder)  # rglob passes over a folder it may not read: say so, not 'no receipt files'
        files = sorted(p for p in folder.rglob("*") if p.is_file())
    except OSError as exc:
        return [Finding("receipt_invalid", f"the receipts folder {folder} cannot be read: {exc.strerror or exc}",
                        f"无法读取回执文件夹 {folder}")], 0
    if not files:
        return [Finding("receipt_invalid", f"no receipt files in {folder}", f"{folder} 中没有回执文件")], 0
    texts = []
    for p in files:
        try:
            texts.append((p, p.read_bytes()))
        except OSError as exc:  # one unreadable receipt is named; the run and its report go on
            name = p.relative_to(folder)
            unreadable.append(Finding("receipt_invalid", f"receipt {name} cannot be read: {exc.strerror or exc}",
                                      f"无法读取回执 {name}"))
    wanted = set()
    for _, text in texts:
        try:
            from custody.log.proofs import parse_tlog_proof

            wanted.add(parse_tlog_proof(text).index)
        except LogError:
            pass
    hashes: dict[int, bytes] = {}
    ordered = sorted(wanted)
    for start in range(0, len(ordered), 500):
        chunk = ordered[start:start + 500]
        for idx, data in s.execute(select(LogLeaf.idx, LogLeaf.data).where(LogLeaf.idx.in_(chunk))):
            hashes[idx] = compute_leaf_hash(data)
    out: list[Finding] = unreadable
    for path, text in texts:
        out.extend(check_receipt(str(path.relative_to(folder)), text, log_keys, hashes.get, size, root, proof))
    return out, len(files)


# --- signing and keeping the report -----------------------------------------------------

def _log_signer(instance: Instance, now: datetime) -> Callable[[bytes], bytes]:
    key = instance.keys.private_key(Role.LOG_SIGNER, instance.institute, now)
    return key.sign


def _current_verifier(instance: Instance, log_keys: Sequence[NoteVerifier]) -> NoteVerifier:
    from store.ledger import Ledger

    return Ledger(instance).verifier()


def reports_dir(home: Path) -> Path:
    return home / "reports"


def _store(instance: Instance, report: dict[str, Any], findings: Findings, blob: bytes, blob_digest: str, size: int,
           root: bytes, latest_cp: HeldCheckpoint | None, started: datetime, finished: datetime) -> Outcome:
    folder = reports_dir(instance.home)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = finished.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    digest = report_digest(report)
    base = f"verify-{stamp}-{digest[:8]}"
    json_path, html_path = folder / f"{base}.json", folder / f"{base}.html"
    text = json.dumps(report, ensure_ascii=False, indent=1) + "\n"
    write_atomically(json_path, text.encode())
    write_atomically(html_path, render_html(report).encode())
    if report.get("signature"):
        # latest.json is a checkpoint held outside the database that the next run checks the log against;
        # an unsigned report vouches for nothing, and would drop the signed one it replaced
        write_atomically(folder / "latest.json", text.encode())
        write_atomically(folder / "latest.html", render_html(report).encode())
    with instance.db.write_session() as s:
        s.add(VerificationRun(started_at=started, finished_at=finished, mode=report["mode"], ok=report["ok"],
                              log_size=report["log_size"], verified_from=report["verified_from"],
                              verified_to=report["verified_to"], finding_count=sum(report["finding_counts"].values()),
                              digest=digest, report=json.dumps(report, ensure_ascii=False), report_path=str(json_path)))
        if report["ok"] and report.get("signature"):
            row = s.get(VerificationState, 1)
            values = dict(verified_size=size, root=root, checkpoint=latest_cp.note.decode() if latest_cp else None,
                          snapshot=blob, snapshot_digest=blob_digest, report_digest=digest, updated_at=finished)
            if row is None:
                s.add(VerificationState(id=1, **values))
            else:
                for k, v in values.items():
                    setattr(row, k, v)
    return Outcome(report, findings, json_path, html_path)


def _latest_report_file(home: Path) -> dict[str, Any] | None:
    try:
        report = json.loads((reports_dir(home) / "latest.json").read_text(encoding="utf-8"))
        return report if isinstance(report, dict) else None  # anything else vouches for nothing, as a bad one
    except (FileNotFoundError, ValueError):
        return None


def latest_report(instance: Instance) -> dict[str, Any] | None:
    """The newest verification report (signed JSON object) for the dashboard, or None if none ran.

    Adds ``report_path`` and ``html_path`` (files under ``<home>/reports/``) and
    ``signature_valid`` (checked against the log key now).
    """
    with instance.db.session() as s:
        row = s.scalars(select(VerificationRun).order_by(VerificationRun.id.desc()).limit(1)).first()
        registry = list(s.scalars(select(KeyRecord)))
    if row is None:
        return None
    try:
        report = json.loads(row.report)
    except ValueError:
        report = None
    if not isinstance(report, dict):  # a damaged row: shown as a report that does not verify, not a crash
        report = {"ok": False, "summary": "the stored report is damaged", "summary_zh": "所存核验报告已损坏",
                  "findings": [], "finding_counts": {}}
    try:
        verify_report(report, log_verifiers(instance.origin, registry))
        valid = True
    except ReportSignatureError:
        valid = False
    path = Path(row.report_path) if row.report_path else None
    return {**report, "report_path": str(path) if path else None,
            "html_path": str(path.with_suffix(".html")) if path else None, "signature_valid": valid}


# --- cosignatures sent back by witnesses ------------------------------------------------

def add_cosignature(instance: Instance, note: bytes) -> int:
    """Keep a witness's cosignature: merge its lines into the stored checkpoint of that size.

    ``note`` is the checkpoint as the witness returns it (the log's signature and
    the cosignature lines). The log signature and at least one cosignature by a
    witness key in the registry (role ``witness``) must verify, and a checkpoint
    of that size with the same body must be stored. Returns the size. Raises
    ``LogError`` (exit 1) otherwise; nothing is stored then.
    """
    from custody.log.note import add_signature_lines, parse_unverified_note

    with instance.db.write_session() as s:
        registry = list(s.scalars(select(KeyRecord)))
        cosigners = witness_verifiers(registry)
        if not cosigners:
            raise LogError("no witness key is registered (custody witness-trust KEY): cannot accept cosignatures")
        verified = open_with_keys(note, log_verifiers(instance.origin, registry), cosigners)
        if not verified.cosignatures:
            raise LogError("the checkpoint carries no cosignature by a registered witness")
        size = verified.checkpoint.size
        row = s.get(LogCheckpoint, size)
        if row is None or parse_unverified_note(row.note.encode()).body != verified.checkpoint.body():
            raise LogError(f"the cosigned checkpoint at size {size} is not one this log signed")
        names = {(v.verifier.name, v.verifier.key_id) for v in verified.cosignatures}
        lines = [sig.line() for sig in parse_unverified_note(note).signatures if (sig.name, sig.key_id) in names]
        row.note = add_signature_lines(row.note.encode(), lines).decode()
    return size
