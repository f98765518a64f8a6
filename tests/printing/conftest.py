"""Factories for the printing tests: signed labels of the sample exam and the key ring that verifies them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody.keyring import KeyRing, PublicKey, Role, key_id
from custody.labels import LabelPayload, Signer, issue_label
from custody.plan import plan_items
from custody.sample import sample_plan
from printing.printable import PrintableLabel, printable_label

ISSUED_AT = datetime(2017, 6, 1, 8, 0, tzinfo=UTC)


@dataclass(frozen=True)
class SignedSheet:
    labels: list[PrintableLabel]
    keys: KeyRing


def sign_sample(scale: str = "tiny", lang: str = "zh", limit: int | None = None) -> SignedSheet:
    private = Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    signer = Signer(key_id(raw), private.sign)
    keys = KeyRing([PublicKey(raw, Role.LABEL_ISSUER, "3601", datetime(2017, 1, 1, tzinfo=UTC))])
    plan = sample_plan(scale)
    labels = []
    for item in plan_items(plan)[:limit]:
        payload = LabelPayload(item.item_id, item.kind, plan.exam, item.subject, item.destination, item.count,
                               ISSUED_AT, item.seal, item.parent_box)
        labels.append(printable_label(plan, item, issue_label(payload, signer), lang=lang))
    return SignedSheet(labels, keys)


@pytest.fixture
def make_sheet() -> Callable[..., SignedSheet]:
    """Factory: ``make_sheet(scale="tiny", lang="zh", limit=None)`` -> labels and their key ring."""
    return sign_sample

