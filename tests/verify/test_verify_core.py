"""The pure verification core: tree audit, naming of leaf mismatches, canonical leaves, reports, the witness."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from custody.errors import LeafError, LogError
from custody.log.checkpoint import Checkpoint, open_checkpoint
from custody.log.jcs import canonical_json, loads_leaf
from custody.log.merkle import consistency_proof, integrate, leaf_hash, root_from_leaf_hashes
from custody.log.note import NoteVerifier, cosigner_key, parse_verifier_key, sign_note, verifier_key
from custody.verify.findings import CODES, Finding
from custody.verify.leaves import event_bytes, parse_canonical_leaf
from custody.verify.report import ReportSignatureError, build_report, render_html, sign_report, verify_report
from custody.verify.tree import LeafMismatch, TreeAudit, classify_leaf_mismatches, node_ranges
from custody.verify.witness import WitnessRefusal, witness_checkpoint

ORIGIN = "test.exam/zk2017"


def _hashes(n: int, salt: bytes = b"") -> list[bytes]:
    return [leaf_hash(salt + i.to_bytes(4, "big")) for i in range(n)]


@settings(max_examples=40)
@given(st.integers(0, 300), st.integers(0, 300))
def test_tree_audit_forms_every_stored_node_and_resumes(n: int, more: int) -> None:
    hashes = _hashes(n + more)
    stored = integrate(0, hashes, lambda ids: []).nodes
    audit = TreeAudit()
    for h in hashes[:n]:
        audit.add(h)
    resumed = TreeAudit(n, audit.compact())
    assert resumed.root() == root_from_leaf_hashes(hashes[:n])
    resumed.completed.clear()
    for h in hashes[n:]:
        resumed.add(h)
    assert resumed.root() == root_from_leaf_hashes(hashes)
    formed = {(lv, i): h for lv, i, h in audit.completed + resumed.completed}
    assert formed == stored
    ranges = node_ranges(n, n + more)
    expect = {(lv, i) for lv, i, _ in resumed.completed}
    assert expect == {(lv, i) for lv, a, b in ranges for i in range(a, b + 1)}


def test_leaf_mismatches_are_named() -> None:
    r = _hashes(10)
    new = leaf_hash(b"forged")
    inserted = [LeafMismatch(4, new, r[4])] + [LeafMismatch(i + 1, r[i], r[i + 1]) for i in range(4, 9)]
    assert [(f.code, f.index) for f in classify_leaf_mismatches(inserted)] == [("leaf_inserted", 4)]
    deleted = [LeafMismatch(i, r[i + 1], r[i]) for i in range(3, 9)]
    assert [(f.code, f.index) for f in classify_leaf_mismatches(deleted)] == [("leaf_missing", 3)]
    swapped = [LeafMismatch(2, r[7], r[2]), LeafMismatch(7, r[2], r[7])]
    assert [(f.code, f.index) for f in classify_leaf_mismatches(swapped)] == [("leaf_reordered", 2),
                                                                               ("leaf_reordered", 7)]
    modified = [LeafMismatch(5, new, r[5], "YW-P-K001-01")]
    [f] = classify_leaf_mismatches(modified)
    assert (f.code, f.index, f.item, f.expected, f.found) == ("leaf_hash_mismatch", 5, "YW-P-K001-01", r[5].hex(),
                                                             new.hex())


@pytest.mark.parametrize("obj", [
    {"type": "handover", "n": 30, "note": "1 名考生缺考", "x": None, "l": [True, {"b": 1, "a": "\u2028"}]},
    {"type": "refusal", "f": 1.5}, {"type": "k", "big": 2**53 - 1}, {"type": "e", "s": "😀", "\U0001F600": 1},
    {"type": "ctl", "s": "a\u0001\n\t\"\\"},
])
def test_canonical_leaves_parse_like_the_exact_reader(obj) -> None:
    data = canonical_json(obj)
    assert parse_canonical_leaf(data) == loads_leaf(data) == obj


@pytest.mark.parametrize("data", [b'{"type":"a", "b":1}', b'{"b":1,"type":"a","b":2}', b'{"type":"a","x":1.0}',
                                  b'{"x":1,"type":"a"}'[::-1], b'["type"]'])
def test_non_canonical_leaves_are_refused(data: bytes) -> None:
    with pytest.raises(LeafError):
        parse_canonical_leaf(data)


def test_the_signed_event_is_the_members_bytes() -> None:
    event = {"v": 1, "id": "ST-1", "note": "封装完好 \u2028", "seal": {"number": "FT1", "condition": "intact"}}
    leaf = canonical_json({"type": "handover", "event": event, "item": "X", "item_prev": None, "kid": "00" * 8,
                           "sig": "", "received_at": "2017-06-12T00:00:00Z"})
    assert event_bytes(leaf) == canonical_json(event)


def test_every_finding_code_has_titles_in_both_languages() -> None:
    for code, (en, zh, meaning) in CODES.items():
        assert en and zh and meaning and code == code.lower()
    with pytest.raises(ValueError):
        Finding("no_such_code", "x")


def test_a_report_is_signed_by_the_log_key_and_any_change_breaks_it() -> None:
    key = Ed25519PrivateKey.generate()
    verifier = parse_verifier_key(verifier_key(ORIGIN, key.public_key().public_bytes_raw()))
    finding = Finding("leaf_missing", "leaf 3 is gone", "第 3 条日志被删除", index=3)
    report = build_report(origin=ORIGIN, mode="full", started_at="a", finished_at="b", log_size=9, verified_from=0,
                          verified_to=9, checkpoint=None, findings=[finding], finding_counts={"leaf_missing": 1},
                          checks=[{"name": "tree", "name_zh": "树", "ok": False, "detail": ""}], stats={},
                          previous=None, state_digest=None)
    assert report["ok"] is False
    signed = sign_report(report, key.sign, verifier)
    assert verify_report(json.loads(json.dumps(signed)), [verifier]) == verifier
    with pytest.raises(ReportSignatureError):
        verify_report({**signed, "ok": True}, [verifier])
    with pytest.raises(ReportSignatureError):
        verify_report(report, [verifier])
    page = render_html(signed)
    assert "第 3 条日志被删除" in page and page.index("核验失败") < page.index("FAILED")
    empty = build_report(origin=ORIGIN, mode="full", started_at="", finished_at="", log_size=0, verified_from=0,
                         verified_to=0, checkpoint=None, findings=[], finding_counts={}, checks=[], stats={},
                         previous=None, state_digest=None)
    assert empty["ok"] is False  # no check at all is not a pass


class _Log:
    def __init__(self, key: Ed25519PrivateKey, leaves: list[bytes]):
        self.key, self.hashes = key, [leaf_hash(d) for d in leaves]
        self.nodes = integrate(0, self.hashes, lambda ids: []).nodes

    def note(self, size: int) -> bytes:
        root = root_from_leaf_hashes(self.hashes[:size])
        return sign_note(Checkpoint(ORIGIN, size, root).body(), ORIGIN, self.key)

    def proof(self, old: int, new: int) -> list[bytes]:
        return consistency_proof(old, new, lambda ids: [self.nodes[i] for i in ids])


def test_the_witness_cosigns_extensions_and_refuses_forks_rollbacks_and_forgeries() -> None:
    key, witness = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    log_key = parse_verifier_key(verifier_key(ORIGIN, key.public_key().public_bytes_raw()))
    cosigner = parse_verifier_key(cosigner_key("province", witness.public_key().public_bytes_raw()))
    log = _Log(key, [b"leaf %d" % i for i in range(20)])
    now = int(datetime(2017, 6, 20, tzinfo=UTC).timestamp())
    first = witness_checkpoint(log.note(8), None, [], log_key, name="province", signer=witness, timestamp=now)
    second = witness_checkpoint(log.note(20), first.note, log.proof(8, 20), log_key, name="province",
                                signer=witness, timestamp=now + 60)
    opened = open_checkpoint(second.note, log_key, cosigners=[cosigner], min_cosignatures=1)
    assert opened.checkpoint.size == 20 and opened.cosignatures[0].timestamp == now + 60
    fork = _Log(key, [b"leaf %d" % i for i in range(7)] + [b"rewritten"] + [b"x %d" % i for i in range(15)])
    with pytest.raises(WitnessRefusal, match="FORK"):
        witness_checkpoint(fork.note(22), second.note, fork.proof(20, 22), log_key, name="province",
                           signer=witness, timestamp=now)
    with pytest.raises(WitnessRefusal, match="ROLLBACK") as refused:
        witness_checkpoint(log.note(12), second.note, [], log_key, name="province", signer=witness, timestamp=now)
    assert refused.value.kind == "rollback" and refused.value.message_zh.startswith("日志回滚：日志现为 12 条")
    forger = _Log(Ed25519PrivateKey.generate(), [b"leaf %d" % i for i in range(20)])
    with pytest.raises(WitnessRefusal, match="not signed") as refused:
        witness_checkpoint(forger.note(20), second.note, [], log_key, name="province", signer=witness, timestamp=now)
    assert refused.value.kind == "forged" and "签名" in refused.value.message_zh
    assert isinstance(cosigner, NoteVerifier) and base64


def test_after_a_log_key_rotation_the_witness_opens_the_held_checkpoint_with_the_old_key_and_refuses_a_fork() -> None:
    old, new, witness = (Ed25519PrivateKey.generate() for _ in range(3))
    old_key, new_key = (parse_verifier_key(verifier_key(ORIGIN, k.public_key().public_bytes_raw())) for k in (old, new))
    leaves = [b"leaf %d" % i for i in range(20)]
    now = int(datetime(2017, 6, 20, tzinfo=UTC).timestamp())
    held = witness_checkpoint(_Log(old, leaves).note(8), None, [], old_key, name="province", signer=witness,
                              timestamp=now).note
    rotated = _Log(new, leaves)
    with pytest.raises(LogError):  # the held checkpoint is not the new key's
        witness_checkpoint(rotated.note(20), held, rotated.proof(8, 20), new_key, name="province", signer=witness,
                           timestamp=now)
    cosigned = witness_checkpoint(rotated.note(20), held, rotated.proof(8, 20), new_key, name="province",
                                  signer=witness, timestamp=now, previous_keys=[old_key])
    assert cosigned.previous_size == 8 and cosigned.checkpoint.size == 20
    rewritten = _Log(new, [b"leaf %d" % i for i in range(5)] + [b"rewritten"] + leaves[6:])
    with pytest.raises(WitnessRefusal, match="FORK"):  # a new key does not buy a new past
        witness_checkpoint(rewritten.note(20), held, rewritten.proof(8, 20), new_key, name="province",
                           signer=witness, timestamp=now, previous_keys=[old_key])
    with pytest.raises(WitnessRefusal, match="not signed"):  # the old key signs no new checkpoint
        witness_checkpoint(_Log(old, leaves).note(20), held, rotated.proof(8, 20), new_key, name="province",
                           signer=witness, timestamp=now, previous_keys=[old_key])


def test_box_groups_share_one_tracker_and_a_cross_group_pack_is_a_conflict() -> None:
    from custody.verify.shares import Shares

    links = [("P1", "BOX1"), ("P2", "BOX1"), ("BOX1", "CRATE"), ("P3", "BOX2"), ("BOX2", None), ("K", None)]
    shares = Shares(7, links)
    assert len({shares.of(x) for x in ("P1", "P2", "BOX1", "CRATE")}) == 1
    assert shares.of("P3") == shares.of("BOX2")
    other = next(x for x in ("BOX2", "K") if shares.of(x) != shares.of("P1")) if \
        {shares.of("BOX2"), shares.of("K")} != {shares.of("P1")} else None
    if other is not None:
        assert shares.conflicts("P1", other)
    assert not shares.conflicts("P1", "CRATE") and not shares.conflicts("P1", None)
