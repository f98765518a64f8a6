"""Many writers, one log: 8 processes append 1,000 events each, at once."""

from __future__ import annotations

import json
import multiprocessing
from datetime import UTC, datetime

from sqlalchemy import select

from custody.log.checkpoint import open_checkpoint
from custody.log.merkle import leaf_hash, root_from_leaf_hashes
from custody.log.note import parse_verifier_key
from custody.log.proofs import verify_tlog_proof
from store.ledger import Ledger
from store.models import LogLeaf
from store.plans import load_plan
from store.simulation import register_stations
from tests.factories import TEST_SECRET
from tests.store.ledger_helpers import append_from_process

UNITS = ["3601", "360102", "360103", "K001", "K002", "K001-01", "K001-02", "3601-PJ"]


def test_eight_processes_append_one_linear_log(tiny_exam) -> None:
    with tiny_exam.db.session() as s:
        register_stations(tiny_exam, load_plan(s, "zk2017"), datetime(2017, 6, 1, tzinfo=UTC))
    ledger = Ledger(tiny_exam, clock=lambda: datetime(2017, 6, 12, 1, tzinfo=UTC))
    ledger.record_labels("zk2017")
    base = ledger.size()
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    workers = [context.Process(target=append_from_process,
                               args=(str(tiny_exam.home), tiny_exam.db.url, TEST_SECRET, unit, 1000, 50, out))
               for unit in UNITS]
    for w in workers:
        w.start()
    results = dict(out.get(timeout=300) for _ in workers)
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0
    receipts = [r for unit in UNITS for r in results[unit]]
    assert len(receipts) == 8000 and {r[0] for r in receipts} == {"accepted"}
    indexes = sorted(r[1] for r in receipts)
    assert indexes == list(range(base, base + 8000))  # one linear log, no gap, no fork
    with tiny_exam.db.session() as s:
        leaves = {idx: data for idx, data in s.execute(select(LogLeaf.idx, LogLeaf.data))}
    assert sorted(leaves) == list(range(base + 8000))
    verifier = parse_verifier_key(ledger.log_key())
    for _status, index, digest, receipt in receipts[::97]:
        assert leaf_hash(leaves[index]).hex() == digest
        verify_tlog_proof(receipt, bytes.fromhex(digest), verifier)
    for _, index, digest, _ in receipts:
        assert leaf_hash(leaves[index]).hex() == digest
        assert json.loads(leaves[index])["type"] == "handover"
    head = open_checkpoint(ledger.latest_checkpoint().encode(), verifier).checkpoint
    assert head.size == base + 8000
    assert head.root_hash == root_from_leaf_hashes(leaf_hash(leaves[i]) for i in range(head.size))
