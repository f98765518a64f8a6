"""The key manager: the instance's own keys and the registry of every public key.

Rotation is first-class: :meth:`KeyManager.rotate` ends the current key's
validity at ``now`` and starts a new key's validity at ``now``, so labels and
events signed by the old key keep verifying while new ones use the new key.
Revocation (:meth:`KeyManager.revoke`) invalidates what the key signed from
the revocation time on.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from custody.errors import MissingKey, NotFound
from custody.keyring import KeyRing, PublicKey, Role, key_id
from custody.labels import Signer
from keys.files import check_new_passphrase, public_raw, read_private_key, write_private_key
from store.db import Database
from store.models import KeyRecord, LoggedKey, Setting


def to_public_key(row: KeyRecord) -> PublicKey:
    return PublicKey(
        public_raw=row.public_raw, role=Role(row.role), owner=row.owner, valid_from=row.valid_from,
        valid_until=row.valid_until, revoked_at=row.revoked_at, revocation_reason=row.revocation_reason,
    )


class KeyManager:
    """Keys of one instance: files under ``key_dir``, registry rows in ``db``."""

    def __init__(self, db: Database, key_dir: Path, secret: bytes | None = None):
        self.db = db
        self.key_dir = key_dir
        self._secret = secret
        self._cache: dict[str, Ed25519PrivateKey] = {}

    def _need_secret(self) -> bytes:
        if self._secret is None:
            from keys.files import passphrase
            self._secret = passphrase()
        return self._secret

    def passphrase(self) -> bytes:
        """The passphrase that opens the private keys (asked once), for a process of this instance
        that needs them too (the log writer): hand it over a pipe, never in arguments or the environment."""
        return self._need_secret()

    # --- registry -------------------------------------------------------------

    def keyring(self) -> KeyRing:
        with self.db.session() as s:
            return KeyRing(to_public_key(r) for r in s.scalars(select(KeyRecord).order_by(KeyRecord.id)))

    def records(self) -> list[KeyRecord]:
        with self.db.session() as s:
            return list(s.scalars(select(KeyRecord).order_by(KeyRecord.id)))

    def register(self, public: bytes, role: Role, owner: str, valid_from: datetime,
                 valid_until: datetime | None = None, private_file: str | None = None) -> PublicKey:
        """Add an outside public key (a station's, a witness's) to the registry."""
        with self.db.write_session() as s:
            s.add(KeyRecord(kid=key_id(public).hex(), public_raw=public, role=role.value, owner=owner,
                            valid_from=valid_from, valid_until=valid_until, private_file=private_file))
        return PublicKey(public, role, owner, valid_from, valid_until)

    # --- the instance's own keys -------------------------------------------------

    def create(self, role: Role, owner: str, now: datetime) -> PublicKey:
        """Generate a key, write it encrypted, register its public half valid from ``now``."""
        # Labels carry whole seconds; a key valid from a fraction of a second later
        # would refuse a label signed in the same second.
        now = now.replace(microsecond=0)
        secret = self._checked_secret()
        key = Ed25519PrivateKey.generate()
        raw = public_raw(key)
        name = f"{role.value}-{owner}-{key_id(raw).hex()}.pem"
        write_private_key(self.key_dir / name, key, secret)
        self._cache[name] = key
        return self.register(raw, role, owner, now, private_file=name)

    def _checked_secret(self) -> bytes:
        """The passphrase, once it has opened a private key this instance already holds.

        A new key is written under whatever passphrase it is given: a mistyped one would leave the
        instance signing with a key that its own passphrase can never open again. So the passphrase
        must first open the newest existing key file (:class:`WrongPassphrase` if it does not); an
        instance without key files yet (``custody init``) takes it as a new passphrase (long enough).
        """
        with self.db.session() as s:
            files = s.scalars(select(KeyRecord.private_file).where(KeyRecord.private_file.is_not(None))
                              .order_by(KeyRecord.id.desc())).all()
        newest = next((name for name in files if name and (name in self._cache or (self.key_dir / name).exists())),
                      None)
        if newest is None:  # the instance's first key: a new passphrase (asked twice at a terminal)
            if self._secret is None:
                from keys.files import passphrase

                self._secret = passphrase(new=True)
            check_new_passphrase(self._secret)
            return self._secret
        secret = self._need_secret()
        if newest not in self._cache:
            self._cache[newest] = read_private_key(self.key_dir / newest, secret)
        return secret

    def current(self, role: Role, owner: str, now: datetime) -> KeyRecord:
        """The key this instance signs with for ``role`` and ``owner`` at ``now``."""
        with self.db.session() as s:
            rows = s.scalars(select(KeyRecord).where(
                KeyRecord.role == role.value, KeyRecord.owner == owner, KeyRecord.private_file.is_not(None),
            ).order_by(KeyRecord.valid_from.desc(), KeyRecord.id.desc())).all()
        for row in rows:
            usable = row.valid_from <= now and (row.valid_until is None or now < row.valid_until)
            if usable and (row.revoked_at is None or now < row.revoked_at):
                return row
        raise MissingKey(f"this instance holds no valid {role.value} key for {owner} at {now.isoformat()}; "
                         f"create one with `custody keys rotate --role {role.value} --owner {owner}`")

    def signer(self, role: Role, owner: str, now: datetime) -> Signer:
        row = self.current(role, owner, now)
        assert row.private_file is not None
        key = self._cache.get(row.private_file)
        if key is None:
            key = read_private_key(self.key_dir / row.private_file, self._need_secret())
            self._cache[row.private_file] = key
        return Signer(bytes.fromhex(row.kid), key.sign)

    def private_key(self, role: Role, owner: str, now: datetime) -> Ed25519PrivateKey:
        """The raw private key (for the log's note signer, which needs the key object)."""
        self.signer(role, owner, now)
        row = self.current(role, owner, now)
        assert row.private_file is not None
        return self._cache[row.private_file]

    def rotate(self, role: Role, owner: str, now: datetime) -> PublicKey:
        """Retire the current key at ``now`` and create its successor, valid from ``now``.

        A log key's successor is vouched for by the old key (a rollover note, kept with the new key's
        row): stations and witnesses that pinned the old key follow it. A revoked key vouches for
        nothing: after a revocation there is no current key, and those who pinned it must pin anew.
        """
        try:
            old = self.current(role, owner, now)
        except MissingKey:
            old = None
        old_private = self.private_key(role, owner, now) if old is not None and role is Role.LOG_SIGNER else None
        now = now.replace(microsecond=0)
        new = self.create(role, owner, now)
        if old is not None:
            with self.db.write_session() as s:
                row = s.get(KeyRecord, old.id)
                assert row is not None
                row.valid_until = now
                if old_private is not None:
                    origin = s.get(Setting, "origin")
                    if origin is not None and origin.value:
                        from custody.log.note import verifier_key
                        from custody.log.rollover import sign_rollover

                        successor = s.scalars(select(KeyRecord).where(KeyRecord.public_raw == new.public_raw)).one()
                        successor.rollover = sign_rollover(origin.value, verifier_key(origin.value, new.public_raw),
                                                           now, old_private)
        return new

    def revoke(self, kid_hex: str, at: datetime, reason: str) -> list[PublicKey]:
        """Revoke every key with this id from ``at`` on. Raises :class:`NotFound` if none.

        A key revoked before stays revoked from the earlier time: a later ``at`` changes nothing, an
        earlier one replaces the revocation (time and reason). The log learns the new revocation as it
        learned the first (a ``revocation`` leaf in the next batch): its logged mark is cleared here,
        in the same transaction, so the log and the registry never disagree on when a key stopped.
        """
        if not reason.strip():
            raise ValueError("a revocation needs a reason")
        with self.db.write_session() as s:
            rows = s.scalars(select(KeyRecord).where(KeyRecord.kid == kid_hex.lower())).all()
            if not rows:
                raise NotFound(f"no key with id {kid_hex} is registered")
            for row in rows:
                if row.revoked_at is None or at < row.revoked_at:
                    row.revoked_at = at
                    row.revocation_reason = reason
                    logged = s.get(LoggedKey, row.id)
                    if logged is not None:
                        logged.revoked_idx = None  # an earlier revocation than the one logged: log it too
            return [to_public_key(r) for r in rows]
