"""Public keys and the rules for trusting them.

A :class:`PublicKey` is a registry entry: the raw Ed25519 public key, its role,
the unit that owns it, and its validity. A :class:`KeyRing` answers one
question for verifiers: which keys may have made this signature, at this time,
for this purpose. Validity is judged at the time the signed object says it was
made (a label's issued-at, an event's station time), because printed labels
must stay verifiable for years after their key was rotated out.

No I/O here: the registry is loaded by ``store`` and passed in.
"""

from __future__ import annotations

import base64
import enum
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from custody import ed25519
from custody.errors import BadSignature, KeyNotValid, KeyRevoked, UnknownKey


class Role(str, enum.Enum):
    """What a key is for. A key signs for exactly one role."""

    LABEL_ISSUER = "label_issuer"
    LOG_SIGNER = "log_signer"
    STATION = "station"
    BADGE_ISSUER = "badge_issuer"
    WITNESS = "witness"


def key_id(public_raw: bytes) -> bytes:
    """The 8-byte key id of INTERFACES §1: the first 8 bytes of SHA-256 of the raw key."""
    if len(public_raw) != 32:
        raise ValueError(f"an Ed25519 public key has 32 bytes, not {len(public_raw)}")
    return hashlib.sha256(public_raw).digest()[:8]


@dataclass(frozen=True)
class PublicKey:
    """One entry of the public key registry.

    ``valid_until`` is exclusive and ``None`` means open-ended. A key revoked at
    time R stays good for what it signed before R and for nothing after.
    """

    public_raw: bytes
    role: Role
    owner: str
    valid_from: datetime
    valid_until: datetime | None = None
    revoked_at: datetime | None = None
    revocation_reason: str | None = None
    #: The log's revocation leaves of this key, as a verifier of the log knows them: (revoked from, leaf
    #: index) each. What the key signed was accepted knowing a revocation only if it was logged after one.
    revocation_leaves: tuple[tuple[datetime, int], ...] = ()

    @property
    def kid(self) -> bytes:
        return key_id(self.public_raw)

    @property
    def kid_hex(self) -> str:
        return self.kid.hex()

    def check_valid_at(self, when: datetime) -> None:
        """Raise :class:`KeyRevoked` or :class:`KeyNotValid` unless the key could sign at ``when``."""
        if self.revoked_at is not None and when >= self.revoked_at:
            raise KeyRevoked(
                f"key {self.kid_hex} ({self.role.value}, {self.owner}) was revoked at "
                f"{self.revoked_at.isoformat()} ({self.revocation_reason or 'no reason given'}); "
                f"the signature claims {when.isoformat()}"
            )
        if when < self.valid_from or (self.valid_until is not None and when >= self.valid_until):
            until = self.valid_until.isoformat() if self.valid_until else "open"
            raise KeyNotValid(
                f"key {self.kid_hex} ({self.role.value}, {self.owner}) is valid from "
                f"{self.valid_from.isoformat()} until {until}; the signature claims {when.isoformat()}"
            )

    def verifies(self, signature: bytes, message: bytes) -> bool:
        return ed25519.verifies(self.public_raw, signature, message)

    def as_json(self) -> dict[str, object]:
        """The public description used by ``custody keys list --json`` and exports."""
        return {
            "kid": self.kid_hex,
            "role": self.role.value,
            "owner": self.owner,
            "public_key": base64.b64encode(self.public_raw).decode("ascii"),
            "valid_from": self.valid_from.isoformat(),
            "valid_until": self.valid_until.isoformat() if self.valid_until else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "revocation_reason": self.revocation_reason,
        }


class KeyRing:
    """The set of public keys a verifier trusts, indexed by key id."""

    def __init__(self, keys: Iterable[PublicKey] = ()):
        self._by_kid: dict[bytes, list[PublicKey]] = {}
        for key in keys:
            self.add(key)

    def add(self, key: PublicKey) -> None:
        self._by_kid.setdefault(key.kid, []).append(key)

    def __iter__(self) -> Iterator[PublicKey]:
        for keys in self._by_kid.values():
            yield from keys

    def __len__(self) -> int:
        return sum(len(keys) for keys in self._by_kid.values())

    def find(self, kid: bytes) -> list[PublicKey]:
        return list(self._by_kid.get(kid, ()))

    def verify(
        self,
        kid: bytes,
        signature: bytes,
        message: bytes,
        *,
        roles: Iterable[Role],
        signed_at: datetime,
        what: str,
    ) -> PublicKey:
        """Return the key that made ``signature`` over ``message``, or raise.

        Tries every key with this id (truncated ids can collide) whose role is
        one of ``roles``. Order of checks: no key with that id and role
        (:class:`UnknownKey`), no such key verifies (:class:`BadSignature`),
        the verifying key was revoked or outside its validity at ``signed_at``
        (:class:`KeyRevoked`, :class:`KeyNotValid`). ``what`` names the signed
        object in messages.
        """
        wanted = set(roles)
        if not wanted:
            raise ValueError("verify() needs at least one acceptable role")
        candidates = [k for k in self.find(kid) if k.role in wanted]
        if not candidates:
            others = self.find(kid)
            found = f"; key {kid.hex()} exists but is a {others[0].role.value} key" if others else ""
            raise UnknownKey(
                f"{what}: no {'/'.join(sorted(r.value for r in wanted))} key with id {kid.hex()} "
                f"is registered{found}"
            )
        verifying = [k for k in candidates if k.verifies(signature, message)]
        if not verifying:
            raise BadSignature(
                f"{what}: the signature does not verify under key {kid.hex()} "
                f"({len(candidates)} candidate key(s) tried); the content was altered or forged"
            )
        problems: list[tuple[KeyNotValid, PublicKey]] = []
        for key in verifying:
            try:
                key.check_valid_at(signed_at)
            except KeyNotValid as problem:
                problems.append((problem, key))
                continue
            return key
        first, signer = problems[0]
        error = type(first)(f"{what}: {first}")
        error.key = signer
        raise error
