"""Signed notes (c2sp.org/signed-note), keys and witness cosignatures (c2sp.org/tlog-cosignature).

A signed note is a UTF-8 text ending in a newline, a blank line, then one or more lines
``— <key name> <base64(4-byte key id || signature)>``. This module writes and opens them
with Ed25519 (signature type 0x01) and checks timestamped Ed25519 cosignatures
(``cosignature/v1``, type 0x04). Checkpoint bodies are in ``custody.log.checkpoint``.

Limits enforced on every note opened: at most ``MAX_NOTE_BYTES`` bytes and
``MAX_SIGNATURES`` signature lines; valid UTF-8 with no control character but newline;
key names non-empty without Unicode spaces or ``+``; base64 in canonical form.

Opening is stricter than Go's ``sumdb/note`` in one way: every line from a known key is
verified (Go verifies only the first per key), and one bad signature by a known key
rejects the whole note, as c2sp.org/signed-note recommends.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from custody import ed25519
from custody.errors import NoteError, NoteSignatureError

ALG_ED25519 = 0x01
"""Signature type of plain Ed25519 note signatures (c2sp.org/signed-note)."""
ALG_COSIGNATURE_V1 = 0x04
"""Signature type of timestamped Ed25519 cosignatures (c2sp.org/tlog-cosignature)."""
MAX_SIGNATURES = 100
MAX_NOTE_BYTES = 1 << 20
MAX_TIMESTAMP = (1 << 63) - 1

_DASH = "\u2014 "
# Go's unicode.IsSpace, which sumdb/note uses to validate key names.
_SPACES = frozenset("\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000") | frozenset(
    chr(c) for c in range(0x2000, 0x200B)
)

Signer = Ed25519PrivateKey | Callable[[bytes], bytes]
"""An Ed25519 private key, or a callable returning the 64-byte Ed25519 signature of a message."""


def is_valid_key_name(name: str) -> bool:
    """Non-empty, no Unicode space, no ``+``, no control character."""
    return bool(name) and not any(c in _SPACES or c == "+" or c < " " for c in name)


def key_id(name: str, alg: int, public_raw: bytes) -> int:
    """``SHA-256(name || 0x0A || alg || public key)[:4]`` as a big-endian uint32."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + public_raw).digest()
    return int.from_bytes(digest[:4], "big")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes | None:
    """Strict standard base64: alphabet, padding and canonical trailing bits, else None."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None
    return raw if _b64(raw) == text else None


# --- keys -------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoteVerifier:
    """A public key trusted to sign notes: Ed25519 (0x01) or a cosigner's (0x04)."""

    name: str
    alg: int
    public_raw: bytes

    def __post_init__(self) -> None:
        if not is_valid_key_name(self.name):
            raise NoteError(f"invalid key name {self.name!r}: expected non-empty, no spaces, no '+'")
        if self.alg not in (ALG_ED25519, ALG_COSIGNATURE_V1):
            raise NoteError(f"key {self.name}: signature type {self.alg:#04x}, expected 0x01 or 0x04")
        if len(self.public_raw) != 32:
            raise NoteError(f"key {self.name}: public key has {len(self.public_raw)} bytes, expected 32")

    @property
    def key_id(self) -> int:
        """The 4-byte key id that starts each signature by this key."""
        return key_id(self.name, self.alg, self.public_raw)

    def key_text(self) -> str:
        """The verifier key text ``<name>+<8 hex>+<base64(alg || public key)>``."""
        return f"{self.name}+{self.key_id:08x}+{_b64(bytes([self.alg]) + self.public_raw)}"

    def check(self, body: bytes, signature: bytes) -> int | None:
        """Verify ``signature`` (the bytes after the key id) over ``body``.

        Returns the cosignature timestamp for type 0x04, None for 0x01; raises
        ``NoteSignatureError`` if the signature does not verify.
        """
        who = f"{self.name}+{self.key_id:08x}"
        timestamp: int | None = None
        message = body
        if self.alg == ALG_COSIGNATURE_V1:
            if len(signature) != 8 + 64:
                raise NoteSignatureError(f"cosignature by {who} has {len(signature)} bytes, expected 72")
            timestamp = int.from_bytes(signature[:8], "big")
            if timestamp > MAX_TIMESTAMP:
                raise NoteSignatureError(f"cosignature by {who} has timestamp {timestamp}, expected <= 2^63-1")
            signature, message = signature[8:], cosignature_message(body, timestamp)
        if len(signature) != 64:
            raise NoteSignatureError(f"signature by {who} has {len(signature)} bytes, expected 64")
        if not ed25519.verifies(self.public_raw, signature, message):
            raise NoteSignatureError(
                f"signature by known key {who} does not verify over the note text "
                f"(SHA-256 {hashlib.sha256(body).hexdigest()}): bad signature {signature.hex()}"
            ) from None
        return timestamp


def verifier_key(name: str, public_raw: bytes) -> str:
    """Ed25519 verifier key text ``<name>+<8 hex key id>+<base64(0x01 || public key)>``."""
    return NoteVerifier(name, ALG_ED25519, public_raw).key_text()


def cosigner_key(name: str, public_raw: bytes) -> str:
    """A witness's cosigner key text, signature type 0x04 (c2sp.org/tlog-cosignature)."""
    return NoteVerifier(name, ALG_COSIGNATURE_V1, public_raw).key_text()


def parse_verifier_key(text: str) -> NoteVerifier:
    """Parse ``<name>+<8 hex>+<base64(alg || key)>``; the key id must match. Raises ``NoteError``."""
    name, _, rest = text.partition("+")
    hex_id, _, key64 = rest.partition("+")
    raw = _unb64(key64)
    if len(hex_id) != 8 or any(c not in "0123456789abcdefABCDEF" for c in hex_id) or not raw:
        raise NoteError(f"malformed verifier key {text!r}: expected <name>+<8 hex digits>+<base64 key>")
    verifier = NoteVerifier(name, raw[0], raw[1:])
    if verifier.key_id != int(hex_id, 16):
        raise NoteError(f"verifier key {text!r}: key id is {hex_id}, computed {verifier.key_id:08x}")
    return verifier


def signer_key(name: str, private_key: Ed25519PrivateKey) -> str:
    """SECRET text ``PRIVATE+KEY+<name>+<8 hex>+<base64(0x01 || seed)>`` (Go's note.NewSigner form)."""
    seed = private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    public_raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return f"PRIVATE+KEY+{name}+{key_id(name, ALG_ED25519, public_raw):08x}+{_b64(bytes([ALG_ED25519]) + seed)}"


def parse_signer_key(text: str) -> tuple[str, Ed25519PrivateKey]:
    """Parse a signer key text into (name, private key); the key id must match. Raises ``NoteError``."""
    parts = text.split("+", 4)
    raw = _unb64(parts[4]) if len(parts) == 5 else None
    if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"] or raw is None or len(raw) != 33 or raw[0] != ALG_ED25519:
        raise NoteError("malformed signer key: expected PRIVATE+KEY+<name>+<8 hex>+<base64(0x01 || 32-byte seed)>")
    name, hex_id = parts[2], parts[3]
    private_key = Ed25519PrivateKey.from_private_bytes(raw[1:])
    public_raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    expected = NoteVerifier(name, ALG_ED25519, public_raw).key_id
    if len(hex_id) != 8 or any(c not in "0123456789abcdefABCDEF" for c in hex_id) or int(hex_id, 16) != expected:
        raise NoteError(f"signer key for {name!r}: key id is {hex_id!r}, computed {expected:08x}")
    return name, private_key


# --- notes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoteSignature:
    """One signature line, not verified: key name, key id, and the bytes after the id."""

    name: str
    key_id: int
    signature: bytes

    def line(self) -> str:
        """The line as it appears in a note, newline included."""
        return f"{_DASH}{self.name} {_b64(self.key_id.to_bytes(4, 'big') + self.signature)}\n"


@dataclass(frozen=True)
class Note:
    """A note split into its text and signature lines. NOT verified: see ``open_note``."""

    body: bytes
    signatures: tuple[NoteSignature, ...]

    def to_bytes(self) -> bytes:
        """The note text, blank line and signature lines, byte for byte."""
        return self.body + b"\n" + "".join(s.line() for s in self.signatures).encode()


@dataclass(frozen=True)
class VerifiedSignature:
    """A signature line checked against a trusted key; ``timestamp`` is set for cosignatures."""

    verifier: NoteVerifier
    timestamp: int | None = None


class OpenedNote(NamedTuple):
    """The verified text of a note, and every signature on it by a known key."""

    body: bytes
    signatures: tuple[VerifiedSignature, ...]


def _check_text(data: bytes, what: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NoteError(f"{what} is not UTF-8: invalid byte {data[exc.start]:#04x} at offset {exc.start}") from None
    bad = next((i for i, c in enumerate(text) if c < " " and c != "\n"), None)
    if bad is not None:
        raise NoteError(f"{what} has control character U+{ord(text[bad]):04X} at character {bad}; only newline allowed")
    return text


def parse_unverified_note(data: bytes) -> Note:
    """Split a signed note into text and signature lines, checking only the format.

    Raises ``NoteError`` for a malformed note. Verifies nothing: trust the result only
    after ``open_note``.
    """
    if len(data) > MAX_NOTE_BYTES:
        raise NoteError(f"note is {len(data)} bytes, expected at most {MAX_NOTE_BYTES}")
    _check_text(data, "note")
    split = data.rfind(b"\n\n")
    if split < 0:
        raise NoteError("note has no blank line before its signatures; expected text, blank line, signature lines")
    body, block = data[: split + 1], data[split + 2 :]
    if not block or not block.endswith(b"\n"):
        raise NoteError(f"note signature block must be non-empty and end in a newline, found {block[-40:]!r}")
    lines = block[:-1].decode("utf-8").split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"note has {len(lines)} signature lines, expected at most {MAX_SIGNATURES}")
    signatures = []
    for number, line in enumerate(lines, 1):
        name, _, sig64 = line.removeprefix(_DASH).partition(" ")
        raw = _unb64(sig64)
        if not line.startswith(_DASH) or not is_valid_key_name(name) or raw is None or len(raw) < 5:
            raise NoteError(
                f"note signature line {number} is malformed: expected '\u2014 <name> <base64(key id || sig)>', "
                f"found {line[:120]!r}"
            )
        signatures.append(NoteSignature(name, int.from_bytes(raw[:4], "big"), raw[4:]))
    return Note(body, tuple(signatures))


def open_note(data: bytes, verifiers: Iterable[NoteVerifier]) -> OpenedNote:
    """Parse a note and verify its signatures against the trusted ``verifiers``.

    Lines whose (name, key id) match no verifier are ignored. Returns the body and the
    verified signatures (one per key, in note order). Raises ``NoteError`` if malformed,
    ``NoteSignatureError`` if a known key's signature is bad or no known key signed.
    """
    note = parse_unverified_note(data)
    known: dict[tuple[str, int], set[NoteVerifier]] = {}
    trusted = list(verifiers)
    for v in trusted:
        known.setdefault((v.name, v.key_id), set()).add(v)
    verified: dict[NoteVerifier, VerifiedSignature] = {}
    for sig in note.signatures:
        candidates = known.get((sig.name, sig.key_id), set())
        if len(candidates) > 1:
            raise NoteError(f"ambiguous trusted keys: {len(candidates)} keys named {sig.name}+{sig.key_id:08x}")
        for v in candidates:
            timestamp = v.check(note.body, sig.signature)
            verified.setdefault(v, VerifiedSignature(v, timestamp))
    if not verified:
        expected = ", ".join(f"{v.name}+{v.key_id:08x}" for v in trusted) or "(no trusted keys given)"
        found = ", ".join(f"{s.name}+{s.key_id:08x}" for s in note.signatures)
        raise NoteSignatureError(f"note is not signed by a trusted key: expected one of {expected}; found {found}")
    return OpenedNote(note.body, tuple(verified.values()))


# --- signing ----------------------------------------------------------------------------


def _signer_parts(private_key: Signer, public_raw: bytes | None) -> tuple[Callable[[bytes], bytes], bytes]:
    if isinstance(private_key, Ed25519PrivateKey):
        return private_key.sign, private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    if public_raw is None:
        raise NoteError("a signer callable needs public_raw= (its 32-byte Ed25519 public key) to compute the key id")
    return private_key, public_raw


def _check_body(body: bytes) -> None:
    _check_text(body, "note text")
    if not body.endswith(b"\n"):
        raise NoteError(f"note text must end in a newline, found {body[-40:]!r}")
    if len(body) > MAX_NOTE_BYTES:
        raise NoteError(f"note text is {len(body)} bytes, expected at most {MAX_NOTE_BYTES}")


def signature_line(body: bytes, name: str, private_key: Signer, *, public_raw: bytes | None = None) -> str:
    """The Ed25519 (type 0x01) signature line ``— <name> <base64>\\n`` over ``body``."""
    _check_body(body)
    sign, pub = _signer_parts(private_key, public_raw)
    verifier = NoteVerifier(name, ALG_ED25519, pub)
    return NoteSignature(name, verifier.key_id, sign(body)).line()


def sign_note(body: bytes, name: str, private_key: Signer, *, public_raw: bytes | None = None) -> bytes:
    """``body`` + blank line + one Ed25519 signature line by key ``name``.

    ``private_key`` is an ``Ed25519PrivateKey`` or a callable signing a message (then pass
    ``public_raw``). Ed25519 is deterministic: the same body and key give the same bytes.
    """
    return body + b"\n" + signature_line(body, name, private_key, public_raw=public_raw).encode()


def cosignature_message(body: bytes, timestamp: int) -> bytes:
    """``cosignature/v1\\ntime <timestamp>\\n`` followed by the checkpoint body."""
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise NoteError(f"cosignature timestamp {timestamp} out of range, expected 0..2^63-1")
    return b"cosignature/v1\ntime %d\n" % timestamp + body


def cosign(body: bytes, name: str, private_key: Signer, timestamp: int, *, public_raw: bytes | None = None) -> str:
    """A cosignature/v1 line (type 0x04) over a checkpoint ``body`` at POSIX time ``timestamp``.

    The line's payload is ``key id (4) || timestamp (8, big-endian) || Ed25519 signature (64)``.
    """
    _check_body(body)
    sign, pub = _signer_parts(private_key, public_raw)
    verifier = NoteVerifier(name, ALG_COSIGNATURE_V1, pub)
    signature = sign(cosignature_message(body, timestamp))
    return NoteSignature(name, verifier.key_id, timestamp.to_bytes(8, "big") + signature).line()


def add_signature_lines(data: bytes, lines: Iterable[str]) -> bytes:
    """Append signature lines (e.g. cosignatures) to a signed note.

    A new line replaces an existing one by the same (name, key id). Checks the format of
    the note and of each line, not the signatures.
    """
    note = parse_unverified_note(data)
    block = "".join(lines)
    if not block:
        return note.to_bytes()
    added = parse_unverified_note(b"x\n\n" + block.encode()).signatures
    replaced = {(s.name, s.key_id) for s in added}
    kept = tuple(s for s in note.signatures if (s.name, s.key_id) not in replaced)
    combined = Note(note.body, kept + added)
    if len(combined.signatures) > MAX_SIGNATURES:
        raise NoteError(f"note would have {len(combined.signatures)} signatures, expected at most {MAX_SIGNATURES}")
    return combined.to_bytes()
