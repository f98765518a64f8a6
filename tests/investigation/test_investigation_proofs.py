"""Every event of a JSON report is evidence: exact leaf bytes, leaf hash and a tlog-proof that verifies offline."""

from __future__ import annotations

import json

from custody.errors import InclusionProofError
from custody.log.merkle import leaf_hash
from custody.log.note import parse_verifier_key
from custody.log.proofs import verify_tlog_proof
from store.investigation import investigate
from store.ledger import Ledger
from tests.investigation.conftest import LEAKED, Demo


def test_every_event_in_the_json_report_verifies_offline(demo: Demo) -> None:
    report = investigate(demo.instance, "YW", leaked_item=LEAKED)
    data = json.loads(json.dumps(report.to_json()))  # what an investigator receives
    key = parse_verifier_key(data["log"]["verifier_key"])
    events = data["events"]
    cited = {i for item in data["items"] for i in item["events"]}
    assert cited and cited <= {e["index"] for e in events}
    for event in events:
        leaf = event["leaf"].encode("utf-8")
        digest = leaf_hash(leaf)
        assert digest.hex() == event["leaf_hash"]
        verified = verify_tlog_proof(event["proof"], digest, key)
        assert verified.index == event["index"]
        assert verified.checkpoint.checkpoint.size == data["log"]["tree_size"]
        assert event["proof"].endswith(data["log"]["checkpoint"])
    # a proof does not verify for another leaf
    first, second = events[0], events[1]
    try:
        verify_tlog_proof(first["proof"], bytes.fromhex(second["leaf_hash"]), key)
    except InclusionProofError:
        pass
    else:
        raise AssertionError("a proof verified for the wrong leaf")


def test_batched_proofs_are_the_ledgers_own_proofs(demo: Demo) -> None:
    report = investigate(demo.instance, "YW")
    ledger = Ledger(demo.instance)
    proofs = report.proofs()
    sample = sorted(proofs)[:: max(1, len(proofs) // 12)]
    for index in sample:
        assert proofs[index] == ledger.inclusion_proof(index, report.tree_size)
