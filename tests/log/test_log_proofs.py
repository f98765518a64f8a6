"""Proof texts: c2sp.org/tlog-proof@v1 and consistency proofs, known answers and tampering."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from custody.errors import InclusionProofError, LogError, TlogProofError
from custody.log.merkle import leaf_hash
from custody.log.note import parse_verifier_key
from custody.log.proofs import (
    TLOG_PROOF_HEADER,
    format_consistency_proof,
    format_tlog_proof,
    format_tlog_proofs,
    parse_consistency_proof,
    parse_tlog_proof,
    verify_tlog_proof,
)


@pytest.fixture(scope="module")
def proof_vector(vector: Callable[[str], Any], reference_tree: dict[str, Any]) -> dict[str, Any]:
    cps = vector("checkpoints.json")
    return {
        "text": vector("leaf5-size8.tlog-proof").decode(),
        "hashes": [bytes.fromhex(x) for x in reference_tree["inclusion_proofs"][2]["proof"]],
        "leaf_hash": leaf_hash(reference_tree["leaves"][5]),
        "note": cps["custody-checkpoint-8-cosigned"].encode(),
        "log": parse_verifier_key(cps["custody-log-vkey"]),
        "witness": parse_verifier_key(cps["custody-witness-vkey"]),
    }


def test_tlog_proof_vector_layout(proof_vector: dict[str, Any]) -> None:
    lines = proof_vector["text"].split("\n")
    assert lines[:3] == [TLOG_PROOF_HEADER, "extra Y3VzdG9keQ==", "index 5"]
    assert lines[3:6] == [
        "vBoGQ7EuTS18d5GPROD095qDi2z57FtcKD4fTYhZnms=",  # transparency-dev testdata/inclusion/2/happy-path.json
        "yoVOoSjtBQtBs1/8G4e46yveRh6eO1WW7Oa51ZdaCuA=",
        "037kGJdt2VdTwcc4Yrk5j6Kiz5tP8P3+izDNlSCWFLc=",
    ]
    assert lines[6] == "" and proof_vector["text"].endswith(proof_vector["note"].decode())


def test_tlog_proof_vector_formats_parses_and_verifies(proof_vector: dict[str, Any]) -> None:
    text = format_tlog_proof(5, proof_vector["hashes"], proof_vector["note"], extra=b"custody")
    assert text == proof_vector["text"]
    parsed = parse_tlog_proof(text)
    assert (parsed.index, list(parsed.hashes), parsed.checkpoint_note, parsed.extra) == (
        5,
        proof_vector["hashes"],
        proof_vector["note"],
        b"custody",
    )
    verified = verify_tlog_proof(
        text, proof_vector["leaf_hash"], proof_vector["log"], cosigners=[proof_vector["witness"]], min_cosignatures=1
    )
    assert verified.index == 5 and verified.checkpoint.checkpoint.size == 8 and verified.extra == b"custody"


def test_without_extra_there_is_no_extra_line(proof_vector: dict[str, Any]) -> None:
    text = format_tlog_proof(5, proof_vector["hashes"], proof_vector["note"])
    assert text.startswith(f"{TLOG_PROOF_HEADER}\nindex 5\n")
    assert parse_tlog_proof(text).extra is None
    assert parse_tlog_proof(format_tlog_proof(0, [], proof_vector["note"], extra=b"")).extra == b""


def test_a_batch_of_receipts_is_each_receipt_formatted_alone(proof_vector: dict[str, Any]) -> None:
    hashes = proof_vector["hashes"]
    batch = [(5, hashes, b"custody"), (4, [hashes[0][::-1], *hashes[1:]], None), (0, [], b""), (5, hashes, None)]
    assert format_tlog_proofs(batch, proof_vector["note"]) == [
        format_tlog_proof(index, path, proof_vector["note"], extra=extra) for index, path, extra in batch]
    assert format_tlog_proofs(batch[:1], proof_vector["note"]) == [proof_vector["text"]]
    with pytest.raises(TlogProofError, match="proof hash 1 has 5 bytes"):  # checked even after a good path
        format_tlog_proofs([(5, hashes, None), (6, [hashes[0], b"short"], None)], proof_vector["note"])


def tampered_proofs(text: str) -> dict[str, str]:
    lines = text.split("\n")
    return {
        "wrong-header": text.replace("tlog-proof@v1", "tlog-proof@v2", 1),
        "index-with-leading-zero": text.replace("index 5", "index 05"),
        "wrong-index": text.replace("index 5", "index 4"),
        "negative-index": text.replace("index 5", "index -5"),
        "bit-flip-in-proof": text.replace("vBoGQ7Eu", "vBoGQ7Ev"),
        "truncated-tail": "\n".join(lines[:5] + lines[6:]),
        "extra-hash-line": "\n".join(lines[:6] + [lines[5]] + lines[6:]),
        "swapped-hash-lines": "\n".join(lines[:3] + [lines[4], lines[3]] + lines[5:]),
        "no-empty-line": "\n".join(lines[:6] + lines[7:]),
        "not-base64-hash": text.replace("vBoGQ7Eu", "vBoGQ7E!"),
        "short-hash": text.replace("TS18d5GPROD095qDi2z57FtcKD4fTYhZnms=", "TS18d5GPROD095qDi2z57FtcKD4fTYhZ"),
        "no-index": "\n".join(lines[:2] + lines[3:]),
        "extra-not-base64": text.replace("extra Y3VzdG9keQ==", "extra custody!"),
        "tampered-checkpoint": text.replace("\n8\n", "\n7\n"),
        "no-checkpoint": "\n".join(lines[:7]),
    }


@pytest.mark.parametrize(
    "case",
    [
        "wrong-header",
        "index-with-leading-zero",
        "wrong-index",
        "negative-index",
        "bit-flip-in-proof",
        "truncated-tail",
        "extra-hash-line",
        "swapped-hash-lines",
        "no-empty-line",
        "not-base64-hash",
        "short-hash",
        "no-index",
        "extra-not-base64",
        "tampered-checkpoint",
        "no-checkpoint",
    ],
)
def test_tampered_tlog_proofs_are_refused(proof_vector: dict[str, Any], case: str) -> None:
    text = tampered_proofs(proof_vector["text"])[case]
    with pytest.raises(LogError):
        verify_tlog_proof(text, proof_vector["leaf_hash"], proof_vector["log"])


def test_a_proof_for_another_leaf_is_refused(proof_vector: dict[str, Any], reference_tree: dict[str, Any]) -> None:
    with pytest.raises(InclusionProofError, match="leaf 5"):
        verify_tlog_proof(proof_vector["text"], leaf_hash(reference_tree["leaves"][4]), proof_vector["log"])


def test_format_refuses_what_it_could_not_parse_back(proof_vector: dict[str, Any]) -> None:
    with pytest.raises(TlogProofError):
        format_tlog_proof(-1, [], proof_vector["note"])
    with pytest.raises(TlogProofError):
        format_tlog_proof(0, [b"short"], proof_vector["note"])
    with pytest.raises(TlogProofError):
        format_tlog_proof(0, [], proof_vector["note"][:-1])


# --- consistency proof texts ------------------------------------------------------------


def test_consistency_proof_vector(vector: Callable[[str], Any], reference_tree: dict[str, Any]) -> None:
    text = vector("consistency-6-8.txt").decode()
    expected = [bytes.fromhex(x) for x in reference_tree["consistency_proofs"][2]["proof"]]
    assert parse_consistency_proof(text) == expected
    assert format_consistency_proof(expected) == text
    assert text.count("\n") == 3 and text.endswith("=\n")


def test_empty_consistency_proof_is_empty_text() -> None:
    assert format_consistency_proof([]) == ""
    assert parse_consistency_proof("") == [] == parse_consistency_proof(b"")


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("no-final-newline", "DrxdNDf74tsVi58Sah0RjjCBgQMdCpSfje3t68VY72o="),
        ("blank-line", "DrxdNDf74tsVi58Sah0RjjCBgQMdCpSfje3t68VY72o=\n\n"),
        ("not-base64", "DrxdNDf74tsVi58Sah0RjjCBgQMdCpSfje3t68VY72!=\n"),
        ("33-bytes", "DrxdNDf74tsVi58Sah0RjjCBgQMdCpSfje3t68VY72oA\n"),
        ("non-canonical", "DrxdNDf74tsVi58Sah0RjjCBgQMdCpSfje3t68VY72p=\n"),
        ("trailing-space", "DrxdNDf74tsVi58Sah0RjjCBgQMdCpSfje3t68VY72o= \n"),
    ],
)
def test_malformed_consistency_proof_texts_are_refused(name: str, text: str) -> None:
    with pytest.raises(TlogProofError):
        parse_consistency_proof(text)
