"""Signed labels: round trip, each refusal with its own error, every mutation refused."""

from __future__ import annotations

from datetime import UTC, timedelta

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custody.errors import (
    BadSignature,
    KeyNotValid,
    KeyRevoked,
    LabelError,
    MalformedLabel,
    NotACustodyLabel,
    UnknownKey,
)
from custody.keyring import Role
from custody.labels import (
    ItemKind,
    LabelPayload,
    cose_from_text,
    issue_label,
    label_text,
    parse_unverified_label,
    payload_from_cbor,
    sign_label,
    verify_label,
)
from printing.qr import qr_code
from tests.factories import T0, KeyFactory, make_payload


def test_round_trip_gives_back_the_payload_and_the_signing_key(key_factory: KeyFactory) -> None:
    signer, public, _ = key_factory.make()
    payload = make_payload()
    label = verify_label(issue_label(payload, signer), key_factory.ring)
    assert label.payload == payload
    assert label.key == public


def test_text_is_prefix_and_digits_of_0x01_and_the_cose_bytes(key_factory: KeyFactory) -> None:
    signer, _, _ = key_factory.make()
    cose = sign_label(make_payload(), signer)
    text = label_text(cose)
    assert text.startswith("CUS1:") and text[5:].isdigit()
    assert int(text[5:]) == int.from_bytes(b"\x01" + cose, "big")
    assert cose_from_text(text) == cose
    message = cbor2.loads(cose)
    assert message.tag == 18
    protected, unprotected, _, signature = message.value
    assert cbor2.loads(protected) == {1: -8}
    assert unprotected == {4: signer.kid} and len(signer.kid) == 8 and len(signature) == 64


def test_a_typical_label_fits_qr_version_9_at_level_m(key_factory: KeyFactory) -> None:
    signer, _, _ = key_factory.make()
    # The longest ids and seal numbers of a city-scale plan.
    payload = make_payload(item_id="ZL-C-K050-69", destination="K050-69", seal="FT170023228",
                           parent_box="ZL-X-K050", count=30)
    code = qr_code(issue_label(payload, signer))
    assert code.version <= 9 and code.error == "M"


@pytest.mark.parametrize("text", ["", "hello", "https://example.org/parcel/123", "SF1234567890", "CUSTOMS:12"])
def test_text_that_is_not_ours_is_not_a_custody_label(key_factory: KeyFactory, text: str) -> None:
    assert parse_unverified_label(text) is None
    with pytest.raises(NotACustodyLabel):
        verify_label(text, key_factory.ring)


@pytest.mark.parametrize("text, message", [
    ("CUS1:", "no digits"),
    ("CUS1:12a4", "must be digits"),
    ("CUS1:0123", "start with 0"),
    ("CUS1:" + "9" * 2000, "at most"),
    ("CUS1:255", "start with byte 0x01"),
    ("CUS2:1234", "not supported"),
])
def test_broken_label_texts_are_malformed(key_factory: KeyFactory, text: str, message: str) -> None:
    with pytest.raises(MalformedLabel, match=message):
        verify_label(text, key_factory.ring)


def test_one_digit_changed_is_refused(key_factory: KeyFactory) -> None:
    signer, _, _ = key_factory.make()
    text = issue_label(make_payload(), signer)
    for position in range(6, len(text), 7):
        changed = text[:position] + str((int(text[position]) + 1) % 10) + text[position + 1:]
        with pytest.raises(LabelError):
            verify_label(changed, key_factory.ring)


def test_a_label_signed_by_an_unregistered_key_is_unknown_key(key_factory: KeyFactory) -> None:
    forger, _, _ = key_factory.make(register=False)
    with pytest.raises(UnknownKey, match="no label_issuer key"):
        verify_label(issue_label(make_payload(), forger), key_factory.ring)


def test_altered_content_under_the_real_key_id_is_bad_signature(key_factory: KeyFactory) -> None:
    signer, _, _ = key_factory.make()
    forger, _, _ = key_factory.make(register=False)
    # The forger copies the real key id into a label they signed themselves.
    forged = sign_label(make_payload(count=60), type(signer)(signer.kid, forger.sign))
    with pytest.raises(BadSignature):
        verify_label(label_text(forged), key_factory.ring)


def test_a_badge_is_only_accepted_from_the_badge_issuer(key_factory: KeyFactory) -> None:
    label_signer, _, _ = key_factory.make(Role.LABEL_ISSUER)
    badge = make_payload(item_id="K037-S1", kind=ItemKind.BADGE, subject="", destination="K037", count=1,
                         seal=None, parent_box=None, holder_name="王伟")
    with pytest.raises(UnknownKey, match="is a label_issuer key"):
        verify_label(issue_label(badge, label_signer), key_factory.ring)
    badge_signer, _, _ = key_factory.make(Role.BADGE_ISSUER)
    assert verify_label(issue_label(badge, badge_signer), key_factory.ring).payload.holder_name == "王伟"


def test_revocation_voids_what_was_signed_after_it_not_before(key_factory: KeyFactory) -> None:
    revoked_at = T0 + timedelta(days=2)
    signer, _, _ = key_factory.make(revoked_at=revoked_at)
    before = issue_label(make_payload(issued_at=revoked_at - timedelta(seconds=1)), signer)
    after = issue_label(make_payload(issued_at=revoked_at), signer)
    assert verify_label(before, key_factory.ring)
    with pytest.raises(KeyRevoked, match="revoked") as caught:
        verify_label(after, key_factory.ring)
    # the key that signed, for a caller that needs its revocations (the nightly verification did not
    # verify again to find it)
    assert caught.value.key is not None and caught.value.key.revoked_at == revoked_at


def test_rotation_keeps_old_labels_valid_and_bounds_the_old_key(key_factory: KeyFactory) -> None:
    rotated = T0 + timedelta(days=10)
    old, _, _ = key_factory.make(valid_until=rotated)
    new, _, _ = key_factory.make(valid_from=rotated)
    assert verify_label(issue_label(make_payload(issued_at=T0 + timedelta(days=1)), old), key_factory.ring)
    assert verify_label(issue_label(make_payload(issued_at=rotated), new), key_factory.ring)
    with pytest.raises(KeyNotValid, match="valid from"):
        verify_label(issue_label(make_payload(issued_at=rotated + timedelta(hours=1)), old), key_factory.ring)
    with pytest.raises(KeyNotValid):
        verify_label(issue_label(make_payload(issued_at=T0 - timedelta(days=1)), new), key_factory.ring)


def test_every_key_with_a_colliding_id_is_tried(key_factory: KeyFactory) -> None:
    signer, public, _ = key_factory.make()
    _, impostor, _ = key_factory.make(register=False)
    # Truncated ids can collide: put another key first under the same id.
    key_factory.ring._by_kid[signer.kid].insert(0, impostor)
    assert verify_label(issue_label(make_payload(), signer), key_factory.ring).key == public


def test_every_single_bit_flip_of_the_cose_bytes_is_refused(key_factory: KeyFactory) -> None:
    signer, _, _ = key_factory.make()
    cose = sign_label(make_payload(), signer)
    for index in range(len(cose)):
        for bit in range(8):
            mutated = bytearray(cose)
            mutated[index] ^= 1 << bit
            with pytest.raises(LabelError):
                verify_label(label_text(bytes(mutated)), key_factory.ring)


_FACTORY = KeyFactory()
_SIGNER = _FACTORY.make()[0]
_COSE = sign_label(make_payload(), _SIGNER)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(index=st.integers(0, len(_COSE) - 1), delta=st.integers(1, 255))
def test_any_single_byte_change_is_refused(index: int, delta: int) -> None:
    mutated = bytearray(_COSE)
    mutated[index] = (mutated[index] + delta) % 256
    with pytest.raises(LabelError):
        verify_label(label_text(bytes(mutated)), _FACTORY.ring)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(cut=st.integers(1, len(_COSE) - 1))
def test_truncated_or_extended_labels_are_refused(cut: int) -> None:
    with pytest.raises(LabelError):
        verify_label(label_text(_COSE[:cut]), _FACTORY.ring)
    with pytest.raises(MalformedLabel):
        verify_label(label_text(_COSE + _COSE[:cut]), _FACTORY.ring)


_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20)


@given(item=_text, exam=_text, subject=_text, destination=_text, count=st.integers(0, 10**6),
       seconds=st.integers(0, 2**31), seal=st.none() | _text, box=st.none() | _text,
       kind=st.sampled_from([k for k in ItemKind if k is not ItemKind.BADGE]))
def test_payload_encoding_round_trips(item: str, exam: str, subject: str, destination: str, count: int,
                                      seconds: int, seal: str | None, box: str | None, kind: ItemKind) -> None:
    from datetime import datetime

    payload = LabelPayload(item, kind, exam, subject, destination, count,
                           datetime.fromtimestamp(seconds, UTC), seal, box)
    assert payload_from_cbor(payload.to_cbor()) == payload


def test_unknown_payload_keys_and_missing_required_keys_are_malformed() -> None:
    good = cbor2.loads(make_payload().to_cbor())
    with pytest.raises(MalformedLabel, match="unknown key"):
        payload_from_cbor(cbor2.dumps({**good, 40: "x"}, canonical=True))
    del good[2]
    with pytest.raises(MalformedLabel, match=r"lacks required key\(s\) \[2\]"):
        payload_from_cbor(cbor2.dumps(good, canonical=True))


def test_a_payload_that_is_not_deterministically_encoded_is_malformed() -> None:
    body = make_payload().to_cbor()
    reordered = cbor2.dumps(dict(reversed(list(cbor2.loads(body).items()))))
    with pytest.raises(MalformedLabel, match="deterministically"):
        payload_from_cbor(reordered)
