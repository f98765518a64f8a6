"""Log key rollovers: the old log key vouches for its successor, so that those who pinned it can follow.

Stations and witnesses pin the log's verifier key (``custody station init``,
``custody witness --log-key``). When the institute rotates its log key, every
checkpoint and receipt from then on is signed by the new key only, which a
pinned party cannot tell from a forgery. A rollover is a signed note by the
*old* key naming the new one::

    custody log key rollover v1
    <origin>
    <the new key as a signed-note verifier key>
    <the time of the rotation, RFC 3339 UTC>

    — <origin> <signature by the old key>

The first line keeps these notes apart from checkpoints (whose first line is the
origin, a key name without spaces), so no checkpoint signature can be replayed
as a rollover, nor the other way round. A party holding key K follows the
rollovers in order from K: each must be signed by the key before it
(:func:`follow_rollovers`); rollovers before K (signed by keys it never held)
are skipped, and anything else that does not chain is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from custody.errors import LogError
from custody.log.note import Signer, open_note, parse_unverified_note, parse_verifier_key, sign_note

HEADER = "custody log key rollover v1"


class RolloverError(LogError):
    """A rollover note that is malformed or does not chain from the key held."""


def rollover_body(origin: str, new_key: str, at: datetime) -> bytes:
    if at.tzinfo is None:
        raise ValueError("a rollover's time must be timezone-aware")
    parse_verifier_key(new_key)
    stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{HEADER}\n{origin}\n{new_key}\n{stamp}\n".encode()


def sign_rollover(origin: str, new_key: str, at: datetime, old_private: Signer, *,
                  public_raw: bytes | None = None) -> str:
    """The rollover note from the key ``old_private`` (named ``origin``) to ``new_key``."""
    return sign_note(rollover_body(origin, new_key, at), origin, old_private, public_raw=public_raw).decode()


def rollovers_of(document: object) -> list[str]:
    """The rollover notes of a ``GET /api/v1/log-key/rollovers`` answer (parsed JSON); none from anything else:
    what is not a note is left to :func:`follow_rollovers`, which follows only notes that chain."""
    found = document.get("rollovers") if isinstance(document, dict) else None
    return [note for note in found if isinstance(note, str)] if isinstance(found, list) else []


def _parts(note: str) -> tuple[str, str]:
    """The origin and new key a rollover note names (signature not checked)."""
    lines = parse_unverified_note(note.encode()).body.decode().split("\n")
    if len(lines) != 5 or lines[0] != HEADER or lines[4] != "":
        raise RolloverError(f"not a log key rollover: {note[:60]!r}")
    try:
        parse_verifier_key(lines[2])
    except LogError as exc:
        raise RolloverError(f"log key rollover names no valid key: {exc}") from None
    return lines[1], lines[2]


def follow_rollovers(held: str, notes: Sequence[str]) -> list[str]:
    """The log keys from ``held`` on: ``[held, next, ...]``, each vouched for by a rollover note signed by
    the one before (notes in rotation order). Notes signed by keys before ``held`` are skipped; a note
    that names another log (origin) or is malformed raises :class:`RolloverError`."""
    chain = [held]
    current = parse_verifier_key(held)
    for note in notes:
        origin, new_key = _parts(note)
        if origin != current.name:
            raise RolloverError(f"log key rollover for log {origin!r}, not {current.name!r}")
        if new_key in chain:
            continue  # one already followed (or a rollover back to a key held before: nothing to learn)
        try:
            open_note(note.encode(), [current])
        except LogError:
            continue  # signed by an earlier key: history from before the key held
        chain.append(new_key)
        current = parse_verifier_key(new_key)
    return chain
