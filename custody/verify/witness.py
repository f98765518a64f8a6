"""The witness (c2sp.org/tlog-cosignature): accept a new checkpoint only if it extends the one held.

Run by the province against the city's log. :func:`witness_checkpoint` is the
whole decision: the new checkpoint must be signed by the log key, no smaller
than the one held, and proved consistent with it; then it is cosigned. A
refusal (:class:`WitnessRefusal`) is the alarm: the city's log forked, was
rolled back, or serves a forged checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from custody.errors import LogError
from custody.log.checkpoint import Checkpoint, open_checkpoint
from custody.log.merkle import verify_consistency
from custody.log.note import NoteVerifier, Signer, add_signature_lines, cosign


class WitnessRefusal(LogError):
    """The witness refuses to cosign: the checkpoint is forged, rolled back or inconsistent with the held one.

    ``kind`` is ``forged``, ``rollback`` or ``fork``; the message is English, ``message_zh`` Chinese.
    """

    def __init__(self, kind: str, message: str, message_zh: str):
        super().__init__(message)
        self.kind = kind
        self.message_zh = message_zh


@dataclass(frozen=True)
class Cosigned:
    """A checkpoint the witness verified and cosigned."""

    checkpoint: Checkpoint
    line: str
    note: bytes
    previous_size: int | None


def open_held(note: bytes, log_keys: Sequence[NoteVerifier]) -> Checkpoint:
    """The checkpoint the witness holds, signed by one of the log keys it has trusted (the current one first:
    the held checkpoint may predate a rotation of the city's log key). Raises ``LogError`` if none opens it."""
    error: LogError | None = None
    for key in log_keys:
        try:
            return open_checkpoint(note, key).checkpoint
        except LogError as exc:
            error = error or exc
    raise error or LogError("no log key to open the held checkpoint with")


def witness_checkpoint(new_note: bytes, held_note: bytes | None, proof: Sequence[bytes], log_key: NoteVerifier, *,
                       name: str, signer: Signer, timestamp: int, public_raw: bytes | None = None,
                       previous_keys: Sequence[NoteVerifier] = ()) -> Cosigned:
    """Verify ``new_note`` against ``held_note`` with the consistency ``proof``; cosign it at ``timestamp``.

    Raises :class:`WitnessRefusal` naming both sizes and roots. ``held_note``
    None is the first checkpoint the witness sees (trusted on first use, with
    the log key the witness was configured with). The new checkpoint must be
    signed by ``log_key``; the held one may be signed by a log key the witness
    trusted before (``previous_keys``: the city rotated its log key), and the new
    one must still extend it.
    """
    try:
        new = open_checkpoint(new_note, log_key).checkpoint
    except LogError as exc:
        key = f"{log_key.name}+{log_key.key_id:08x}"
        raise WitnessRefusal("forged", f"the log served a checkpoint that is not signed by its key {key}: {exc} "
                             "(forged, or the city rotated its log key: confirm the new key with the city, then "
                             "run once with --log-key NEW --log-key-rotated)",
                             f"日志提供的检查点不是由其日志密钥 {key} 签名的（伪造，或城市更换了日志密钥："
                             f"向城市核实新密钥后，以 --log-key 新密钥 --log-key-rotated 运行一次）：{exc}") from None
    previous: int | None = None
    if held_note is not None:
        old = open_held(held_note, [log_key, *previous_keys])
        previous = old.size
        if new.size < old.size:
            raise WitnessRefusal(
                "rollback", f"ROLLBACK: the log now says size {new.size} (root {new.root_hash.hex()}), but the "
                f"witness holds a checkpoint at size {old.size} (root {old.root_hash.hex()})",
                f"日志回滚：日志现为 {new.size} 条（根 {new.root_hash.hex()}），而见证方持有 {old.size} 条的检查点"
                f"（根 {old.root_hash.hex()}）")
        try:
            verify_consistency(old.size, new.size, old.root_hash, new.root_hash, proof)
        except LogError as exc:
            raise WitnessRefusal(
                "fork", f"FORK: the checkpoint at size {new.size} (root {new.root_hash.hex()}) is not consistent "
                f"with the held checkpoint at size {old.size} (root {old.root_hash.hex()}): {exc}",
                f"日志分叉：{new.size} 条的检查点（根 {new.root_hash.hex()}）与所持 {old.size} 条的检查点"
                f"（根 {old.root_hash.hex()}）不一致，历史被改写：{exc}") from None
    line = cosign(new.body(), name, signer, timestamp, public_raw=public_raw)
    return Cosigned(new, line, add_signature_lines(new_note, [line]), previous)
