"""Signed notes and keys: golang.org/x/mod/sumdb/note known answers, cosignatures, tampering."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody.errors import NoteError, NoteSignatureError
from custody.log.note import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    MAX_NOTE_BYTES,
    NoteVerifier,
    add_signature_lines,
    cosign,
    cosignature_message,
    cosigner_key,
    open_note,
    parse_signer_key,
    parse_unverified_note,
    parse_verifier_key,
    sign_note,
    signature_line,
    signer_key,
    verifier_key,
)


@pytest.fixture(scope="module")
def go(vector: Callable[[str], Any]) -> dict[str, Any]:
    return vector("sumdb_note.json")  # type: ignore[no-any-return]


def public_raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes_raw()


# --- keys -------------------------------------------------------------------------------


def test_go_verifier_key_parses_and_prints_back(go: dict[str, Any]) -> None:
    peter = parse_verifier_key(go["peter_vkey"])
    assert (peter.name, peter.alg, peter.key_id) == ("PeterNeumann", ALG_ED25519, 0xC74F20A3)
    assert peter.key_text() == go["peter_vkey"]
    assert verifier_key("PeterNeumann", peter.public_raw) == go["peter_vkey"]


def test_go_signer_key_parses_and_prints_back(go: dict[str, Any]) -> None:
    name, key = parse_signer_key(go["peter_skey"])
    assert name == "PeterNeumann"
    assert verifier_key(name, public_raw(key)) == go["peter_vkey"]
    assert signer_key(name, key) == go["peter_skey"]


def test_every_mangling_of_a_verifier_key_is_refused(go: dict[str, Any]) -> None:
    # As golang.org/x/mod TestNewVerifier: every proper substring and every byte bump.
    vkey = go["peter_vkey"]
    accepted = []
    n = len(vkey)
    manglings = [vkey[i:j] for i in range(n + 1) for j in range(i + 1, n + 1) if (i, j) != (0, n)]
    manglings += [vkey[:i] + chr(ord(vkey[i]) + 1) + vkey[i + 1 :] for i in range(len(vkey))]
    for text in manglings:
        try:
            parse_verifier_key(text)
        except NoteError:
            continue
        accepted.append(text)
    assert accepted == []
    for text in go["bad_vkeys"].values():
        with pytest.raises(NoteError):
            parse_verifier_key(text)


def test_cosigner_and_ed25519_keys_published_by_transparency_dev(go: dict[str, Any]) -> None:
    for text, expected in go["cosigner_vkeys"].items():
        key = parse_verifier_key(text)
        assert (key.name, key.alg) == (expected["name"], expected["alg"])
        assert key.key_text() == text


def test_key_ids_depend_on_the_signature_type(make_key: Callable[[str], Ed25519PrivateKey]) -> None:
    pub = public_raw(make_key("witness"))
    plain = parse_verifier_key(verifier_key("w.example", pub))
    cosigner = parse_verifier_key(cosigner_key("w.example", pub))
    assert (plain.alg, cosigner.alg) == (ALG_ED25519, ALG_COSIGNATURE_V1)
    assert plain.key_id != cosigner.key_id


@pytest.mark.parametrize("name", ["", "a b", "a+b", "a\u00a0b", "a\u2003b", "a\nb", "a\x01b"])
def test_invalid_key_names_are_refused(name: str, make_key: Callable[[str], Ed25519PrivateKey]) -> None:
    with pytest.raises(NoteError):
        verifier_key(name, public_raw(make_key("k")))


# --- opening Go's notes -----------------------------------------------------------------


def test_signing_reproduces_go_sign_byte_for_byte(go: dict[str, Any]) -> None:
    name, key = parse_signer_key(go["peter_skey"])
    assert sign_note(go["text"].encode(), name, key) == go["signed_by_peter"].encode()


def test_open_with_one_known_key_ignores_the_other(go: dict[str, Any]) -> None:
    peter = parse_verifier_key(go["peter_vkey"])
    body, sigs = open_note(go["signed_by_both"].encode(), [peter])
    assert body == go["text"].encode()
    assert [s.verifier for s in sigs] == [peter]


def test_open_with_both_keys_verifies_both(go: dict[str, Any]) -> None:
    keys = [parse_verifier_key(go["peter_vkey"]), parse_verifier_key(go["enoch_vkey"])]
    _, sigs = open_note(go["signed_by_both"].encode(), keys)
    assert [s.verifier.name for s in sigs] == ["PeterNeumann", "EnochRoot"]


def test_a_note_signed_by_no_known_key_is_refused(go: dict[str, Any]) -> None:
    with pytest.raises(NoteSignatureError, match="not signed by a trusted key.*PeterNeumann\\+c74f20a3"):
        open_note(go["signed_by_both"].encode(), [])
    with pytest.raises(NoteSignatureError, match="expected one of EnochRoot"):
        open_note(go["signed_by_peter"].encode(), [parse_verifier_key(go["enoch_vkey"])])


def test_garbled_sig_by_a_known_key_rejects_the_whole_note(go: dict[str, Any]) -> None:
    peter = parse_verifier_key(go["peter_vkey"])
    with pytest.raises(NoteSignatureError, match="signature by PeterNeumann\\+c74f20a3"):
        open_note(go["bad_signature_by_known_key"].encode(), [peter])


def test_duplicate_and_bad_lines_by_unknown_keys_are_ignored(go: dict[str, Any]) -> None:
    enoch = go["enoch_sig_line"]
    msg = go["text"] + "\n" + go["peter_sig_line"] * 2 + enoch * 2 + enoch[:60] + "ABCD" + enoch[60:]
    _, sigs = open_note(msg.encode(), [parse_verifier_key(go["peter_vkey"])])
    assert len(sigs) == 1


def test_malformed_notes_from_go_are_refused(go: dict[str, Any]) -> None:
    peter = parse_verifier_key(go["peter_vkey"])
    cases = {name: text.encode() for name, text in go["malformed_notes"].items()}
    cases |= {name: bytes.fromhex(x) for name, x in go["malformed_note_bytes_hex"].items()}
    for name, data in cases.items():
        with pytest.raises(NoteError) as exc:
            open_note(data, [peter])
        assert not isinstance(exc.value, NoteSignatureError), name


def test_other_malformations(go: dict[str, Any]) -> None:
    peter = parse_verifier_key(go["peter_vkey"])
    text, sig = go["text"], go["peter_sig_line"]
    bad = {
        "hyphen-instead-of-em-dash": text + "\n" + "-" + sig[1:],
        "no-space-after-dash": text + "\n" + sig.replace("\u2014 ", "\u2014", 1),
        "non-canonical-base64": text + "\n" + sig.replace("AM=\n", "AN=\n"),
        "signature-shorter-than-key-id": text + "\n\u2014 PeterNeumann AAAA\n",
        "empty-signature-line": text + "\n" + sig + "\n",
        "crlf-line-ending": text + "\n" + sig.replace("\n", "\r\n"),
    }
    for msg in bad.values():
        with pytest.raises(NoteError):
            open_note(msg.encode(), [peter])
    with pytest.raises(NoteError, match="at most"):
        open_note(b"a" * MAX_NOTE_BYTES + b"\n\n" + sig.encode(), [peter])


def test_parse_unverified_note_round_trips(go: dict[str, Any]) -> None:
    note = parse_unverified_note(go["signed_by_both"].encode())
    assert [(s.name, s.key_id) for s in note.signatures] == [("PeterNeumann", 0xC74F20A3), ("EnochRoot", 0xAF0CFE78)]
    assert note.to_bytes() == go["signed_by_both"].encode()


# --- signing ----------------------------------------------------------------------------


def test_sign_and_open_with_a_callable_signer(make_key: Callable[[str], Ed25519PrivateKey]) -> None:
    key = make_key("hsm")
    body = b"some text\nover two lines\n"
    with pytest.raises(NoteError, match="public_raw"):
        sign_note(body, "hsm.example", key.sign)
    note = sign_note(body, "hsm.example", key.sign, public_raw=public_raw(key))
    assert note == sign_note(body, "hsm.example", key)
    opened = open_note(note, [parse_verifier_key(verifier_key("hsm.example", public_raw(key)))])
    assert opened.body == body


@pytest.mark.parametrize("body", [b"no final newline", b"control \x07 char\n", b"\xff\n", b""])
def test_signing_refuses_bodies_that_could_not_be_opened(
    body: bytes, make_key: Callable[[str], Ed25519PrivateKey]
) -> None:
    with pytest.raises(NoteError):
        sign_note(body, "log.example", make_key("log"))


# --- cosignatures -----------------------------------------------------------------------

BODY = b"example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"


def test_cosignature_message_is_the_spec_layout() -> None:
    assert cosignature_message(BODY, 1679315147) == (
        b"cosignature/v1\ntime 1679315147\n"
        b"example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    )
    for bad in (-1, 2**63):
        with pytest.raises(NoteError):
            cosignature_message(BODY, bad)


def test_published_cosignature_payload_layout(go: dict[str, Any]) -> None:
    note = parse_unverified_note(BODY + f"\n\u2014 w.example {go['cosignature_payload_b64']}\n".encode())
    sig = note.signatures[0]
    assert f"{sig.key_id:08x}" == go["cosignature_payload_key_id"]
    assert int.from_bytes(sig.signature[:8], "big") == go["cosignature_payload_timestamp"]
    assert len(sig.signature) == 8 + 64


def test_cosign_then_verify(make_key: Callable[[str], Ed25519PrivateKey]) -> None:
    log, witness = make_key("log"), make_key("witness")
    note = sign_note(BODY, "example.com/behind-the-sofa", log)
    line = cosign(BODY, "witness.example/w1", witness, 1679315147)
    raw = base64.b64decode(line.split(" ")[2])
    assert int.from_bytes(raw[4:12], "big") == 1679315147 and len(raw) == 4 + 8 + 64
    cosigned = add_signature_lines(note, [line])
    cosigner = parse_verifier_key(cosigner_key("witness.example/w1", public_raw(witness)))
    _, sigs = open_note(cosigned, [cosigner])
    assert sigs[0].timestamp == 1679315147 and sigs[0].verifier == cosigner


def test_cosignature_tampers(make_key: Callable[[str], Ed25519PrivateKey]) -> None:
    witness = make_key("witness")
    cosigner = parse_verifier_key(cosigner_key("witness.example/w1", public_raw(witness)))
    line = cosign(BODY, "witness.example/w1", witness, 1679315147)
    raw = bytearray(base64.b64decode(line.split(" ")[2]))
    raw[11] ^= 1  # bit-flip-in-timestamp
    flipped = f"\u2014 witness.example/w1 {base64.b64encode(bytes(raw)).decode()}\n"
    with pytest.raises(NoteSignatureError):
        open_note(BODY + b"\n" + flipped.encode(), [cosigner])
    # A plain Ed25519 verifier for the same key and name does not accept a cosignature.
    plain = NoteVerifier("witness.example/w1", ALG_ED25519, public_raw(witness))
    with pytest.raises(NoteSignatureError):
        open_note(BODY + b"\n" + line.encode(), [plain])
    # wrong-body: the same cosignature on another checkpoint.
    other = BODY.replace(b"20852163", b"20852164")
    with pytest.raises(NoteSignatureError):
        open_note(other + b"\n" + line.encode(), [cosigner])


def test_add_signature_lines_replaces_the_same_key(make_key: Callable[[str], Ed25519PrivateKey]) -> None:
    log, witness = make_key("log"), make_key("witness")
    note = sign_note(BODY, "log.example", log)
    first = add_signature_lines(note, [cosign(BODY, "w.example", witness, 1)])
    second = add_signature_lines(first, [cosign(BODY, "w.example", witness, 2)])
    assert len(parse_unverified_note(second).signatures) == 2
    assert add_signature_lines(note, []) == note
    assert signature_line(BODY, "log.example", log) in note.decode()
