"""A clean log verifies, in full and incrementally, with and without the process pool."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from custody.verify.report import report_digest, verify_report
from store.models import KeyRecord
from store.verification import latest_report, log_verifiers
from tests.verify.conftest import simulate


def test_a_clean_log_verifies_in_full_and_the_report_is_signed_and_kept(simulated) -> None:
    outcome = simulated.verify(full=True, receipts=simulated.receipts)
    assert outcome.ok, outcome.report["findings"][:5]
    report = outcome.report
    assert report["mode"] == "full" and report["verified_from"] == 0
    assert report["verified_to"] == report["log_size"] > 500
    assert all(c["ok"] for c in report["checks"]) and len(report["checks"]) >= 8
    names = {c["name"] for c in report["checks"]}
    assert {"custody rules re-run", "station receipts", "item chains", "tree", "checkpoints"} <= names
    with simulated.instance.db.session() as s:
        registry = list(s.scalars(select(KeyRecord)))
    verify_report(report, log_verifiers(simulated.instance.origin, registry))
    assert json.loads(outcome.json_path.read_text(encoding="utf-8"))["signature"] == report["signature"]
    html = outcome.html_path.read_text(encoding="utf-8")
    assert html.index("核验通过") < html.index("Verified")  # Chinese first, English beside it
    latest = latest_report(simulated.instance)
    assert latest is not None and latest["ok"] and latest["signature_valid"]
    assert latest["report_path"] == str(outcome.json_path)


def test_incremental_runs_resume_from_the_last_verified_checkpoint(make_simulated) -> None:
    sim = make_simulated(limit=240)
    first = sim.verify(workers=2)
    assert first.ok and first.report["mode"] == "full"
    size = first.report["verified_to"]
    simulate(sim.instance, sim.plan, sim.receipts, skip=240)  # the rest of the exam arrives
    second = sim.verify(workers=2, receipts=sim.receipts)
    assert second.ok, second.report["findings"][:5]
    assert second.report["mode"] == "incremental" and second.report["verified_from"] == size
    assert second.report["verified_to"] > size + 200
    assert second.report["previous_report"] == report_digest(first.report)
    third = sim.verify(full=True)
    assert third.ok and third.report["mode"] == "full"


def test_latest_report_is_none_before_any_run(make_instance) -> None:
    assert latest_report(make_instance()) is None


def test_receipts_prove_the_stations_events_are_in_the_log(simulated) -> None:
    from tests.verify import tampering
    from tests.verify.conftest import handover_indexes, named

    files = sorted(simulated.receipts.iterdir())
    assert len(files) > 400
    k = handover_indexes(simulated.instance)[-3]
    tampering.modify_leaf(simulated.instance, k)
    outcome = simulated.verify(full=True, receipts=simulated.receipts)
    bad = named(outcome, "receipt_invalid")
    [mine] = [f for f in bad if f.get("index") == k and f.get("expected")]
    assert mine["expected"] != mine["found"]  # the station was given other bytes than the log now holds
    # receipts whose checkpoints came after the change no longer match the tree either; earlier ones still do
    assert 1 < len(bad) < len(files) // 2
    files[0].write_text("not a receipt", encoding="utf-8")
    outcome = simulated.verify(full=True, receipts=simulated.receipts)
    assert any("is not a tlog-proof" in f["message"] for f in named(outcome, "receipt_invalid"))


def test_an_unreadable_receipt_or_receipts_folder_is_named_and_the_run_goes_on(
        simulated, monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    from pathlib import Path

    from tests.verify.conftest import named

    blocked = sorted(simulated.receipts.iterdir())[3]
    read_bytes, listdir = Path.read_bytes, os.listdir

    def denied(path: Path) -> bytes:  # what chmod 000 does for any user but root
        if path == blocked:
            raise PermissionError(13, "Permission denied", str(path))
        return read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", denied)
    outcome = simulated.verify(receipts=simulated.receipts)
    assert [f["message"] for f in named(outcome, "receipt_invalid")] == \
        [f"receipt {blocked.name} cannot be read: Permission denied"]
    assert outcome.json_path is not None and outcome.json_path.exists()  # the run was kept, with its verdict

    def no_listing(path: object = ".") -> list[str]:
        if Path(str(path)) == simulated.receipts:
            raise PermissionError(13, "Permission denied", str(path))
        return listdir(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "listdir", no_listing)
    outcome = simulated.verify(receipts=simulated.receipts)
    [found] = named(outcome, "receipt_invalid")
    assert found["message"] == f"the receipts folder {simulated.receipts} cannot be read: Permission denied"


@pytest.mark.parametrize("full", [True, False])
def test_leaves_appended_while_a_run_reads_the_log_are_no_problem(make_simulated, monkeypatch: pytest.MonkeyPatch,
                                                                  full: bool) -> None:
    """Stations keep posting during the nightly run: what they add after the run read the head is left to the
    next run, not named as inserted leaves, extra nodes, moved item heads or unexplained alerts."""
    import store.verification

    sim = make_simulated(limit=240)
    assert sim.verify().ok
    setup = store.verification._replay_setup

    def appending(*args: Any) -> Any:  # after the head is read, before the leaves are
        simulate(sim.instance, sim.plan, sim.receipts, skip=240)
        return setup(*args)

    monkeypatch.setattr(store.verification, "_replay_setup", appending)
    during = sim.verify(full=full)
    assert during.ok, during.report["findings"][:5]
    monkeypatch.undo()
    after = sim.verify()
    assert after.ok and after.report["verified_from"] == during.report["verified_to"] < after.report["verified_to"]
