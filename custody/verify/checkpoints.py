"""Signed checkpoints: opening them, their consistency, and checkpoints held outside the database.

Pure: the driver passes the notes, the trusted keys and a ``proof(old, new)``
function that builds a consistency proof from the stored tree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from custody.errors import LogError
from custody.log.checkpoint import Checkpoint, VerifiedCheckpoint, open_checkpoint, parse_checkpoint
from custody.log.merkle import verify_consistency
from custody.log.note import NoteVerifier, parse_unverified_note
from custody.verify.findings import Finding

ProofFn = Callable[[int, int], Sequence[bytes]]


@dataclass(frozen=True)
class HeldCheckpoint:
    """A checkpoint that verified, with where it came from (``log_checkpoints``, a file, a witness)."""

    checkpoint: Checkpoint
    source: str
    note: bytes
    cosigned_by: tuple[str, ...] = ()


def open_with_keys(note: bytes, log_keys: Sequence[NoteVerifier],
                   cosigners: Sequence[NoteVerifier] = ()) -> VerifiedCheckpoint:
    """Open ``note`` with whichever of the log keys signed it; raises the last error if none did."""
    error: Exception | None = None
    for key in log_keys:
        try:
            return open_checkpoint(note, key, cosigners=cosigners)
        except LogError as exc:
            error = exc
    raise error or LogError("no log key is known: cannot open a checkpoint")


def open_stored(size: int, note: bytes, log_keys: Sequence[NoteVerifier], cosigners: Sequence[NoteVerifier],
                source: str) -> tuple[HeldCheckpoint | None, list[Finding]]:
    """Open a stored checkpoint row; findings for a forged note, a bad cosignature, a size that differs."""
    findings: list[Finding] = []
    try:
        verified = open_with_keys(note, log_keys, cosigners)
    except LogError as exc:
        try:  # a bad cosignature rejects the note as a whole: see whether the log's own signature holds
            verified = open_with_keys(note, log_keys)
        except LogError:
            try:
                claimed = str(parse_checkpoint(parse_unverified_note(note).body).size)
            except LogError:
                claimed = "unparseable"
            return None, [Finding("checkpoint_bad_signature",
                                  f"{source} checkpoint at size {size} is not signed by the log key: {exc}",
                                  f"规模 {size} 的检查点不是日志密钥签署的（伪造）", size=size,
                                  expected="a signature by the log key", found=f"note claiming size {claimed}")]
        findings.append(Finding("cosignature_bad", f"{source} checkpoint at size {size}: {exc}",
                                f"规模 {size} 的检查点上有无效的见证副署", size=size))
    cp = verified.checkpoint
    if cp.size != size:
        findings.append(Finding("checkpoint_malformed",
                                f"{source} checkpoint row for size {size} holds a checkpoint of size {cp.size}",
                                f"规模 {size} 的检查点记录内容为规模 {cp.size}", size=size,
                                expected=str(size), found=str(cp.size)))
    names = tuple(s.verifier.name for s in verified.cosignatures)
    return HeldCheckpoint(cp, source, note, names), findings


def check_chain(held: Sequence[HeldCheckpoint], proof: ProofFn) -> list[Finding]:
    """Each checkpoint (by size) against the next: consistency through the stored tree."""
    findings: list[Finding] = []
    ordered = sorted(held, key=lambda h: h.checkpoint.size)
    for old, new in pairwise(ordered):
        a, b = old.checkpoint, new.checkpoint
        if a.size == b.size:
            if a.root_hash != b.root_hash:
                findings.append(Finding(
                    "checkpoint_inconsistent",
                    f"two checkpoints at size {a.size} ({old.source}, {new.source}) have different roots "
                    f"{a.root_hash.hex()} and {b.root_hash.hex()}: the log forked",
                    f"规模 {a.size} 有两个不同根哈希的检查点：日志分叉", size=a.size,
                    expected=a.root_hash.hex(), found=b.root_hash.hex()))
            continue
        try:
            verify_consistency(a.size, b.size, a.root_hash, b.root_hash, proof(a.size, b.size))
        except LogError as exc:
            findings.append(Finding(
                "checkpoint_inconsistent",
                f"checkpoint {b.size} ({new.source}) is not consistent with checkpoint {a.size} ({old.source}): {exc}",
                f"规模 {b.size} 的检查点与规模 {a.size} 的检查点不一致", size=b.size,
                details={"old": a.size, "new": b.size}))
    return findings


def check_outside(held: HeldCheckpoint, size: int, root_at: Callable[[int], bytes | None],
                  own_size: int) -> list[Finding]:
    """A checkpoint held outside the database (witness copy, a witness, the last verification) vs the log.

    ``size`` is how many leaves the database holds; ``root_at(n)`` the recomputed
    root at ``n`` (None if it cannot be recomputed). ``own_size`` is the stored head size.
    """
    cp = held.checkpoint
    if cp.size > size or cp.size > own_size:
        return [Finding(
            "log_rolled_back",
            f"{held.source} holds a checkpoint at size {cp.size}, but the database has {min(size, own_size)} "
            "leaves: the database was restored from an older backup or its tail was truncated",
            f"{held.source} 持有规模 {cp.size} 的检查点，而数据库只有 {min(size, own_size)} 条：数据库被回滚或截断",
            size=cp.size, expected=f"at least {cp.size} leaves", found=f"{min(size, own_size)} leaves")]
    root = root_at(cp.size)
    if root is not None and root != cp.root_hash:
        return [Finding(
            "history_rewritten",
            f"{held.source} holds the checkpoint {cp.size} with root {cp.root_hash.hex()}; the log's leaves give "
            f"{root.hex()}: the history before {cp.size} was rewritten",
            f"{held.source} 持有的规模 {cp.size} 检查点根哈希与日志重新计算的结果不同：历史被改写",
            size=cp.size, expected=cp.root_hash.hex(), found=root.hex())]
    return []
