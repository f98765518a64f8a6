"""Signature checks (custody.ed25519): RFC 8032's answers, the strict rules, agreement with OpenSSL."""

from __future__ import annotations

import random

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from custody import ed25519

# RFC 8032 §7.1, TEST 1 and TEST 2: public key, message, signature
RFC8032 = [
    ("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe"
     "24655141438e7a100b"),
    ("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302a"
     "eeb00d291612bb0c00"),
]
# the order of the prime subgroup, RFC 8032 §5.1
L = 2**252 + 27742317777372353535851937790883648493
IDENTITY = bytes([1]) + bytes(31)  # the neutral point, of order 1


@pytest.mark.parametrize(("public", "message", "signature"), RFC8032)
def test_the_rfc_8032_vectors_verify_and_any_change_does_not(public: str, message: str, signature: str) -> None:
    key, msg, sig = bytes.fromhex(public), bytes.fromhex(message), bytes.fromhex(signature)
    assert ed25519.verifies(key, sig, msg)
    assert not ed25519.verifies(key, sig, msg + b"\0")
    for i in (0, 31, 32, 63):
        flipped = bytearray(sig)
        flipped[i] ^= 1
        assert not ed25519.verifies(key, bytes(flipped), msg), i
    other = bytearray(key)
    other[5] ^= 1
    assert not ed25519.verifies(bytes(other), sig, msg)


def test_a_malleated_signature_is_refused() -> None:
    """S + L satisfies the verification equation as well as S; RFC 8032 requires S < L."""
    key, message, signature = (bytes.fromhex(x) for x in RFC8032[1])
    s = int.from_bytes(signature[32:], "little")
    malleated = signature[:32] + (s + L).to_bytes(32, "little")
    assert malleated != signature
    assert not ed25519.verifies(key, malleated, message)


def test_a_small_order_key_verifies_nothing_though_openssl_takes_a_forgery_by_it() -> None:
    """With the neutral point as key and as R, S = 0 is a "signature" of every message."""
    forged = IDENTITY + bytes(32)
    Ed25519PublicKey.from_public_bytes(IDENTITY).verify(forged, b"any text at all")  # OpenSSL: no exception
    assert not ed25519.verifies(IDENTITY, forged, b"any text at all")


def test_wrong_lengths_are_a_failed_check_not_a_crash() -> None:
    key, message, signature = (bytes.fromhex(x) for x in RFC8032[1])
    assert not ed25519.verifies(key, signature[:63], signature[63:] + message)  # the same bytes, split elsewhere
    assert not ed25519.verifies(key, signature + b"\0", message)
    assert not ed25519.verifies(key[:31], signature, message)
    assert not ed25519.verifies(b"", b"", b"")


def test_it_agrees_with_openssl_on_real_signatures_and_their_corruptions() -> None:
    rng = random.Random(8032)
    for _ in range(200):
        private = Ed25519PrivateKey.generate()
        key = private.public_key().public_bytes_raw()
        message = rng.randbytes(rng.randrange(0, 700))
        signature = bytearray(private.sign(message))
        if rng.random() < 0.5:
            signature[rng.randrange(64)] ^= 1 << rng.randrange(8)
        try:
            private.public_key().verify(bytes(signature), message)
            openssl = True
        except Exception:  # noqa: BLE001 - InvalidSignature
            openssl = False
        assert ed25519.verifies(key, bytes(signature), message) is openssl


def test_registration_refuses_keys_no_signature_could_verify_under() -> None:
    ed25519.check_public_key(Ed25519PrivateKey.generate().public_key().public_bytes_raw())
    ed25519.check_public_key(bytes.fromhex(RFC8032[0][0]))
    p = 2**255 - 19
    bad = {
        "neutral point": IDENTITY,
        "order 2": (p - 1).to_bytes(32, "little"),  # (0, -1)
        "y = p + 1, not canonical": (p + 1).to_bytes(32, "little"),
        "31 bytes": bytes(31),
    }
    for name, raw in bad.items():
        with pytest.raises(ValueError):
            ed25519.check_public_key(raw)
        assert not ed25519.verifies(raw, bytes(64), b""), name
