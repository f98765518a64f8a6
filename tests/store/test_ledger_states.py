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
