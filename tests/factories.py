"""Factories for tests: keys, payloads, fixed times. No global state."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody.keyring import KeyRing, PublicKey, Role, key_id
from custody.labels import ItemKind, LabelPayload, Signer
from keys.files import public_raw

TEST_SECRET = b"test-passphrase-not-secret"
T0 = datetime(2017, 6, 1, 8, 0, tzinfo=UTC)


class KeyFactory:
    """Ed25519 keys with registry entries, for tests that need no instance."""

    def __init__(self) -> None:
        self.ring = KeyRing()

    def make(self, role: Role = Role.LABEL_ISSUER, owner: str = "3601", valid_from: datetime = T0,
             valid_until: datetime | None = None, revoked_at: datetime | None = None,
             register: bool = True) -> tuple[Signer, PublicKey, Ed25519PrivateKey]:
        private = Ed25519PrivateKey.generate()
        raw = public_raw(private)
        public = PublicKey(raw, role, owner, valid_from, valid_until, revoked_at,
                           "test revocation" if revoked_at else None)
        if register:
            self.ring.add(public)
        return Signer(key_id(raw), private.sign), public, private


def make_payload(**overrides: object) -> LabelPayload:
    fields: dict[str, object] = dict(item_id="YW-P-K037-12", kind=ItemKind.PAPER_BUNDLE, exam="zk2017", subject="YW",
                                     destination="K037-12", count=30, issued_at=T0.replace(hour=9),
                                     seal="FT170000123", parent_box="YW-X-K037")
    fields.update(overrides)
    return LabelPayload(**fields)  # type: ignore[arg-type]


def prepare_sample_exam(instance: Any, *, scale: str = "tiny", setup_at: datetime = T0,
                        labels_at: datetime | None = None) -> Any:
    """Import the sample exam's plan and staff into ``instance``, make it current, sign every label and badge."""
    from custody.sample import EXAM, sample_people, sample_plan
    from store.issuance import issue_badges, issue_item_labels
    from store.plans import import_people, import_plan

    plan = sample_plan(scale)
    with instance.db.write_session() as s:
        import_plan(s, plan, setup_at, seal_prefix="FT17")
        import_people(s, sample_people(plan))
    instance.set_setting("exam", EXAM)
    issue_item_labels(instance, EXAM, labels_at or setup_at)
    issue_badges(instance, EXAM, labels_at or setup_at)
    return plan
