"""Ed25519 signature checks: the one place custody decides whether a signature verifies.

Signatures are checked with libsodium (through PyNaCl), not OpenSSL: on this project's
2-core machine libsodium verifies about 1.8 times as fast, and ingest, the nightly
verification and station requests all spend most of their CPU here.

libsodium applies the strict rules of RFC 8032 §5.1.7 and more: it refuses a scalar S not
below the group order (a malleated signature), a public key or R that is not a canonical
encoding or has small order. Anything it accepts, a plain RFC 8032 verifier (OpenSSL, Go's
crypto/ed25519) accepts too, so an outside party checking our log never disagrees with us
about a signature we took. A key that libsodium would never accept a signature from is
refused when it is registered (:func:`check_public_key`), not discovered on exam morning.

Signing stays with ``cryptography``, which also reads and writes the private key files.
"""

from __future__ import annotations

from nacl.bindings import crypto_core_ed25519_is_valid_point, crypto_sign_open
from nacl.exceptions import BadSignatureError

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64


def verifies(public_raw: bytes, signature: bytes, message: bytes) -> bool:
    """True if ``signature`` is a valid Ed25519 signature of ``message`` by ``public_raw``.

    Wrong lengths are a failed check, never an exception: libsodium reads the first 64 bytes
    of signature and message as the signature, so a short one must not reach it.
    """
    if len(signature) != SIGNATURE_BYTES or len(public_raw) != PUBLIC_KEY_BYTES:
        return False
    try:
        crypto_sign_open(bytes(signature) + bytes(message), bytes(public_raw))
    except BadSignatureError:
        return False
    return True


def check_public_key(public_raw: bytes) -> None:
    """Raise ``ValueError`` unless ``public_raw`` is a key signatures can be verified against.

    Refused: anything but 32 bytes, a non-canonical encoding, a point off the curve or outside
    the prime-order subgroup, and the small-order points (with such a key a signature can be
    made to verify for any message; libsodium refuses every signature by it).
    """
    if len(public_raw) != PUBLIC_KEY_BYTES:
        raise ValueError(f"an Ed25519 public key has {PUBLIC_KEY_BYTES} bytes, not {len(public_raw)}")
    if not crypto_core_ed25519_is_valid_point(bytes(public_raw)):
        raise ValueError("not a usable Ed25519 public key: a small-order point, off the curve, "
                         "or not canonically encoded")
