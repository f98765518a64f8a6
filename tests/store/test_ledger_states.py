"""Custody states are snapshots of what the log determines: a restarted writer rebuilds them exactly."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from store import custody_rules, simulation
from store.ledger import Ledger
from store.models import AlertRecord, ItemHead, Setting


def _stored_states(instance: Any) -> dict[str, str]:
    import json

    with instance.db.session() as s:
        return {i: json.loads(t) for i, t in s.execute(select(ItemHead.item, ItemHead.state)
                                                     .where(ItemHead.state.is_not(None)))}


@pytest.fixture
def exam(make_instance: Any) -> Any:
    """The tiny exam, set up when the simulation's exam is set up."""
    from tests.factories import prepare_sample_exam

    instance = make_instance(now=simulation.SETUP_AT)
    prepare_sample_exam(instance, setup_at=simulation.SETUP_AT, labels_at=simulation.LABELS_AT)
    return instance


def test_restarts_between_snapshots_judge_and_track_exactly_as_one_straight_run(
        exam: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from custody.sample import sample_plan
    from store.verification import VerifyOptions, verify_instance

    tiny_exam = exam

    monkeypatch.setattr(custody_rules, "SNAPSHOT_SECONDS", 1e9)
    monkeypatch.setattr(custody_rules, "SNAPSHOT_LEAVES", 10**9)
    plan = sample_plan("tiny")
    clock = {"now": simulation.LABELS_AT}
    ledger = Ledger(tiny_exam, clock=lambda: clock["now"])
    ledger.record_labels(plan.exam)
    sim = simulation.ExamSimulation(tiny_exam, plan, simulation.register_stations(tiny_exam, plan,
                                                                                  simulation.STATIONS_AT))
    sim.build()
    batches = list(sim.batches(40))
    assert len(batches) > 8
    for n, (arrival, batch) in enumerate(batches):
        clock["now"] = arrival
        if n % 3 == 2:  # a restarted server: a new ledger that must rebuild its tracker from the database
            ledger = Ledger(tiny_exam, clock=lambda: clock["now"])
        if n == len(batches) // 2:
            ledger.flush_states()
            with tiny_exam.db.session() as s:
                assert int(s.get(Setting, custody_rules.STATE_SIZE).value) == ledger.size()
        ledger.submit(batch)

    with tiny_exam.db.session() as s:
        assert s.scalar(select(AlertRecord.id).limit(1)) is not None  # the tiny exam plants violations
    # the writer's states, a fresh reader's (snapshot + replayed tail) and the stored snapshot after a flush agree
    live = ledger.item_states(plan.exam)
    assert live and Ledger(tiny_exam).item_states(plan.exam) == live
    assert _stored_states(tiny_exam) != live  # the snapshot is behind: the tail was never stored
    ledger.close()
    assert _stored_states(tiny_exam) == live
    # and every stored alert is what a straight replay of the whole log gives (the nightly check's rule replay)
    outcome = verify_instance(tiny_exam, VerifyOptions(full=True, workers=0, sign=False))
    assert outcome.ok, [f.code for f in outcome.findings]


def test_two_writers_catch_up_on_each_others_handovers_and_agree_with_a_straight_replay(
        exam: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two writer processes (two ledgers on one database) take turns: each replays only the
    other's handovers since its own last batch, not everything since the snapshot."""
    from custody.sample import sample_plan
    from store.verification import VerifyOptions, verify_instance

    monkeypatch.setattr(custody_rules, "SNAPSHOT_SECONDS", 1e9)
    monkeypatch.setattr(custody_rules, "SNAPSHOT_LEAVES", 10**9)
    builds: list[int] = []
    load_tracker = custody_rules.load_tracker

    def counting_load_tracker(session: Any, exam_code: str, size: int) -> Any:
        builds.append(size)
        return load_tracker(session, exam_code, size)

    monkeypatch.setattr(custody_rules, "load_tracker", counting_load_tracker)
    plan = sample_plan("tiny")
    clock = {"now": simulation.LABELS_AT}
    writers = [Ledger(exam, clock=lambda: clock["now"]) for _ in range(2)]
    writers[0].record_labels(plan.exam)
    sim = simulation.ExamSimulation(exam, plan, simulation.register_stations(exam, plan, simulation.STATIONS_AT))
    sim.build()
    batches = list(sim.batches(40))
    assert len(batches) > 8
    *first, (last_arrival, last) = batches
    for n, (arrival, batch) in enumerate(first):
        clock["now"] = arrival
        writers[n % 2].submit(batch)
    assert len(builds) == 2  # each writer built its tracker once; after that it caught up

    caught: list[int] = []
    catch_up = custody_rules.catch_up

    def counting_catch_up(session: Any, cached: Any, exam_code: str, size: int) -> bool:
        caught.append(size)
        return catch_up(session, cached, exam_code, size)

    monkeypatch.setattr(custody_rules, "catch_up", counting_catch_up)
    from store.investigation import record_backup_order

    # a third writer logs a backup order, which changes more than states: the next batch rebuilds
    record_backup_order(exam, plan.subjects[0].code, [plan.units[0].code], reason="test", ordered_by="test",
                        at=clock["now"])
    clock["now"] = last_arrival
    writers[1].submit(last)
    assert len(caught) == 1 and len(builds) == 3

    live = writers[1].item_states(plan.exam)
    assert live and writers[0].item_states(plan.exam) == live == Ledger(exam).item_states(plan.exam)
    outcome = verify_instance(exam, VerifyOptions(full=True, workers=0, sign=False))
    assert outcome.ok, [f.code for f in outcome.findings]


def _label_alerts(instance: Any) -> list[tuple[int, str]]:
    with instance.db.session() as s:
        return [(i, item) for i, item in s.execute(select(AlertRecord.leaf_idx, AlertRecord.item)
                                                   .where(AlertRecord.code == "label_mismatch")
                                                   .order_by(AlertRecord.leaf_idx))]


@pytest.mark.parametrize("restart", [False, True], ids=["same-writer", "restarted-writer"])
def test_a_reissued_label_is_the_reference_from_its_label_leaf_on(tiny_exam: Any, restart: bool,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """An item's label is the one its latest label leaf names, as of each scan: scans before a
    reissue are judged against the old label, after it against the new one, by the running
    writer, by a rebuilt one, and by the nightly check's replay (in full, and incremental from a
    state saved before the reissue, in two processes, or from a state that lacks the labels)."""
    from datetime import UTC, datetime, timedelta

    from custody.events import Action
    from store.issuance import issue_item_labels
    from store.verification import VerifyOptions, verify_instance
    from tests.store.ledger_helpers import Desk

    t = datetime(2017, 6, 12, 2, 0, tzinfo=UTC)
    clock = {"now": t}
    ledger = Ledger(tiny_exam, clock=lambda: clock["now"])
    ledger.record_labels("zk2017")
    desk = Desk(tiny_exam, "3601", t - timedelta(days=10))
    item, other = sorted(i for i, r in desk.items.items() if r.parent_box is None)[:2]
    old, other_old = desk.label(item), desk.label(other)
    first = ledger.submit([desk.event(item, Action.RECEIVE, t, frm="36-YS", to="3601")])
    assert first[0]["status"] == "accepted" and _label_alerts(tiny_exam) == []

    # the labels were damaged: the institute signs new ones and logs them
    clock["now"] = t + timedelta(minutes=5)
    assert issue_item_labels(tiny_exam, "zk2017", clock["now"], reissue=True, item_ids=[item, other]) == 2
    if restart:
        ledger = Ledger(tiny_exam, clock=lambda: clock["now"])
    assert ledger.record_labels("zk2017") == 2
    assert verify_instance(tiny_exam, VerifyOptions(full=True, workers=0)).ok  # saves a state
    desk = Desk(tiny_exam, "3601", t - timedelta(days=10))  # with the new label texts
    desk.seq = 100  # the same station: its event ids go on
    assert desk.label(item) != old and desk.label(other) != other_old

    # the new labels are the reference now; a superseded one is flagged, even on an item's first scan
    scans = [desk.event(item, Action.STORE, t + timedelta(minutes=6), frm="3601", to="3601"),
             desk.event(item, Action.TAKE_OUT, t + timedelta(minutes=7), frm="3601", to="3601", label=old),
             desk.event(other, Action.RECEIVE, t + timedelta(minutes=7), frm="36-YS", to="3601", label=other_old)]
    clock["now"] = t + timedelta(minutes=8)
    results = ledger.submit(scans)
    assert [r["status"] for r in results] == ["accepted"] * 3
    assert _label_alerts(tiny_exam) == [(results[1]["index"], item), (results[2]["index"], other)]
    if restart:  # a state saved by a version that did not keep the labels: they are read from the log
        from store import verification

        load_state = verification._load_state

        def without_labels(*args: Any) -> Any:
            snapshot, findings, mode = load_state(*args)
            assert snapshot is not None and len(snapshot.pop("labels")) == 80  # every label, by item
            return snapshot, findings, mode

        monkeypatch.setattr(verification, "_load_state", without_labels)
    outcome = verify_instance(tiny_exam, VerifyOptions(workers=2, sign=False))
    assert outcome.report["mode"].startswith("incremental")
    assert outcome.ok, [(f.code, f.message) for f in outcome.findings]
    outcome = verify_instance(tiny_exam, VerifyOptions(full=True, workers=0, sign=False))
    assert outcome.ok, [(f.code, f.message) for f in outcome.findings]
    assert Ledger(tiny_exam).item_states("zk2017") == ledger.item_states("zk2017")


@pytest.mark.parametrize("where", ["same-process", "another-process"])
def test_an_item_added_while_the_writer_runs_is_known_from_its_label_on(tiny_exam: Any, where: str) -> None:
    """A bundle added to the plan mid-exam (a reprint) and labelled: its first scan is judged as the
    item it is, not as an item missing from the item table, whichever process logged its label."""
    from datetime import UTC, datetime, timedelta

    from custody.events import Action
    from store.issuance import issue_item_labels
    from store.models import Item
    from tests.store.ledger_helpers import Desk

    t = datetime(2017, 6, 12, 2, 0, tzinfo=UTC)
    clock = {"now": t}
    ledger = Ledger(tiny_exam, clock=lambda: clock["now"])
    ledger.record_labels("zk2017")
    desk = Desk(tiny_exam, "3601", t - timedelta(days=10))
    template = sorted(i for i, r in desk.items.items() if r.parent_box is None)[0]
    assert ledger.submit([desk.event(template, Action.RECEIVE, t, frm="36-YS", to="3601")])[0]["status"] == \
        "accepted"  # the writer holds its tracker now

    row = desk.items[template]
    with tiny_exam.db.write_session() as s:
        s.add(Item(exam="zk2017", item_id=template + "-R", kind=row.kind, subject=row.subject,
                   destination=row.destination, count=row.count, seal=(row.seal or "") + "R", parent_box=None))
    clock["now"] = t + timedelta(minutes=5)
    assert issue_item_labels(tiny_exam, "zk2017", clock["now"], item_ids=[template + "-R"]) == 1
    logger = ledger if where == "same-process" else Ledger(tiny_exam, clock=lambda: clock["now"])
    assert logger.record_labels("zk2017") == 1

    desk = Desk(tiny_exam, "3601", t - timedelta(days=10))
    desk.seq = 100
    clock["now"] = t + timedelta(minutes=7)
    result = ledger.submit([desk.event(template + "-R", Action.RECEIVE, t + timedelta(minutes=6), frm="36-YS",
                                       to="3601")])[0]
    assert result["status"] == "accepted"
    with tiny_exam.db.session() as s:
        codes = set(s.scalars(select(AlertRecord.code).where(AlertRecord.leaf_idx == result["index"])))
    assert "unknown_item" not in codes, codes
    assert ledger.item_states("zk2017")[template + "-R"]["holder"] == "3601"


def test_a_started_ledger_judges_its_first_batch_without_building_the_states(
        tiny_exam: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server builds the custody states when it starts, not while the first station waits."""
    from datetime import UTC, datetime, timedelta

    from tests.store.ledger_helpers import Desk

    t = datetime(2017, 6, 12, 2, 0, tzinfo=UTC)
    Ledger(tiny_exam, clock=lambda: t).record_labels("zk2017")
    builds: list[int] = []
    load_tracker = custody_rules.load_tracker
    monkeypatch.setattr(custody_rules, "load_tracker", lambda *a: builds.append(a[2]) or load_tracker(*a))
    ledger = Ledger(tiny_exam, clock=lambda: t + timedelta(minutes=1))
    ledger.start()
    assert len(builds) == 1
    desk = Desk(tiny_exam, "3601", t - timedelta(days=10))
    assert {r["status"] for r in ledger.submit(desk.receive_events(3, t))} == {"accepted"}
    assert len(builds) == 1


def _simulated(exam: Any) -> tuple[Any, Ledger, list[Any], dict[str, Any]]:
    """The tiny exam's plan, a ledger on a settable clock with the labels logged, and the simulated batches."""
    from custody.sample import sample_plan

    plan = sample_plan("tiny")
    clock = {"now": simulation.LABELS_AT}
    ledger = Ledger(exam, clock=lambda: clock["now"])
    ledger.record_labels(plan.exam)
    sim = simulation.ExamSimulation(exam, plan, simulation.register_stations(exam, plan, simulation.STATIONS_AT))
    sim.build()
    return plan, ledger, list(sim.batches(40)), clock


def test_a_due_snapshot_is_encoded_aside_and_written_current_by_a_later_batch(
        exam: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer hands the states to the encoder when a snapshot is due and writes them with a
    later batch, together with what changed in between: the stored snapshot is the states at
    that batch's end, and a reader rebuilding from it (replaying the tail) agrees with the writer."""
    import threading


    monkeypatch.setattr(custody_rules, "SNAPSHOT_LEAVES", 10**9)
    monkeypatch.setattr(custody_rules, "SNAPSHOT_SECONDS", 0.0)  # due after every batch
    release = threading.Event()
    encode = custody_rules._encode_states

    def held_encoder(states: Any) -> dict[str, str]:
        release.wait(30)  # the encoder is slow: batches go on meanwhile
        return encode(states)

    monkeypatch.setattr(custody_rules, "_encode_states", held_encoder)
    plan, ledger, batches, clock = _simulated(exam)
    assert len(batches) > 6
    for arrival, batch in batches[:3]:  # the first hands the states over; the encoder is still busy after 3
        clock["now"] = arrival
        ledger.submit(batch)
    with exam.db.session() as s:
        assert s.get(Setting, custody_rules.STATE_SIZE) is None  # nothing written while it encodes
    handed_over = ledger._custody.handed
    assert handed_over and ledger._custody.dirty  # changed since: newer than what was handed
    monkeypatch.setattr(custody_rules, "_encode_states", encode)  # the batch's own states encode at once
    release.set()
    ledger._custody.encoding.result(30)
    clock["now"] = batches[3][0]
    ledger.submit(batches[3][1])  # written with this batch: current at its end
    with exam.db.session() as s:
        assert int(s.get(Setting, custody_rules.STATE_SIZE).value) == ledger.size()
    live = ledger.item_states(plan.exam)
    assert _stored_states(exam) == live
    # and the writer goes on from it: the next due snapshot again, a reader rebuilding agrees
    for arrival, batch in batches[4:]:
        clock["now"] = arrival
        ledger.submit(batch)
    assert Ledger(exam).item_states(plan.exam) == ledger.item_states(plan.exam)
    ledger.close()
    assert _stored_states(exam) == ledger.item_states(plan.exam)


def test_a_failed_encoder_leaves_the_snapshot_to_the_writer(exam: Any, monkeypatch: pytest.MonkeyPatch) -> None:

    monkeypatch.setattr(custody_rules, "SNAPSHOT_LEAVES", 10**9)
    monkeypatch.setattr(custody_rules, "SNAPSHOT_SECONDS", 0.0)
    plan, ledger, batches, clock = _simulated(exam)
    clock["now"] = batches[0][0]
    ledger.submit(batches[0][1])
    cached = ledger._custody
    assert cached.encoding is not None
    failed: Any = custody_rules.Future()
    failed.set_exception(RuntimeError("encoder broke"))
    cached.encoding = failed
    clock["now"] = batches[1][0]
    ledger.submit(batches[1][1])
    assert _stored_states(exam) == ledger.item_states(plan.exam)
    ledger.close()


def test_an_alert_belongs_to_the_unit_where_its_scan_was_made(tiny_exam: Any) -> None:
    """A seal found damaged as the city's escorts leave is the city's finding (it is still in the city's
    hands): stored at the sender, seen by its officers, not charged to the county it is heading to."""
    from datetime import UTC, datetime, timedelta

    from custody.events import Action, SealCondition
    from tests.store.ledger_helpers import Desk

    t = datetime(2017, 6, 12, 2, 0, tzinfo=UTC)
    ledger = Ledger(tiny_exam, clock=lambda: t + timedelta(minutes=5))
    ledger.record_labels("zk2017")
    desk = Desk(tiny_exam, "3601", t - timedelta(days=10))
    item = sorted(i for i, r in desk.items.items() if r.parent_box is None)[0]
    results = ledger.submit([
        desk.event(item, Action.RECEIVE, t, frm="36-YS", to="3601"),
        desk.event(item, Action.DEPART, t + timedelta(minutes=1), frm="3601", to="360102",
                   seal_condition=SealCondition.DAMAGED, reason="封条撕裂")])
    assert [r["status"] for r in results] == ["accepted"] * 2
    (seal,) = [a for a in ledger.alerts() if a["code"] == "seal_damaged"]
    assert (seal["index"], seal["unit"]) == (results[1]["index"], "3601")
    assert "在" in seal["message_zh"] and "360102" not in seal["message"]
    assert [a["code"] for a in ledger.alerts(units={"360102"})] == []
