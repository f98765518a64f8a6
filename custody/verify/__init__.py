"""Verification of the custody log: the nightly integrity check and the outside witness.

Pure functions and small state machines over what the storage layer passes in
(leaf bytes, stored nodes, signed notes, the key ring); no I/O, no clock.

- ``findings``: what can be wrong, named (codes, English and Chinese).
- ``leaves``: one leaf on its own: canonical bytes, station signatures, labels.
- ``tree``: recomputing the tree node by node; naming modified, inserted, deleted, moved leaves.
- ``checkpoints``: signed checkpoints, their consistency, checkpoints held outside the database.
- ``replay``: item chains and the custody rules re-run in log order.
- ``receipts``: station receipts against the log.
- ``report``: the signed JSON report and its HTML page.
- ``witness``: the witness's decision to cosign a checkpoint.
"""

from custody.verify.findings import CODES, Finding, Findings
from custody.verify.report import ReportSignatureError, render_html, sign_report, verify_report
from custody.verify.witness import Cosigned, WitnessRefusal, witness_checkpoint

__all__ = ["CODES", "Cosigned", "Finding", "Findings", "ReportSignatureError", "WitnessRefusal", "render_html",
           "sign_report", "verify_report", "witness_checkpoint"]
