"""An investigation report points to the latest checkpoint a witness cosigned, with the consistency proof
from it to the report's own checkpoint: evidence anchored where the institute alone cannot rewrite it."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody.keyring import Role
from custody.log.checkpoint import open_checkpoint
from custody.log.merkle import verify_consistency
from custody.log.note import cosigner_key, parse_verifier_key
from custody.log.proofs import parse_consistency_proof
from custody.verify.witness import witness_checkpoint
from printing.report import render_html, render_pdf
from store import simulation
from store.investigation import investigate
from store.ledger import Ledger
from store.verification import add_cosignature
from tests.factories import prepare_sample_exam


def test_the_report_carries_the_latest_cosigned_checkpoint_and_the_proof_that_its_own_extends_it(
        make_instance: Any) -> None:
    instance = make_instance(now=simulation.SETUP_AT)
    plan = prepare_sample_exam(instance, setup_at=simulation.SETUP_AT, labels_at=simulation.LABELS_AT)
    simulation.run(instance, plan)
    before = investigate(instance, "YW")
    assert before.to_json(proofs=False)["log"]["witnessed"] is None  # no witness yet
    assert "尚无见证方联署的检查点" in render_html(before)

    ledger = Ledger(instance)
    log_key = parse_verifier_key(ledger.log_key())
    checkpoints = ledger.checkpoints()
    (old_size, old_note), (new_size, _) = checkpoints[-4], checkpoints[-1]
    witness = Ed25519PrivateKey.generate()
    instance.keys.register(witness.public_key().public_bytes_raw(), Role.WITNESS, "province.witness",
                           simulation.SETUP_AT)
    cosigned = witness_checkpoint(old_note.encode(), None, [], log_key, name="province.witness", signer=witness,
                                  timestamp=int(datetime(2017, 6, 25, tzinfo=UTC).timestamp()))
    assert add_cosignature(instance, cosigned.note) == old_size

    report = investigate(instance, "YW")
    log = report.to_json(proofs=False)["log"]
    anchor = log["witnessed"]
    assert log["tree_size"] == new_size and anchor["tree_size"] == old_size < new_size
    cosigner = parse_verifier_key(cosigner_key("province.witness", witness.public_key().public_bytes_raw()))
    old = open_checkpoint(anchor["checkpoint"].encode(), log_key, cosigners=[cosigner], min_cosignatures=1)
    new = open_checkpoint(log["checkpoint"].encode(), log_key)
    verify_consistency(old.checkpoint.size, new.checkpoint.size, old.checkpoint.root_hash,
                       new.checkpoint.root_hash, parse_consistency_proof(anchor["consistency"]))
    # the HTML and PDF reports show the anchor too
    page = render_html(report)
    assert f"见证方联署的检查点（树大小 {old_size}）" in page and cosigned.line.split(" ")[1] in page
    pdf = io.BytesIO()
    render_pdf(report, pdf, lang="en")
    assert pdf.getvalue().startswith(b"%PDF")
