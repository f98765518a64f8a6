"""Proof texts: c2sp.org/tlog-proof@v1 inclusion proofs and base64 consistency proofs.

tlog-proof layout (every line ends in a newline)::

    c2sp.org/tlog-proof@v1
    extra <base64 opaque data>          (only when there is extra data)
    index <leaf index, decimal, no leading zeros>
    <base64 hash>                       (zero or more: the RFC 6962 audit path, leaf's sibling first)
    <empty line>
    <the signed checkpoint note, verbatim, with any cosignatures>

Consistency proof text: the RFC 6962 §2.1.2 hashes in order, one standard base64 per line,
each line ending in a newline; an empty proof is the empty text.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from custody.errors import TlogProofError
from custody.log.checkpoint import VerifiedCheckpoint, open_checkpoint
from custody.log.merkle import HASH_SIZE, verify_inclusion
from custody.log.note import NoteVerifier

TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise TlogProofError(f"{what} {text[:60]!r} is not standard base64") from None
    if _b64(raw) != text:
        raise TlogProofError(f"{what} {text[:60]!r} is not canonical base64 (expected {_b64(raw)!r})")
    return raw


def _hash_line(text: str, what: str) -> bytes:
    raw = _unb64(text, what)
    if len(raw) != HASH_SIZE:
        raise TlogProofError(f"{what} {text!r} decodes to {len(raw)} bytes, expected {HASH_SIZE}")
    return raw


def _as_text(data: str | bytes, what: str) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TlogProofError(f"{what} is not UTF-8 at byte {exc.start}") from None


@dataclass(frozen=True)
class TlogProof:
    """A parsed tlog-proof. NOT verified: the checkpoint and path are as found in the text."""

    index: int
    hashes: tuple[bytes, ...]
    checkpoint_note: bytes
    extra: bytes | None = None


def format_tlog_proof(
    index: int, proof_hashes: Sequence[bytes], checkpoint_note: bytes, extra: bytes | None = None
) -> str:
    """The c2sp.org/tlog-proof@v1 text for leaf ``index`` with its audit path and signed checkpoint.

    ``checkpoint_note`` is included verbatim (it must end in a newline, as every note does).
    ``extra`` is unauthenticated opaque data; ``b""`` gives an ``extra`` line with no data.
    """
    return format_tlog_proofs([(index, proof_hashes, extra)], checkpoint_note)[0]


def format_tlog_proofs(proofs: Iterable[tuple[int, Sequence[bytes], bytes | None]],
                       checkpoint_note: bytes) -> list[str]:
    """:func:`format_tlog_proof` of several ``(index, audit path, extra)`` under one checkpoint.

    A batch's receipts: the note is checked and decoded once, and a hash that several paths
    share (their upper levels) is encoded once.
    """
    if not checkpoint_note.endswith(b"\n"):
        raise TlogProofError("checkpoint note must end in a newline")
    note = _as_text(checkpoint_note, "checkpoint note")
    encoded: dict[bytes, str] = {}
    texts = []
    for index, proof_hashes, extra in proofs:
        if index < 0:
            raise TlogProofError(f"leaf index {index}: expected >= 0")
        lines = [TLOG_PROOF_HEADER]
        if extra is not None:
            lines.append(f"extra {_b64(extra)}")
        lines.append(f"index {index}")
        for i, h in enumerate(proof_hashes):
            text = encoded.get(h)
            if text is None:
                if len(h) != HASH_SIZE:
                    raise TlogProofError(f"proof hash {i} has {len(h)} bytes, expected {HASH_SIZE}")
                text = encoded[h] = _b64(h)
            lines.append(text)
        lines.append("")
        texts.append("\n".join(lines) + "\n" + note)
    return texts


def parse_tlog_proof(text: str | bytes) -> TlogProof:
    """Split a tlog-proof text into its parts, checking the layout only.

    Nothing is verified: use ``verify_tlog_proof``. Raises ``TlogProofError`` naming the line.
    """
    body = _as_text(text, "tlog-proof")
    head, sep, checkpoint = body.partition("\n\n")
    if not sep or not checkpoint:
        raise TlogProofError("tlog-proof has no empty line followed by a checkpoint")
    lines = head.split("\n")
    if lines[0] != TLOG_PROOF_HEADER:
        raise TlogProofError(f"tlog-proof starts with {lines[0][:60]!r}, expected {TLOG_PROOF_HEADER!r}")
    rest = lines[1:]
    extra: bytes | None = None
    if rest and rest[0].startswith("extra "):
        extra = _unb64(rest.pop(0).removeprefix("extra "), "tlog-proof extra data")
    if not rest or not rest[0].startswith("index "):
        found = rest[0][:60] if rest else "nothing"
        raise TlogProofError(f"tlog-proof line {len(lines) - len(rest) + 1}: expected 'index <n>', found {found!r}")
    index_text = rest.pop(0).removeprefix("index ")
    if not index_text.isascii() or not index_text.isdigit() or (index_text != "0" and index_text[0] == "0"):
        raise TlogProofError(f"tlog-proof index {index_text!r}: expected a decimal number without leading zeros")
    if int(index_text) >= 1 << 64:
        raise TlogProofError(f"tlog-proof index {index_text} is larger than 2^64-1")
    hashes = tuple(_hash_line(line, f"tlog-proof hash {i}") for i, line in enumerate(rest))
    return TlogProof(int(index_text), hashes, checkpoint.encode("utf-8"), extra)


@dataclass(frozen=True)
class VerifiedTlogProof:
    """A tlog-proof whose checkpoint and inclusion path verified for the given leaf hash."""

    index: int
    checkpoint: VerifiedCheckpoint
    extra: bytes | None


def verify_tlog_proof(
    text: str | bytes,
    leaf_hash: bytes,
    log_key: NoteVerifier,
    *,
    origin: str | None = None,
    cosigners: Sequence[NoteVerifier] = (),
    min_cosignatures: int = 0,
) -> VerifiedTlogProof:
    """Verify a tlog-proof offline: the checkpoint's signatures, then the inclusion path.

    Raises ``TlogProofError`` for the layout, the note/checkpoint errors of
    ``open_checkpoint``, or ``InclusionProofError``. ``extra`` stays unauthenticated.
    """
    proof = parse_tlog_proof(text)
    verified = open_checkpoint(
        proof.checkpoint_note, log_key, origin=origin, cosigners=cosigners, min_cosignatures=min_cosignatures
    )
    cp = verified.checkpoint
    verify_inclusion(leaf_hash, proof.index, cp.size, proof.hashes, cp.root_hash)
    return VerifiedTlogProof(proof.index, verified, proof.extra)


def format_consistency_proof(hashes: Sequence[bytes]) -> str:
    """One standard base64 hash a line, each ending in a newline; empty text for no hashes."""
    for i, h in enumerate(hashes):
        if len(h) != HASH_SIZE:
            raise TlogProofError(f"consistency proof hash {i} has {len(h)} bytes, expected {HASH_SIZE}")
    return "".join(_b64(h) + "\n" for h in hashes)


def parse_consistency_proof(text: str | bytes) -> list[bytes]:
    """Parse ``format_consistency_proof`` output. Raises ``TlogProofError`` naming the line."""
    body = _as_text(text, "consistency proof")
    if not body:
        return []
    if not body.endswith("\n"):
        raise TlogProofError("consistency proof text must end in a newline")
    return [_hash_line(line, f"consistency proof line {i + 1}") for i, line in enumerate(body[:-1].split("\n"))]
