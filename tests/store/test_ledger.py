"""The ledger: signed events in, one linear Merkle log out, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import threading
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise
from typing import Any

import pytest
from sqlalchemy import delete, select, text

from custody.events import Action
from custody.log.checkpoint import open_checkpoint
from custody.log.jcs import canonical_json
from custody.log.merkle import leaf_hash, root_from_leaf_hashes, verify_consistency
from custody.log.note import parse_verifier_key
from custody.log.proofs import parse_consistency_proof, parse_tlog_proof, verify_tlog_proof
from store.ledger import Ledger, LedgerClosed
from store.logstore import CheckpointInconsistent, LogRollback
from store.models import LogLeaf
from tests.store.ledger_helpers import Desk, log_leaves

T = datetime(2017, 6, 12, 2, 0, tzinfo=UTC)


@pytest.fixture
def ledger(tiny_exam):
    clock = {"now": T}
    ledger = Ledger(tiny_exam, clock=lambda: clock["now"])
    ledger.clock_state = clock  # type: ignore[attr-defined]
    ledger.record_labels("zk2017")
    return ledger


@pytest.fixture
def desk(tiny_exam):
    return Desk(tiny_exam, "3601", T - timedelta(days=10))


def test_labels_and_keys_are_leaves_and_the_root_recomputes(ledger: Ledger) -> None:
    leaves = log_leaves(ledger)
    types = [json.loads(d)["type"] for d in leaves]
    assert types.count("label") == 80 and types.count("key") == 3
    assert all(canonical_json(json.loads(d)) == d for d in leaves)  # exactly JCS
    checkpoint = open_checkpoint(ledger.latest_checkpoint().encode(), parse_verifier_key(ledger.log_key()))
    assert checkpoint.checkpoint.size == len(leaves)
    assert checkpoint.checkpoint.root_hash == root_from_leaf_hashes(leaf_hash(d) for d in leaves)


def test_accepted_events_get_receipts_that_prove_inclusion(ledger: Ledger, desk: Desk) -> None:
    ledger.clock_state["now"] = T + timedelta(minutes=1)
    submissions = desk.receive_events(5, T)
    results = ledger.submit(submissions)
    assert [r["status"] for r in results] == ["accepted"] * 5
    verifier = parse_verifier_key(ledger.log_key())
    for submission, result in zip(submissions, results, strict=True):
        proof = parse_tlog_proof(result["receipt"])
        leaf = json.loads(proof.extra)
        assert leaf["type"] == "handover" and leaf["event"] == submission["event"]
        assert leaf["kid"] == submission["kid"] and leaf["sig"] == submission["sig"]
        verify_tlog_proof(result["receipt"], leaf_hash(proof.extra), verifier)
        assert proof.index == result["index"]


def test_a_replayed_event_is_one_leaf(ledger: Ledger, desk: Desk) -> None:
    submission = desk.receive_events(1, T)[0]
    first = ledger.submit([submission])[0]
    size = ledger.size()
    again = ledger.submit([submission, submission])
    assert [r["status"] for r in again] == ["duplicate", "duplicate"]
    assert {r["index"] for r in again} == {first["index"]}
    assert ledger.size() == size


def test_item_chains_link_each_items_leaves(ledger: Ledger, desk: Desk) -> None:
    item = "YW-X-K001"
    ledger.submit([desk.event(item, Action.RECEIVE, T, frm="36-YS", to="3601")])
    ledger.submit([desk.event(item, Action.STORE, T + timedelta(minutes=5), frm="3601", to="3601-BMS")])
    history = ledger.item_history("zk2017", item)
    assert [h["leaf"]["type"] for h in history] == ["label", "handover", "handover"]
    assert history[0]["leaf"]["item_prev"] is None
    for prev, cur in pairwise(history):
        assert cur["leaf"]["item_prev"] == prev["leaf_hash"]


@pytest.mark.parametrize("breakage", ["bit-flip-in-sig", "unknown-key", "wrong-station", "unsigned",
                                      "malformed-event", "forged-label"])
def test_bad_submissions_are_refused_and_the_refusal_is_evidence(ledger: Ledger, desk: Desk, breakage: str) -> None:
    submission = desk.receive_events(1, T)[0]
    if breakage == "bit-flip-in-sig":
        sig = bytearray(base64.b64decode(submission["sig"]))
        sig[5] ^= 1
        submission["sig"] = base64.b64encode(bytes(sig)).decode()
    elif breakage == "unknown-key":
        submission["kid"] = "00" * 8
    elif breakage == "wrong-station":
        submission["event"]["station"] = "ST-360102"
    elif breakage == "unsigned":
        del submission["sig"]
    elif breakage == "malformed-event":
        submission["event"]["count"] = "thirty"
    elif breakage == "forged-label":
        submission = desk.event("YW-X-K001", Action.RECEIVE, T, frm="36-YS", to="3601", label="ab" * 32)
    before = ledger.size()
    result = ledger.submit([submission])[0]
    assert result["status"] == "refused" and result["reason"]
    leaves = log_leaves(ledger)[before:]
    refusal = json.loads(leaves[-1])
    assert refusal["type"] == "refusal" and refusal["error"] == result["error"]
    assert not any(json.loads(d)["type"] == "handover" for d in leaves)


@pytest.mark.parametrize("text", ["short\x00by one", "\x1b[2Jcleared", "bell\x07", "c1\x85"])
def test_a_control_character_in_an_events_text_is_refused_and_the_rest_of_the_batch_goes_in(
        ledger: Ledger, desk: Desk, text: str) -> None:
    """A signed event whose note held a NUL was accepted, and on PostgreSQL the alert quoting it failed the
    whole batch (a text column refuses NUL): every event sent with it was lost to a retry loop."""
    bad, good = desk.receive_events(2, T)
    bad["event"]["note"] = text
    signer = desk.signers[desk.code]
    bad["sig"] = base64.b64encode(signer.sign(canonical_json(bad["event"]))).decode()
    results = ledger.submit([bad, good])
    assert [r["status"] for r in results] == ["refused", "accepted"], results
    assert "control character" in results[0]["reason"] + results[0].get("error", "")


def test_a_crash_mid_batch_stores_nothing_and_the_log_still_verifies(ledger: Ledger, desk: Desk,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    size, checkpoint = ledger.size(), ledger.latest_checkpoint()

    def crash(*args, **kwargs):
        raise RuntimeError("power cut")

    monkeypatch.setattr("store.logstore.LogStore.sign_checkpoint", crash)
    with pytest.raises(RuntimeError, match="power cut"):
        ledger.submit(desk.receive_events(10, T))
    monkeypatch.undo()
    assert ledger.size() == size and ledger.latest_checkpoint() == checkpoint
    results = ledger.submit(desk.receive_events(10, T + timedelta(minutes=1)))
    assert all(r["status"] == "accepted" for r in results)
    leaves = log_leaves(ledger)
    cp = open_checkpoint(ledger.latest_checkpoint().encode(), parse_verifier_key(ledger.log_key())).checkpoint
    assert cp.root_hash == root_from_leaf_hashes(leaf_hash(d) for d in leaves)


def test_batches_queued_without_waiting_are_appended_in_the_order_queued(ledger: Ledger, desk: Desk,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    gate = threading.Event()
    append = Ledger._append_pending

    def held(self: Ledger, pending: Any) -> Any:
        gate.wait(10)  # the writer takes the first batch and waits: the others queue up behind it
        return append(self, pending)

    monkeypatch.setattr(Ledger, "_append_pending", held)
    size = ledger.size()
    futures = [ledger.submit_nowait(desk.receive_events(3, T + timedelta(minutes=k))) for k in range(4)]
    assert not any(f.done() for f in futures)
    gate.set()
    results = [r for f in futures for r in f.result(timeout=30)]
    assert [r["status"] for r in results] == ["accepted"] * 12
    indexes = [r["index"] for r in results]
    assert indexes[0] >= size and indexes == list(range(indexes[0], indexes[0] + 12))  # in order, nothing between


def test_closing_appends_what_was_queued_ends_the_writer_and_refuses_more(ledger: Ledger, desk: Desk,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    gate = threading.Event()
    append = Ledger._append_pending

    def held(self: Ledger, pending: Any) -> Any:
        gate.wait(10)
        return append(self, pending)

    monkeypatch.setattr(Ledger, "_append_pending", held)
    size = ledger.size()
    futures = [ledger.submit_nowait(desk.receive_events(2, T + timedelta(minutes=k))) for k in range(3)]
    writer = ledger._writer
    closing = threading.Thread(target=ledger.close)
    closing.start()
    closing.join(0.5)
    assert closing.is_alive()  # close() waits for the writer to append what was queued before it
    with pytest.raises(LedgerClosed):
        ledger.submit_nowait(desk.receive_events(1, T + timedelta(minutes=9)))
    gate.set()
    closing.join(30)
    assert not closing.is_alive() and writer is not None and not writer.is_alive()
    results = [r for f in futures for r in f.result(timeout=0)]
    assert [r["status"] for r in results] == ["accepted"] * 6
    indexes = [r["index"] for r in results]  # after the station keys the first batch logs
    assert size <= indexes[0] and indexes == list(range(indexes[0], indexes[0] + 6)) == list(range(indexes[0],
                                                                                                 ledger.size()))
    with pytest.raises(LedgerClosed, match="send them again"):
        ledger.submit(desk.receive_events(1, T + timedelta(minutes=10)))
    assert ledger.size() == indexes[-1] + 1


def test_consistency_proofs_link_every_pair_of_checkpoints(ledger: Ledger, desk: Desk) -> None:
    for k in range(3):
        ledger.submit(desk.receive_events(3, T + timedelta(minutes=k)))
    verifier = parse_verifier_key(ledger.log_key())
    heads = [open_checkpoint(note.encode(), verifier).checkpoint for _, note in ledger.checkpoints()]
    for old in heads:
        for new in heads:
            if old.size <= new.size:
                proof = parse_consistency_proof(ledger.consistency_proof(old.size, new.size))
                verify_consistency(old.size, new.size, old.root_hash, new.root_hash, proof)


def test_inclusion_proofs_against_the_latest_or_an_earlier_checkpoint_and_clear_refusals(ledger: Ledger,
                                                                                          desk: Desk) -> None:
    from custody.errors import NotFound

    first = ledger.submit(desk.receive_events(2, T))[0]
    early = ledger.size()
    ledger.submit(desk.receive_events(2, T + timedelta(minutes=1)))
    verifier = parse_verifier_key(ledger.log_key())
    digest = bytes.fromhex(first["leaf_hash"])
    latest = verify_tlog_proof(ledger.inclusion_proof(first["index"]), digest, verifier)
    earlier = verify_tlog_proof(ledger.inclusion_proof(first["index"], early), digest, verifier)
    assert latest.checkpoint.checkpoint.size == ledger.size() and earlier.checkpoint.checkpoint.size == early
    assert ledger.inclusion_proof(first["index"], early) == ledger.inclusion_proof(first["index"], early)
    with pytest.raises(NotFound, match="no checkpoint was signed at tree size 3"):
        ledger.inclusion_proof(0, 3)
    with pytest.raises(NotFound, match=f"leaf {ledger.size()} is not in the checkpoint of size {ledger.size()}"):
        ledger.inclusion_proof(ledger.size())


def test_a_proof_is_read_again_on_a_new_connection_when_the_pooled_one_was_dropped(ledger: Ledger,
                                                                                     desk: Desk) -> None:
    """Proofs read immutable rows without pinging the pooled connection first (PostgreSQL): a connection
    the server dropped meanwhile (a restart, an idle timeout) is replaced and the read runs again."""
    from sqlalchemy import text

    if ledger.db.is_sqlite:
        pytest.skip("SQLite has no server to drop a connection")
    first = ledger.submit(desk.receive_events(2, T))[0]
    proof = ledger.inclusion_proof(first["index"])
    with ledger.db.reader.connect() as c:  # the pooled connection the proof used
        pid = c.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    with ledger.db.engine.connect() as admin:
        assert admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
    assert ledger.inclusion_proof(first["index"]) == proof
    with ledger.db.reader.connect() as c:
        assert c.exec_driver_sql("SELECT pg_backend_pid()").scalar() != pid


def test_a_database_restored_from_an_old_backup_is_refused(ledger: Ledger, desk: Desk, tiny_exam) -> None:
    ledger.submit(desk.receive_events(3, T))
    cut = ledger.size()
    ledger.submit(desk.receive_events(3, T + timedelta(minutes=1)))
    # The administrator "restores" the log to an older state: the tail is gone.
    with tiny_exam.db.write_session() as s:
        from store.models import LogCheckpoint, LogHead

        s.execute(delete(LogLeaf).where(LogLeaf.idx >= cut))
        s.execute(delete(LogCheckpoint).where(LogCheckpoint.size > cut))
        head = s.get(LogHead, 1)
        head.size = cut
    with pytest.raises(LogRollback, match="older backup"):
        ledger.submit(desk.receive_events(1, T + timedelta(minutes=2)))


def test_a_witness_copy_replaced_while_the_ledger_runs_is_checked_again(ledger: Ledger, desk: Desk,
                                                                         tiny_exam) -> None:
    """The ledger skips the rollback check while the head and the witness copy are the ones it left;
    a copy replaced behind its back (same head) is checked again at the next batch."""
    from custody.keyring import Role
    from custody.log.checkpoint import Checkpoint
    from custody.log.note import sign_note

    ledger.submit(desk.receive_events(2, T))
    size = ledger.size()
    key = tiny_exam.keys.private_key(Role.LOG_SIGNER, "3601", T)
    # a checkpoint of a different history, as if the instance had signed another root at this size
    other = sign_note(Checkpoint(ledger.origin, size, b"\x07" * 32).body(), ledger.origin, key)
    path = tiny_exam.home / "checkpoint"
    path.with_name("other").write_bytes(other)
    path.with_name("other").replace(path)
    with pytest.raises(LogRollback, match="not an extension"):
        ledger.submit(desk.receive_events(1, T + timedelta(minutes=2)))


def test_the_log_refuses_to_sign_against_an_inconsistent_checkpoint(ledger: Ledger, desk: Desk, tiny_exam) -> None:
    from custody.keyring import Role
    from custody.log.checkpoint import Checkpoint
    from custody.log.note import sign_note
    from store.models import LogCheckpoint

    ledger.submit(desk.receive_events(2, T))
    size = ledger.size()
    # A forged history: someone with the log key signed a different root at this size.
    key = tiny_exam.keys.private_key(Role.LOG_SIGNER, "3601", T)
    fake = sign_note(Checkpoint(ledger.origin, size, b"\x07" * 32).body(), ledger.origin, key)
    with tiny_exam.db.write_session() as s:
        s.get(LogCheckpoint, size).note = fake.decode()
    (tiny_exam.home / "checkpoint").unlink()
    with pytest.raises(CheckpointInconsistent, match=f"size {size}"):
        ledger.submit(desk.receive_events(1, T + timedelta(minutes=3)))


def test_a_replaced_latest_checkpoint_is_checked_again_by_the_writer_that_signed_the_one_before(
        ledger: Ledger, desk: Desk, tiny_exam) -> None:
    """The writer does not check again the signature of the checkpoint it signed itself last; any other
    note in its place (here: the same body, signed by a key that is not the log's) is checked, and refused."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from custody.errors import CustodyError
    from custody.log.note import parse_unverified_note, sign_note
    from store.models import LogCheckpoint

    ledger.submit(desk.receive_events(2, T))
    size = ledger.size()
    genuine = ledger.latest_checkpoint().encode()
    forged = sign_note(parse_unverified_note(genuine).body, ledger.origin, Ed25519PrivateKey.generate())
    with tiny_exam.db.write_session() as s:
        s.get(LogCheckpoint, size).note = forged.decode()
    with pytest.raises(CustodyError, match="signature|sign"):
        ledger.submit(desk.receive_events(1, T + timedelta(minutes=3)))
    assert ledger.size() == size  # nothing appended
    with tiny_exam.db.write_session() as s:
        s.get(LogCheckpoint, size).note = genuine.decode()
    assert ledger.submit(desk.receive_events(1, T + timedelta(minutes=4)))[0]["status"] == "accepted"


@pytest.mark.parametrize("logged_by", ["nobody yet", "another writer"])
def test_a_key_revoked_by_another_process_is_refused_by_a_running_ledger(ledger: Ledger, desk: Desk,
                                                                           tiny_exam, logged_by: str) -> None:
    """`custody keys revoke` runs in its own process while the server runs: the server's writer must not
    go on accepting events the stolen key signs after the revocation (whether or not another writer
    has logged the revocation meanwhile)."""
    ledger.clock_state["now"] = T + timedelta(minutes=10)
    assert ledger.submit(desk.receive_events(1, T))[0]["status"] == "accepted"  # the ledger holds its keys now
    revoked_at = T + timedelta(minutes=2)
    tiny_exam.keys.revoke(desk.signers[desk.code].kid.hex(), revoked_at, "laptop stolen")  # not via this ledger
    if logged_by == "another writer":
        assert Ledger(tiny_exam, clock=lambda: T + timedelta(minutes=10)).record_labels("zk2017") == 0
    before, after = desk.receive_events(2, revoked_at - timedelta(seconds=1))
    results = ledger.submit([before, after])
    assert results[0]["status"] == "accepted"  # signed while the key was good
    assert results[1]["status"] == "refused" and "revoked" in results[1]["reason"], results[1]
    with ledger.db.session() as s:
        types = [json.loads(d)["type"] for (d,) in s.execute(select(LogLeaf.data).order_by(LogLeaf.idx))]
    # the revocation is in the log before the refusal it explains
    assert types[-3:] == ["revocation", "handover", "refusal"]


def test_a_log_key_rotated_by_another_process_signs_the_next_checkpoint(ledger: Ledger, desk: Desk,
                                                                          tiny_exam) -> None:
    """The running writer keeps its log key between batches, but not past a rotation made elsewhere."""
    from custody.errors import NoteSignatureError
    from custody.keyring import Role

    ledger.clock_state["now"] = T + timedelta(minutes=10)
    assert ledger.submit(desk.receive_events(1, T))[0]["status"] == "accepted"
    old_key = ledger.log_key()
    tiny_exam.keys.rotate(Role.LOG_SIGNER, "3601", T + timedelta(minutes=11))  # `custody keys rotate`
    ledger.clock_state["now"] = T + timedelta(minutes=12)
    result = ledger.submit(desk.receive_events(1, T + timedelta(minutes=1)))[0]
    assert result["status"] == "accepted"
    new_key = ledger.log_key()
    assert new_key != old_key
    verify_tlog_proof(result["receipt"], bytes.fromhex(result["leaf_hash"]), parse_verifier_key(new_key))
    with pytest.raises(NoteSignatureError):
        verify_tlog_proof(result["receipt"], bytes.fromhex(result["leaf_hash"]), parse_verifier_key(old_key))


def test_a_rotated_key_s_end_enters_the_log_once(ledger: Ledger, desk: Desk, tiny_exam) -> None:
    """A rotation ends the old key in the registry; the next batch logs that end (a ``retirement`` leaf) with
    the new key, so the nightly verification need not trust the registry for it. Logged once."""
    from custody.keyring import Role

    ledger.clock_state["now"] = T + timedelta(minutes=10)
    old = tiny_exam.keys.current(Role.LABEL_ISSUER, "3601", T + timedelta(minutes=10))
    new = tiny_exam.keys.rotate(Role.LABEL_ISSUER, "3601", T + timedelta(minutes=11))
    ledger.clock_state["now"] = T + timedelta(minutes=12)
    assert ledger.submit(desk.receive_events(1, T))[0]["status"] == "accepted"
    assert ledger.submit(desk.receive_events(1, T + timedelta(minutes=1)))[0]["status"] == "accepted"
    with ledger.db.session() as s:
        leaves = [json.loads(d) for (d,) in s.execute(select(LogLeaf.data).order_by(LogLeaf.idx))]
    [retired] = [leaf for leaf in leaves if leaf["type"] == "retirement"]
    assert retired["kid"] == old.kid and retired["valid_until"] == "2017-06-12T02:11:00Z"
    assert [leaf["kid"] for leaf in leaves if leaf["type"] == "key"][-1] == new.kid_hex
    types = [leaf["type"] for leaf in leaves]
    assert types.index("retirement") < types.index("handover")  # the registry's facts open the batch


def test_a_serving_process_freezes_its_start_up_objects_out_of_the_collector() -> None:
    # process-wide settings: checked in a fresh interpreter, not in the test run's own
    import subprocess
    import sys

    script = ("import gc; from store.ledger import settle_collector, GC_YOUNG; settle_collector(); "
              "print(gc.get_freeze_count() > 1000, gc.get_threshold()[0] == GC_YOUNG, gc.isenabled())")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split() == ["True", "True", "True"]


def test_leaves_stored_by_the_drivers_own_sql_read_back_as_the_orm_would_store_them(db_url: str) -> None:
    from sqlalchemy import insert

    from store.db import Database
    from store.logstore import LogStore, NewLeaf

    when = datetime(2017, 6, 7, 8, 30, 15, 123456, tzinfo=timezone(timedelta(hours=8)))
    db = Database(db_url)
    db.migrate()
    data = canonical_json({"type": "note"})
    with db.write_session() as s:
        LogStore(s).append([NewLeaf(data, leaf_hash(data), "note", "P-1", "ST-1/e1", "ST-1", when)])
        s.execute(insert(LogLeaf).values(idx=99, data=b"x", hash=b"h" * 32, type="x", received_at=when))
    with db.session() as s:
        rows = s.scalars(select(LogLeaf).order_by(LogLeaf.idx)).all()
        assert [r.received_at for r in rows] == [when, when]
        assert (rows[0].data, rows[0].hash, rows[0].item, rows[0].event_key, rows[0].station) == (
            data, leaf_hash(data), "P-1", "ST-1/e1", "ST-1")
        raw = s.execute(text("SELECT received_at FROM log_leaves ORDER BY idx")).scalars().all()
        assert raw[0] == raw[1]  # the same stored form as the ORM's
    db.dispose()
