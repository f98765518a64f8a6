"""Checkpoints: the log's signed tree heads (c2sp.org/tlog-checkpoint).

A checkpoint body is::

    <origin>\\n
    <tree size, decimal, no leading zeros>\\n
    <base64 of the 32-byte RFC 6962 root hash>\\n
    [<extension line>\\n ...]

signed as a note (``custody.log.note``) by the log's Ed25519 key, whose key name is the
origin, and optionally cosigned by witnesses (c2sp.org/tlog-cosignature).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from custody.errors import CheckpointError, NoteSignatureError
from custody.log.merkle import HASH_SIZE
from custody.log.note import NoteVerifier, VerifiedSignature, open_note

MAX_TREE_SIZE = (1 << 64) - 1


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: origin, size, root hash and optional opaque extension lines.

    Construction validates every field, so ``body()`` always yields a well-formed body and
    ``parse_checkpoint(c.body()) == c``.
    """

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin or any(c < " " for c in self.origin):
            raise CheckpointError(f"checkpoint origin {self.origin!r}: expected a non-empty line")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise CheckpointError(f"checkpoint size {self.size}: expected 0..2^64-1")
        if len(self.root_hash) != HASH_SIZE:
            raise CheckpointError(f"checkpoint root hash has {len(self.root_hash)} bytes, expected {HASH_SIZE}")
        for ext in self.extensions:
            if not ext or "\n" in ext or any(c < " " for c in ext):
                raise CheckpointError(f"checkpoint extension line {ext!r}: expected a non-empty line")

    def body(self) -> bytes:
        """The note text to sign: origin, size, base64 root, extensions, each ending in a newline."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode(), *self.extensions]
        return "".join(line + "\n" for line in lines).encode()


def parse_checkpoint(body: bytes) -> Checkpoint:
    """Parse a checkpoint body (the note text, without signatures).

    Checks the format only: call it on the body ``open_note`` returned, or use
    ``open_checkpoint``. Raises ``CheckpointError`` naming the line at fault.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CheckpointError(f"checkpoint is not UTF-8 at byte {exc.start}") from None
    if not text.endswith("\n"):
        raise CheckpointError(f"checkpoint must end in a newline, found {text[-40:]!r}")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError(f"checkpoint has {len(lines)} lines, expected at least 3 (origin, size, root hash)")
    origin, size_text, root_text, *extensions = lines
    for number, line in enumerate(lines, 1):
        if not line:
            raise CheckpointError(f"checkpoint line {number} is empty; expected no empty lines")
    if not size_text.isascii() or not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
        raise CheckpointError(f"checkpoint size {size_text!r}: expected a decimal number without leading zeros")
    if int(size_text) > MAX_TREE_SIZE:
        raise CheckpointError(f"checkpoint size {size_text} is larger than 2^64-1")
    try:
        root_hash = base64.b64decode(root_text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise CheckpointError(f"checkpoint root hash {root_text!r} is not base64") from None
    if len(root_hash) != HASH_SIZE or base64.b64encode(root_hash).decode() != root_text:
        raise CheckpointError(
            f"checkpoint root hash {root_text!r}: expected canonical base64 of {HASH_SIZE} bytes, "
            f"found {len(root_hash)} bytes"
        )
    return Checkpoint(origin, int(size_text), root_hash, tuple(extensions))


class VerifiedCheckpoint(NamedTuple):
    """A checkpoint whose log signature (and cosigner quorum, if asked) verified."""

    checkpoint: Checkpoint
    signatures: tuple[VerifiedSignature, ...]

    @property
    def cosignatures(self) -> tuple[VerifiedSignature, ...]:
        """The verified signatures that are not the log's own (witness cosignatures)."""
        return self.signatures[1:]


def open_checkpoint(
    note: bytes,
    log_key: NoteVerifier,
    *,
    origin: str | None = None,
    cosigners: Sequence[NoteVerifier] = (),
    min_cosignatures: int = 0,
) -> VerifiedCheckpoint:
    """Verify a signed checkpoint: the log's signature, the origin, and a cosigner quorum.

    ``origin`` defaults to the log key's name. The log signature is listed first in the
    result, then cosignatures by ``cosigners`` in note order. Raises ``NoteError`` /
    ``NoteSignatureError`` for the note and its signatures, ``CheckpointError`` for the
    body, a wrong origin, or fewer than ``min_cosignatures`` valid cosignatures.
    """
    opened = open_note(note, [log_key, *cosigners])
    own = [s for s in opened.signatures if s.verifier == log_key]
    if not own:
        found = ", ".join(f"{s.verifier.name}+{s.verifier.key_id:08x}" for s in opened.signatures)
        raise NoteSignatureError(
            f"checkpoint is not signed by the log key {log_key.name}+{log_key.key_id:08x}; "
            f"it is signed only by cosigners {found}"
        )
    checkpoint = parse_checkpoint(opened.body)
    expected_origin = log_key.name if origin is None else origin
    if checkpoint.origin != expected_origin:
        raise CheckpointError(f"checkpoint has origin {checkpoint.origin!r}, expected {expected_origin!r}")
    cosigned = tuple(s for s in opened.signatures if s.verifier != log_key)
    if len(cosigned) < min_cosignatures:
        raise CheckpointError(
            f"checkpoint at size {checkpoint.size} has {len(cosigned)} valid cosignatures, "
            f"expected at least {min_cosignatures} of {len(cosigners)} cosigners"
        )
    return VerifiedCheckpoint(checkpoint, (own[0], *cosigned))
