"""Encrypted PKCS#8 key files."""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody.errors import KeyStoreError, WrongPassphrase
from keys.durable import write_atomically

PASSPHRASE_ENV = "CUSTODY_PASSPHRASE"
MIN_PASSPHRASE = 8


def passphrase(*, new: bool = False, env: Mapping[str, str] | None = None) -> bytes:
    """The key passphrase: from ``CUSTODY_PASSPHRASE``, else asked at the terminal (twice if ``new``).

    A ``new`` passphrase (one keys are about to be written under) must have :data:`MIN_PASSPHRASE`
    characters; one that opens existing keys is taken as given, so that a mistyped one is told it does
    not open them (:class:`WrongPassphrase`), not how long a passphrase must be.
    Raises :class:`KeyStoreError` when there is neither (a job without a terminal).
    """
    values: Mapping[str, str] = os.environ if env is None else env
    value = values.get(PASSPHRASE_ENV)
    if value is None:
        if not sys.stdin.isatty():
            raise KeyStoreError(f"a passphrase is needed to use the private keys: set {PASSPHRASE_ENV} "
                                "or run at a terminal")
        value = getpass.getpass("Key passphrase: ")
        if new and getpass.getpass("Repeat the passphrase: ") != value:
            raise KeyStoreError("the two passphrases differ")
    secret = value.encode("utf-8")
    if new:
        check_new_passphrase(secret)
    return secret


def check_new_passphrase(secret: bytes) -> None:
    """Refuse a passphrase too short to write keys under."""
    if len(secret.decode("utf-8", "replace")) < MIN_PASSPHRASE:
        raise KeyStoreError(f"the key passphrase must have at least {MIN_PASSPHRASE} characters")


def public_raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def write_private_key(path: Path, key: Ed25519PrivateKey, secret: bytes) -> None:
    """Write ``key`` encrypted under ``secret``, atomically, readable only by its owner."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(secret),
    )
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomically(path, pem, mode=0o600)


def read_private_key(path: Path, secret: bytes) -> Ed25519PrivateKey:
    """Load and decrypt a key file; :class:`WrongPassphrase` if ``secret`` does not open it."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise KeyStoreError(f"the private key file {path} is missing") from None
    try:
        key = serialization.load_pem_private_key(data, password=secret)
    except (ValueError, TypeError):
        raise WrongPassphrase(f"the passphrase does not open {path.name} (or the file is damaged)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyStoreError(f"{path.name} does not hold an Ed25519 key")
    return key
