"""The log writer in its own process (custody serve): the same log, receipts and refusals as the
writer thread; errors and a killed writer reach the caller, and nothing acknowledged is lost."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select

from custody.events import Action
from custody.log.checkpoint import open_checkpoint
from custody.log.jcs import canonical_json
from custody.log.merkle import leaf_hash, root_from_leaf_hashes
from custody.log.note import parse_verifier_key
from custody.log.proofs import parse_tlog_proof, verify_tlog_proof
from store.ledger import Ledger
from store.logstore import LogRollback
from store.models import LogLeaf
from store.writer_process import WriterStopped
from tests.store.ledger_helpers import EXAM, Desk, log_leaves

T = datetime(2017, 6, 12, 2, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> dict[str, datetime]:
    return {"now": T + timedelta(minutes=30)}


@pytest.fixture
def remote(tiny_exam: Any, clock: dict[str, datetime]) -> Any:
    Ledger(tiny_exam, clock=lambda: T).record_labels(EXAM)
    ledger = Ledger(tiny_exam, clock=lambda: clock["now"], writer_process=True)
    ledger.start()
    yield ledger
    ledger.close()


@pytest.fixture
def desk(tiny_exam: Any) -> Desk:
    return Desk(tiny_exam, "3601", T - timedelta(days=10))


def _verifies(ledger: Ledger) -> None:
    """The latest checkpoint is the root of every stored leaf."""
    leaves = log_leaves(ledger)
    cp = open_checkpoint(ledger.latest_checkpoint().encode(), parse_verifier_key(ledger.log_key())).checkpoint
    assert cp.size == len(leaves) and cp.root_hash == root_from_leaf_hashes(leaf_hash(d) for d in leaves)


def test_the_writer_process_appends_receipts_refusals_and_replays_as_the_thread_does(remote: Ledger,
                                                                                      desk: Desk) -> None:
    good = desk.receive_events(4, T)
    forged = desk.event("YW-X-K001", Action.RECEIVE, T, frm="36-YS", to="3601", label="ab" * 32,
                        note="标签不符\u2028\"第二行\"\\ é")
    size = remote.size()
    results = remote.submit(good + [forged, good[0]])
    assert [r["status"] for r in results] == ["accepted"] * 4 + ["refused", "duplicate"]
    assert results[4]["error"] == "label_not_issued" and results[5]["index"] == results[0]["index"]
    first = results[0]["index"]
    assert first >= size and [r["index"] for r in results[:5]] == list(range(first, first + 5))
    verifier = parse_verifier_key(remote.log_key())
    for submission, result in zip(good, results, strict=False):
        proof = parse_tlog_proof(result["receipt"])
        assert json.loads(proof.extra)["event"] == submission["event"]
        verify_tlog_proof(result["receipt"], bytes.fromhex(result["leaf_hash"]), verifier)
    # the evidence of a refusal is what the station sent, byte for byte (the writer process rebuilds an
    # accepted signature's submission from the signed bytes, not from a copy of the object)
    refusal = json.loads(log_leaves(remote)[results[4]["index"]])
    presented = canonical_json(forged)
    assert refusal["type"] == "refusal" and base64.b64decode(refusal["presented"]) == presented
    assert refusal["presented_sha256"] == hashlib.sha256(presented).hexdigest()
    # the custody rules ran there: the states a fresh reader rebuilds hold the received items
    states = Ledger(remote.instance).item_states(EXAM)
    assert {states[json.loads(log_leaves(remote)[r["index"]])["item"]]["holder"] for r in results[:4]} == {"3601"}
    _verifies(remote)


def test_an_empty_batch_logs_a_revocation_made_since(remote: Ledger, desk: Desk, tiny_exam: Any) -> None:
    """The web's key page revokes a key, then submits an empty batch: the writer process enters the
    revocation in the log at once, without waiting for a station's next batch."""
    remote.submit(desk.receive_events(1, T))  # the desk's key is in the log
    kid = desk.signers[desk.code].kid.hex()
    tiny_exam.keys.revoke(kid, T + timedelta(hours=1), "desk stolen")
    remote.keyring(refresh=True)  # as the web does after a change to the registry
    assert remote.submit([]) == []
    with tiny_exam.db.session() as s:
        logged = [json.loads(d) for d in s.scalars(select(LogLeaf.data).where(LogLeaf.type == "revocation"))]
    assert [leaf["kid"] for leaf in logged] == [kid]
    assert remote.submit([]) == []  # nothing new: no leaf, no error (the checkpoint at that size stands)
    _verifies(remote)


def test_an_error_in_the_writer_process_reaches_the_caller_and_nothing_is_stored(remote: Ledger, desk: Desk,
                                                                                 tiny_exam: Any) -> None:
    from store.models import LogCheckpoint, LogHead

    remote.submit(desk.receive_events(3, T))
    cut = remote.size()
    remote.submit(desk.receive_events(3, T + timedelta(minutes=1)))
    with tiny_exam.db.write_session() as s:  # restored from an older backup
        s.execute(delete(LogLeaf).where(LogLeaf.idx >= cut))
        s.execute(delete(LogCheckpoint).where(LogCheckpoint.size > cut))
        s.get(LogHead, 1).size = cut
    with pytest.raises(LogRollback, match="older backup"):
        remote.submit(desk.receive_events(1, T + timedelta(minutes=2)))
    assert remote.size() == cut


def test_a_writer_killed_mid_batch_loses_nothing_acknowledged(remote: Ledger, desk: Desk) -> None:
    """Killed while it appends: the caller gets an error (no receipt) or its receipts; sent again, every
    event is in the log once, and the log verifies. A new writer process took over."""
    first_pid = remote._remote.pid
    assert first_pid is not None
    remote.submit(desk.receive_events(2, T))
    batch = desk.receive_events(300, T + timedelta(minutes=1))
    killer = threading.Timer(0.05, os.kill, (first_pid, signal.SIGKILL))
    killer.start()
    try:
        first = remote.submit(batch)
    except WriterStopped as exc:
        assert "send again" in str(exc)
        first = None
    killer.join()
    again = remote.submit(batch)
    assert remote._remote.pid not in (None, first_pid)
    if first is None:
        assert {r["status"] for r in again} <= {"accepted", "duplicate"}
    else:  # the batch was done before the kill
        assert [r["index"] for r in again] == [r["index"] for r in first]
        assert {r["status"] for r in again} == {"duplicate"}
    with remote.db.session() as s:
        keys = s.scalars(select(LogLeaf.event_key).where(LogLeaf.type == "handover")).all()
    assert len(keys) == len(set(keys)) == 302
    _verifies(remote)


def test_a_writer_process_gone_while_idle_is_replaced_at_the_next_batch(remote: Ledger, desk: Desk) -> None:
    pid = remote._remote.pid
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while remote._remote._process.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    results = remote.submit(desk.receive_events(2, T))
    assert [r["status"] for r in results] == ["accepted"] * 2 and remote._remote.pid != pid


def test_a_key_revoked_elsewhere_is_refused_by_the_writer_process(remote: Ledger, desk: Desk,
                                                                  tiny_exam: Any) -> None:
    """The server verified the signature against its copy of the registry; the writer sees the
    revocation in the registry and checks again, as the writer thread does."""
    assert remote.submit(desk.receive_events(1, T))[0]["status"] == "accepted"
    revoked_at = T + timedelta(minutes=2)
    tiny_exam.keys.revoke(desk.signers[desk.code].kid.hex(), revoked_at, "laptop stolen")
    before, after = desk.receive_events(2, revoked_at - timedelta(seconds=1))
    results = remote.submit([before, after])
    assert results[0]["status"] == "accepted"
    assert results[1]["status"] == "refused" and "revoked" in results[1]["reason"]
    # and in every later batch: the server learns from the writer that the registry changed
    later = desk.receive_events(3, revoked_at + timedelta(minutes=1))
    assert [r["status"] for r in remote.submit(later)] == ["refused"] * 3


def test_closing_stores_the_states_the_writer_process_built(remote: Ledger, desk: Desk, tiny_exam: Any) -> None:
    from store import custody_rules
    from store.models import Setting

    remote.submit(desk.receive_events(5, T))
    remote.close()
    with tiny_exam.db.session() as s:
        assert int(s.get(Setting, custody_rules.STATE_SIZE).value) == remote.size()
    assert not remote._remote._process


def test_a_wrong_passphrase_stops_the_start_and_leaves_no_process(tiny_exam: Any) -> None:
    from keys.files import WrongPassphrase
    from store.instance import open_instance

    wrong = open_instance(tiny_exam.home, secret=b"not the passphrase at all", url=tiny_exam.db.url)
    ledger = Ledger(wrong, writer_process=True)
    try:
        with pytest.raises(WrongPassphrase):
            ledger.start()
        assert ledger._remote.pid is None
    finally:
        wrong.close()


def test_the_server_follows_the_states_the_writer_process_builds(remote: Ledger, desk: Desk, tiny_exam: Any,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The dashboard's states come from a tracker in the server that replays only what the writer
    appended since it last looked, past the snapshots the writer stored meanwhile."""
    from store import custody_rules

    scans = desk.receive_events(7, T)  # seven items
    remote.submit(scans[:3])
    assert remote.item_states(EXAM) == Ledger(tiny_exam).item_states(EXAM)
    remote.submit(scans[3:5])
    remote.flush_states()  # the writer stores a snapshot newer than the server's tracker
    remote.submit(scans[5:])
    built: list[Any] = []
    load = custody_rules.load_tracker
    monkeypatch.setattr(custody_rules, "load_tracker", lambda *args: built.append(args) or load(*args))
    states = remote.item_states(EXAM)
    assert not built
    monkeypatch.undo()
    assert states == Ledger(tiny_exam).item_states(EXAM) and len(states) >= 7


def test_a_station_gets_503_and_retry_after_when_the_writer_stopped(tiny_exam: Any) -> None:
    from web import create_app

    app = create_app({"INSTANCE": tiny_exam, "TESTING": True})

    @app.get("/api/v1/_writer_stopped")
    def stopped() -> Any:
        raise WriterStopped("the log writer process ended before it answered; nothing was acknowledged: send again")

    response = app.test_client().get("/api/v1/_writer_stopped", headers={"Accept": "application/json"})
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.get_json()["error"] == "writer_stopped" and "send again" in response.get_json()["message"]


def test_groups_are_handed_over_while_the_writer_process_appends_the_last(remote: Ledger, desk: Desk,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches queued at once reach the writer process two at a time (it appends one while the next is
    prepared and sent); every caller gets its own receipts, in log order, and the log verifies."""
    monkeypatch.setattr("store.ledger.MAX_BATCH", 40)  # a group per batch
    outstanding: list[int] = []
    send = remote._remote.send

    def watched(*args: Any) -> None:
        send(*args)
        outstanding.append(remote._remote._sent)

    remote._remote.send = watched
    batches = [desk.receive_events(40, T + timedelta(minutes=n)) for n in range(8)]
    futures = [remote.submit_nowait(batch) for batch in batches]
    results = [f.result(timeout=60) for f in futures]
    assert max(outstanding) == 2  # pipelined, never more than two with the child
    indexes = [r["index"] for batch in results for r in batch]
    assert {r["status"] for batch in results for r in batch} == {"accepted"}
    assert indexes == sorted(indexes) == list(range(indexes[0], indexes[0] + 320))
    verifier = parse_verifier_key(remote.log_key())
    for batch in results:
        for r in batch:
            verify_tlog_proof(r["receipt"], bytes.fromhex(r["leaf_hash"]), verifier)
    assert remote._remote._sent == 0
    _verifies(remote)


def test_a_writer_killed_with_two_groups_outstanding_fails_both_and_the_next_starts_anew(remote: Ledger,
                                                                                       desk: Desk) -> None:
    """Neither group was acknowledged, so both callers hear so; nothing is left waiting for an answer."""
    writer = remote._remote
    pid = writer.pid
    generation = remote._registry()[1]
    first, second = (remote._verify(desk.receive_events(2, T + timedelta(minutes=n))) for n in range(2))
    os.kill(pid, signal.SIGSTOP)  # both sent before it reads either
    writer.send(generation, T, first)
    writer.send(generation, T, second)
    os.kill(pid, signal.SIGKILL)
    for _ in range(2):
        with pytest.raises(WriterStopped, match="send again"):
            writer.receive()
    assert writer._sent == 0
    results = remote.submit([p.submission for p in first + second])
    assert [r["status"] for r in results] == ["accepted"] * 4 and writer.pid not in (None, pid)
    _verifies(remote)


def test_a_group_sent_before_the_server_heard_of_a_revocation_is_checked_again(remote: Ledger, desk: Desk,
                                                                              tiny_exam: Any) -> None:
    """The server checked both groups against its registry before a key was revoked. The writer process
    learns of the revocation while it appends the first group (it logs the registry fact); the second,
    sent on the server's older registry, is checked again there, not taken on the server's word."""
    writer = remote._remote
    assert remote.submit(desk.receive_events(1, T))[0]["status"] == "accepted"
    revoked_at = T + timedelta(minutes=5)
    first = remote._verify(desk.receive_events(2, revoked_at - timedelta(minutes=1)))
    second = remote._verify(desk.receive_events(2, revoked_at + timedelta(minutes=1)))
    generation = remote._registry()[1]
    assert {p.error for p in first + second} == {None}  # accepted by the server's copy of the registry
    tiny_exam.keys.revoke(desk.signers[desk.code].kid.hex(), revoked_at, "laptop stolen")
    writer.send(generation, T + timedelta(minutes=10), first)
    writer.send(generation, T + timedelta(minutes=10), second)
    results, refreshed = writer.receive()
    assert refreshed and [r["status"] for r in results] == ["accepted"] * 2
    results, _ = writer.receive()
    assert [r["status"] for r in results] == ["refused"] * 2 and all("revoked" in r["reason"] for r in results)
    _verifies(remote)
