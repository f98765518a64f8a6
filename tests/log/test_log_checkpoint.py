"""Checkpoints: known answers (Go's tree note, a real sum.golang.org head, our own), tampering."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody.errors import CheckpointError, LogError, NoteError, NoteSignatureError
from custody.log.checkpoint import Checkpoint, open_checkpoint, parse_checkpoint
from custody.log.merkle import leaf_hash
from custody.log.note import (
    add_signature_lines,
    cosign,
    parse_signer_key,
    parse_verifier_key,
    sign_note,
)


@pytest.fixture(scope="module")
def cps(vector: Callable[[str], Any]) -> dict[str, Any]:
    return vector("checkpoints.json")  # type: ignore[no-any-return]


def test_go_tree_note_body_parses_and_prints_back(cps: dict[str, Any]) -> None:
    body = cps["go-sum-tree-body"].encode()
    cp = parse_checkpoint(body)
    assert cp == Checkpoint("go.sum database tree", cps["go-sum-tree-size"], leaf_hash(b"hello world"))
    assert cp.body() == body


@pytest.mark.parametrize("name", ["hex-size", "bad-root-base64"])
def test_go_bad_tree_bodies_are_refused(cps: dict[str, Any], name: str) -> None:
    with pytest.raises(CheckpointError):
        parse_checkpoint(cps["go-sum-tree-bad-bodies"][name].encode())


def test_a_real_sum_golang_org_checkpoint_verifies(cps: dict[str, Any]) -> None:
    key = parse_verifier_key(cps["sum-golang-org-vkey"])
    verified = open_checkpoint(cps["sum-golang-org-note"].encode(), key, origin=cps["sum-golang-org-origin"])
    assert verified.checkpoint.size == cps["sum-golang-org-size"]
    assert verified.signatures[0].verifier == key and verified.cosignatures == ()


def test_wrong_origin_is_refused(cps: dict[str, Any]) -> None:
    key = parse_verifier_key(cps["sum-golang-org-vkey"])
    # By default the origin must be the log key's name, which sum.golang.org's is not.
    with pytest.raises(CheckpointError, match="origin 'go.sum database tree', expected 'sum.golang.org'"):
        open_checkpoint(cps["sum-golang-org-note"].encode(), key)


def test_our_checkpoint_vectors_are_reproduced_by_signing_again(cps: dict[str, Any]) -> None:
    origin, key = parse_signer_key(cps["custody-log-skey"])
    note = cps["custody-checkpoint-8"].encode()
    body = note[: note.rindex(b"\n\n") + 1]
    assert sign_note(body, origin, key) == note
    witness = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(cps["custody-witness-seed-hex"]))
    line = cosign(body, "witness.example/w1", witness, cps["custody-cosignature-timestamp"])
    assert add_signature_lines(note, [line]) == cps["custody-checkpoint-8-cosigned"].encode()


def test_cosigned_checkpoint_meets_a_quorum(cps: dict[str, Any]) -> None:
    log, witness = parse_verifier_key(cps["custody-log-vkey"]), parse_verifier_key(cps["custody-witness-vkey"])
    note = cps["custody-checkpoint-8-cosigned"].encode()
    verified = open_checkpoint(note, log, cosigners=[witness], min_cosignatures=1)
    assert verified.checkpoint.origin == cps["custody-origin"] and verified.checkpoint.size == 8
    assert [s.timestamp for s in verified.cosignatures] == [cps["custody-cosignature-timestamp"]]
    with pytest.raises(CheckpointError, match="has 0 valid cosignatures, expected at least 1"):
        open_checkpoint(cps["custody-checkpoint-8"].encode(), log, cosigners=[witness], min_cosignatures=1)


def test_a_checkpoint_signed_only_by_a_cosigner_is_refused(cps: dict[str, Any]) -> None:
    log, witness = parse_verifier_key(cps["custody-log-vkey"]), parse_verifier_key(cps["custody-witness-vkey"])
    note = cps["custody-checkpoint-8-cosigned"].encode()
    only_witness = note[: note.index("\u2014".encode())] + note[note.rindex("\u2014".encode()) :]
    with pytest.raises(NoteSignatureError, match="not signed by the log key"):
        open_checkpoint(only_witness, log, cosigners=[witness])


def tampered_notes(note: bytes) -> dict[str, bytes]:
    body_end = note.index(b"\n\n")
    sig_start = note.rindex(b" ") + 1
    raw = bytearray(base64.b64decode(note[sig_start:-1]))
    raw[10] ^= 0x01
    return {
        "bit-flip-in-sig": note[:sig_start] + base64.b64encode(bytes(raw)) + b"\n",
        "bit-flip-in-root": note.replace(b"XcnaeacGWamtVZy3", b"XcnaeacGWamtVZy2"),
        "wrong-size": note.replace(b"\n8\n", b"\n9\n", 1),
        "size-with-leading-zero": note.replace(b"\n8\n", b"\n08\n", 1),
        "extra-line": note[:body_end] + b"\nextension\n" + note[body_end + 1 :],
        "empty-extension-line": note[:body_end] + b"\n\n" + note[body_end + 1 :],
        "truncated-tail": note[:-5],
        "missing-final-newline": note[:-1],
        "no-signatures": note[: body_end + 2],
        "renamed-signer": note.replace("\u2014 nanchang".encode(), "\u2014 nanjing".encode()),
    }


@pytest.mark.parametrize(
    "case",
    [
        "bit-flip-in-sig",
        "bit-flip-in-root",
        "wrong-size",
        "size-with-leading-zero",
        "extra-line",
        "empty-extension-line",
        "truncated-tail",
        "missing-final-newline",
        "no-signatures",
        "renamed-signer",
    ],
)
def test_tampered_checkpoints_are_refused(cps: dict[str, Any], case: str) -> None:
    log = parse_verifier_key(cps["custody-log-vkey"])
    note = tampered_notes(cps["custody-checkpoint-8"].encode())[case]
    with pytest.raises((NoteError, CheckpointError)):
        open_checkpoint(note, log)


def test_a_checkpoint_by_another_key_is_refused(
    cps: dict[str, Any], make_key: Callable[[str], Ed25519PrivateKey]
) -> None:
    log = parse_verifier_key(cps["custody-log-vkey"])
    forged = sign_note(Checkpoint(log.name, 8, b"\x00" * 32).body(), log.name, make_key("attacker"))
    with pytest.raises(NoteSignatureError, match=f"expected one of {log.name}\\+{log.key_id:08x}"):
        open_checkpoint(forged, log)


def test_every_single_bit_flip_of_a_signed_checkpoint_is_refused(cps: dict[str, Any]) -> None:
    log, witness = parse_verifier_key(cps["custody-log-vkey"]), parse_verifier_key(cps["custody-witness-vkey"])
    note = cps["custody-checkpoint-8-cosigned"].encode()
    accepted = []
    for bit in range(len(note) * 8):
        mutated = bytearray(note)
        mutated[bit // 8] ^= 1 << (bit % 8)
        try:
            open_checkpoint(bytes(mutated), log, cosigners=[witness], min_cosignatures=1)
        except LogError:
            continue
        accepted.append(bit)
    assert accepted == []


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("two-lines", b"origin\n5\n"),
        ("empty-origin", b"\n5\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n"),
        ("negative-size", b"o\n-5\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n"),
        ("plus-size", b"o\n+5\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n"),
        ("unicode-digit-size", "o\n\u0665\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n".encode()),
        ("size-above-2^64", b"o\n18446744073709551616\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n"),
        ("root-31-bytes", b"o\n5\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQw==\n"),
        ("root-non-canonical-base64", b"o\n5\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyh=\n"),
        ("root-without-padding", b"o\n5\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg\n"),
        ("no-final-newline", b"o\n5\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg="),
    ],
)
def test_malformed_bodies_are_refused(name: str, body: bytes) -> None:
    with pytest.raises(CheckpointError):
        parse_checkpoint(body)


def test_checkpoint_fields_are_validated_on_construction() -> None:
    root = b"\x00" * 32
    for args in (("", 1, root), ("o\nx", 1, root), ("o", -1, root), ("o", 2**64, root), ("o", 1, root[:31])):
        with pytest.raises(CheckpointError):
            Checkpoint(*args)
    with pytest.raises(CheckpointError):
        Checkpoint("o", 1, root, ("",))
    assert Checkpoint("o", 0, root).body() == b"o\n0\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
    cp = Checkpoint("o", 3, root, ("ext one", "ext two"))
    assert parse_checkpoint(cp.body()) == cp
