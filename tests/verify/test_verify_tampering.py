"""The mutation suite: one named case per kind of tampering, each detected and named (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from store.logstore import read_witness_copy
from tests.verify import tampering
from tests.verify.conftest import codes, handover_indexes, head, leaf_json, named, set_revoked_at, simulate


def _middle_handover(sim) -> int:
    indexes = handover_indexes(sim.instance)
    return indexes[len(indexes) // 2]


def test_modified_leaf(simulated) -> None:
    assert simulated.verify().ok
    k = _middle_handover(simulated)
    item = leaf_json(simulated.instance, k)["item"]
    tampering.modify_leaf(simulated.instance, k)
    outcome = simulated.verify(full=True)
    assert not outcome.ok
    [found] = [f for f in named(outcome, "leaf_hash_mismatch") if f["index"] == k]
    assert found["item"] == item and found["expected"] != found["found"]
    assert any(f["index"] == k for f in named(outcome, "bad_station_signature"))


def test_a_run_after_a_failed_run_still_names_the_problem(simulated) -> None:
    """The next night's run does not go green by itself: the incremental run only samples older leaves."""
    assert simulated.verify().ok
    k = _middle_handover(simulated)
    tampering.modify_leaf(simulated.instance, k)
    assert [f["index"] for f in named(simulated.verify(full=True), "leaf_hash_mismatch")] == [k]
    again = simulated.verify(sample=0)  # no sampled leaf can happen to find it
    assert not again.ok and again.report["mode"] == "full"
    assert [f["index"] for f in named(again, "leaf_hash_mismatch")] == [k]


def test_leaf_edited_in_sql_as_text(simulated) -> None:
    """SQLite keeps what an UPDATE with replace() gives, TEXT, in the BLOB column: the leaf is named, no crash."""
    if not simulated.instance.db.url.startswith("sqlite"):
        pytest.skip("a PostgreSQL bytea column holds bytes only")
    from sqlalchemy import text

    k = _middle_handover(simulated)
    same = handover_indexes(simulated.instance)[0]
    with simulated.instance.db.write_session() as s:
        s.execute(text("UPDATE log_leaves SET data = replace(data, :old, :new) WHERE idx = :k"),
                  {"old": '"count":', "new": '"count":1', "k": k})
        # the same bytes, only typed TEXT now: nothing changed that a verifier could see
        s.execute(text("UPDATE log_leaves SET data = CAST(data AS TEXT) WHERE idx = :k"), {"k": same})
    outcome = simulated.verify(full=True)
    assert not outcome.ok
    assert [f["index"] for f in named(outcome, "leaf_hash_mismatch")] == [k]


def test_deleted_leaf(simulated) -> None:
    k = _middle_handover(simulated)
    item = leaf_json(simulated.instance, k)["item"]
    from store.models import LogLeaf
    from tests.verify.conftest import delete_rows

    delete_rows(simulated.instance, LogLeaf, LogLeaf.idx == k)
    outcome = simulated.verify(full=True)
    assert not outcome.ok
    assert [f["index"] for f in named(outcome, "leaf_missing")] == [k]
    # the item's chain names the leaf after the hole
    assert any(f["item"] == item for f in named(outcome, "item_chain_broken"))


def test_inserted_leaf(simulated) -> None:
    k = _middle_handover(simulated)
    tampering.insert_leaf(simulated.instance, k)
    outcome = simulated.verify(full=True)
    assert not outcome.ok
    assert [f["index"] for f in named(outcome, "leaf_inserted")] == [k]
    assert "leaf_beyond_head" in codes(outcome)


def test_reordered_leaves(simulated) -> None:
    indexes = handover_indexes(simulated.instance)
    i, j = indexes[10], indexes[40]
    tampering.swap_leaves(simulated.instance, i, j)
    outcome = simulated.verify(full=True)
    assert not outcome.ok
    moved = {f["index"]: f["found"] for f in named(outcome, "leaf_reordered")}
    assert set(moved) == {i, j} and f"leaf {j}" in moved[i] and f"leaf {i}" in moved[j]


def test_truncated_tail(simulated) -> None:
    assert simulated.verify().ok
    size, _ = head(simulated.instance)
    left = tampering.truncate_tail(simulated.instance, 7)
    for full in (False, True):
        outcome = simulated.verify(full=full)
        assert not outcome.ok
        [cut] = named(outcome, "log_truncated")
        assert cut["index"] == left and cut["expected"] == f"{size} leaves"
        assert any(f["size"] == size for f in named(outcome, "checkpoint_beyond_log"))


def test_forged_checkpoint(simulated) -> None:
    size, _ = head(simulated.instance)
    tampering.forge_checkpoint(simulated.instance, size)
    outcome = simulated.verify(full=True)
    assert not outcome.ok
    assert [f["size"] for f in named(outcome, "checkpoint_bad_signature")] == [size]


def test_inconsistent_checkpoint(simulated) -> None:
    sizes = [s for s, _ in __import__("store.ledger", fromlist=["Ledger"]).Ledger(simulated.instance).checkpoints()]
    middle = sizes[len(sizes) // 2]
    tampering.inconsistent_checkpoint(simulated.instance, middle)
    outcome = simulated.verify(full=True)
    assert not outcome.ok
    assert [f["size"] for f in named(outcome, "checkpoint_root_mismatch")] == [middle]
    assert any(f["size"] in (middle, sizes[sizes.index(middle) + 1]) for f in named(outcome, "checkpoint_inconsistent"))


def test_rewritten_history_recomputed_hashes(make_simulated, tmp_path) -> None:
    sim = make_simulated()
    # The province witnesses the log before the rewrite.
    from cli.verifycmd import _Source, witness_once

    witness_home = tmp_path / "province"
    from store.ledger import Ledger

    witness_once(witness_home, _Source(None, None, sim.instance), log_key=Ledger(sim.instance).log_key(),
                 name="province.witness", post=False, secret=b"province-passphrase")
    k = _middle_handover(sim)
    tampering.rewrite_history(sim.instance, k)
    # Self-consistent: nothing inside the database betrays it...
    inside = sim.verify(full=True, witness_homes=())
    assert not inside.ok  # ...but the witness copy in the instance folder does
    assert named(inside, "history_rewritten")
    assert not {"leaf_hash_mismatch", "checkpoint_bad_signature", "checkpoint_root_mismatch"} & codes(inside)
    # An insider who also rewrites the instance folder is still caught by the province's witness.
    (sim.instance.home / "checkpoint").unlink()
    (sim.instance.home / "reports" / "latest.json").unlink()
    from store.verification_models import VerificationRun, VerificationState
    from tests.verify.conftest import delete_rows

    delete_rows(sim.instance, VerificationState)
    delete_rows(sim.instance, VerificationRun)
    outside = sim.verify(full=True, witness_homes=[witness_home])
    assert not outside.ok
    [caught] = named(outside, "history_rewritten")
    assert "witness" in caught["message"]


def test_revoked_key_signature(simulated) -> None:
    k = _middle_handover(simulated)
    leaf = leaf_json(simulated.instance, k)

    at = datetime.fromisoformat(leaf["event"]["station_time"].replace("Z", "+00:00")) - timedelta(minutes=1)
    simulated.instance.keys.revoke(leaf["kid"], at, "station laptop stolen")
    outcome = simulated.verify(full=True)
    assert not outcome.ok
    revoked = {f["index"]: f for f in named(outcome, "revoked_key_signature")}
    assert k in revoked and revoked[k]["item"] == leaf["item"]
    assert all(leaf_json(simulated.instance, i)["kid"] == leaf["kid"] for i in revoked)


def _log_registry_facts(sim) -> None:
    """A batch as the server would append next (here with nothing but the registry facts the log lacks)."""
    from custody.sample import EXAM
    from store.ledger import Ledger

    ledger = Ledger(sim.instance, clock=lambda: datetime.now(UTC))
    try:
        ledger.record_labels(EXAM)
    finally:
        ledger.close()


def _revocations(sim, kid: str) -> list[str]:
    from sqlalchemy import select

    from store.models import LogLeaf

    with sim.instance.db.session() as s:
        rows = s.scalars(select(LogLeaf.data).where(LogLeaf.type == "revocation").order_by(LogLeaf.idx)).all()
    return [leaf["revoked_at"] for leaf in map(json.loads, rows) if leaf["kid"] == kid]


def test_a_key_revoked_again_from_earlier_is_logged_again_and_verifies(simulated) -> None:
    """A revocation moved earlier (the key was lost before anyone noticed) goes into the log as well, so the
    log and the registry agree; what the key signed from the earlier time on is then named."""
    k = _middle_handover(simulated)
    leaf = leaf_json(simulated.instance, k)
    signed = datetime.fromisoformat(leaf["event"]["station_time"].replace("Z", "+00:00"))
    later = max(datetime.fromisoformat(leaf_json(simulated.instance, i)["event"]["station_time"].replace(
        "Z", "+00:00")) for i in handover_indexes(simulated.instance)) + timedelta(hours=1)
    simulated.instance.keys.revoke(leaf["kid"], later, "station laptop stolen")
    _log_registry_facts(simulated)
    assert simulated.verify(full=True).ok  # revoked after everything it signed
    simulated.instance.keys.revoke(leaf["kid"], signed - timedelta(minutes=1), "lost the evening before")
    _log_registry_facts(simulated)
    assert _revocations(simulated, leaf["kid"]) == [
        later.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        (signed - timedelta(minutes=1)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")]
    outcome = simulated.verify(full=True)
    assert "key_registry_mismatch" not in codes(outcome), named(outcome, "key_registry_mismatch")
    assert k in {f["index"] for f in named(outcome, "revoked_key_signature")}
    # the registry changed behind the log's back (no second leaf) is still named
    set_revoked_at(simulated.instance, leaf["kid"], signed - timedelta(hours=2))
    assert "key_registry_mismatch" in codes(simulated.verify(full=True))


def test_a_retired_key_extended_in_the_registry_is_named_and_what_it_signed_after_its_end_too(simulated) -> None:
    """A rotation's end of the old key is in the log (a ``retirement`` leaf), not only in the registry, which the
    verification trusted: an administrator who extended a retired key there (NULL ``valid_until``) made
    what it signed after its end verify. Here the label key is retired as it issued the labels."""
    from sqlalchemy import select, update

    from custody.keyring import Role
    from store.models import KeyRecord, LogLeaf

    assert simulated.verify(full=True).ok
    with simulated.instance.db.session() as s:
        labels = {i: json.loads(d) for i, d in s.execute(select(LogLeaf.idx, LogLeaf.data)
                                                          .where(LogLeaf.type == "label"))}
    label_leaves, [issued] = set(labels), {leaf["issued_at"] for leaf in labels.values()}
    issued_at = datetime.fromisoformat(issued.replace("Z", "+00:00"))
    old = simulated.instance.keys.current(Role.LABEL_ISSUER, "3601", issued_at)
    simulated.instance.keys.rotate(Role.LABEL_ISSUER, "3601", issued_at)  # ended as it signed them
    _log_registry_facts(simulated)
    with simulated.instance.db.session() as s:
        [retirement] = [(i, json.loads(d)) for i, d in s.execute(select(LogLeaf.idx, LogLeaf.data)
                                                                   .where(LogLeaf.type == "retirement"))]
    assert retirement[1]["kid"] == old.kid
    signed_after = simulated.verify(full=True)
    assert not signed_after.ok
    named_labels = {f["index"] for f in signed_after.report["findings"] if f["index"] in label_leaves}
    assert named_labels == label_leaves
    assert "key_registry_mismatch" not in codes(signed_after)
    with simulated.instance.db.write_session() as s:  # the registry edited: the old key never ended
        s.execute(update(KeyRecord).where(KeyRecord.kid == old.kid).values(valid_until=None))
    extended = simulated.verify(full=True)
    assert [f["index"] for f in named(extended, "key_registry_mismatch")] == [retirement[0]]
    assert {f["index"] for f in extended.report["findings"] if f["index"] in label_leaves} == label_leaves


def test_a_log_key_rotation_logs_its_rollover_and_a_registry_that_loses_it_is_named(simulated) -> None:
    """The new log key's key leaf carries the old key's rollover (what stations and witnesses follow, served
    from the registry): the log verifies; a registry whose note was removed or replaced is named."""
    from sqlalchemy import select, update

    from custody.keyring import Role
    from custody.log.rollover import follow_rollovers
    from store.ledger import Ledger
    from store.models import KeyRecord, LogLeaf

    first = Ledger(simulated.instance).log_key()
    simulated.instance.keys.rotate(Role.LOG_SIGNER, "3601", datetime.now(UTC))
    _log_registry_facts(simulated)
    with simulated.instance.db.session() as s:
        leaves = [(i, json.loads(d)) for i, d in s.execute(select(LogLeaf.idx, LogLeaf.data)
                                                             .where(LogLeaf.type == "key"))]
    [(idx, leaf)] = [(i, leaf) for i, leaf in leaves if "rollover" in leaf]
    assert follow_rollovers(first, [leaf["rollover"]])[-1] == Ledger(simulated.instance).log_key()
    assert simulated.verify(full=True).ok
    with simulated.instance.db.write_session() as s:  # the registry's note removed: stations cannot follow
        s.execute(update(KeyRecord).where(KeyRecord.kid == leaf["kid"]).values(rollover=None))
    outcome = simulated.verify(full=True)
    assert [f["index"] for f in named(outcome, "key_registry_mismatch")] == [idx]


def test_a_rollover_not_signed_by_the_log_key_before_is_named() -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from custody.log.note import verifier_key
    from custody.log.rollover import sign_rollover
    from store.verification import _rollover_findings

    origin = "test.exam/zk2017"
    old, new, forger = (Ed25519PrivateKey.generate() for _ in range(3))
    raws = [k.public_key().public_bytes_raw() for k in (old, new)]
    at = datetime(2017, 6, 20, tzinfo=UTC)
    good = sign_rollover(origin, verifier_key(origin, raws[1]), at, old)
    forged = sign_rollover(origin, verifier_key(origin, raws[1]), at, forger)
    other = sign_rollover(origin, verifier_key(origin, b"\x02" * 32), at, old)
    for note, codes_found in ((good, []), (forged, ["rollover_invalid"]), (other, ["rollover_invalid"]),
                              (5, ["rollover_invalid"])):  # not a text: named, not a crash
        keys = [(3, {"kid": "old"}, raws[0]), (9, {"kid": "new", "rollover": note}, raws[1])]
        assert [f.code for f in _rollover_findings(origin, keys, {})] == codes_found
    assert [f.index for f in _rollover_findings(origin, [(9, {"kid": "new", "rollover": good}, raws[1])], {})] == [9]


def test_a_retroactive_revocation_fails_the_first_full_run_only_then_is_a_check(simulated) -> None:
    """A station laptop stolen and noticed late: its key is revoked back to the theft, after the server had
    accepted what it signed. Every nightly run failed on it from then on (and ran in full, since the last
    failed), so the alarm said nothing new and would hide the next real failure. The first full run that
    sees the revocation names each handover; later runs list them in a check and pass."""
    from store.verification_models import VerificationRun

    k = _middle_handover(simulated)
    leaf = leaf_json(simulated.instance, k)
    signed = datetime.fromisoformat(leaf["event"]["station_time"].replace("Z", "+00:00"))
    assert simulated.verify(full=True).ok
    simulated.instance.keys.revoke(leaf["kid"], signed - timedelta(minutes=1), "station laptop stolen")
    # a forged row claiming a full run beyond the revocation vouches for nothing: its report is not signed
    with simulated.instance.db.write_session() as s:
        s.add(VerificationRun(started_at=datetime.now(UTC), finished_at=datetime.now(UTC), mode="full", ok=True,
                              log_size=10**9, verified_from=0, verified_to=10**9, finding_count=0, digest="f" * 64,
                              report=json.dumps({"mode": "full", "verified_from": 0, "verified_to": 10**9,
                                                 "signature": {"alg": "Ed25519", "sig": "AAAA"}})))
    registry_only = simulated.verify(full=True)  # the registry knows, the log not yet: news
    assert not registry_only.ok and k in {f["index"] for f in named(registry_only, "revoked_key_signature")}
    _log_registry_facts(simulated)
    first = simulated.verify(full=True)  # the first full run that sees the revocation leaf: the alarm
    assert not first.ok and k in {f["index"] for f in named(first, "revoked_key_signature")}
    named_first = {f["index"] for f in named(first, "revoked_key_signature")}
    second = simulated.verify(full=True)
    assert second.ok, second.report["findings"][:3]
    assert "revoked_key_signature" not in codes(second)
    (row,) = [c for c in second.report["checks"] if c["name"] == "handovers signed by keys revoked afterwards"]
    assert row["ok"] and row["name_zh"] == "事后吊销的密钥所签交接"
    assert f"key {leaf['kid']} ({leaf['event']['station']}): {len(named_first)} handover(s), leaves " \
           f"{min(named_first)}..{max(named_first)}" in row["detail"]
    assert simulated.verify().ok  # and the nightly runs go back to incremental


def test_the_nightly_run_after_a_logged_revocation_goes_full_and_names_what_the_key_signed(simulated) -> None:
    """The nightly (incremental) run checked only leaves appended since the last run, so a key revoked back
    to before handovers it had already verified (a laptop stolen, noticed the next morning) was named only
    by the weekly full run. A revocation logged since the last run makes the night's run full."""
    k = _middle_handover(simulated)
    leaf = leaf_json(simulated.instance, k)
    signed = datetime.fromisoformat(leaf["event"]["station_time"].replace("Z", "+00:00"))
    assert simulated.verify(full=True).ok
    assert simulated.verify().report["mode"] == "incremental"
    simulated.instance.keys.revoke(leaf["kid"], signed - timedelta(minutes=1), "station laptop stolen")
    _log_registry_facts(simulated)  # as custody keys revoke does
    night = simulated.verify()
    assert night.report["mode"] == "full" and "revocation" in night.report["stats"]["mode_detail"], night.report["mode"]
    assert not night.ok and k in {f["index"] for f in named(night, "revoked_key_signature")}
    assert simulated.verify().ok  # reported once: a check from then on (full after the failed run)
    assert simulated.verify().report["mode"] == "incremental"


def test_which_revoked_key_signatures_an_earlier_full_run_reported() -> None:
    from custody.verify.findings import Finding
    from store.verification import _reported_before

    def finding(index: int, *leaves: int) -> Finding:
        return Finding("revoked_key_signature", "m", index=index,
                       details={"revocation_leaves": [[idx, "2017-06-12T01:00:00+00:00"] for idx in leaves]})

    assert _reported_before(finding(10, 20), reported_until=30)
    assert not _reported_before(finding(10, 20), reported_until=20)  # that run did not have the leaf yet
    assert not _reported_before(finding(10, 5, 20), reported_until=30)  # accepted after a logged revocation
    assert not _reported_before(finding(10), reported_until=30)  # revoked in the registry only


def test_restored_old_backup(make_simulated, tmp_path) -> None:
    sim = make_simulated(limit=240)
    saved = tampering.backup(sim.instance, tmp_path / "backup.db")
    simulate(sim.instance, sim.plan, sim.receipts, skip=240)
    assert sim.verify().ok
    size, _ = head(sim.instance)
    assert read_witness_copy(sim.instance.home) is not None
    tampering.restore(sim.instance, saved)
    for full in (False, True):
        outcome = sim.verify(full=full)
        assert not outcome.ok
        rolled = named(outcome, "log_rolled_back")
        assert rolled and all(f["size"] == size for f in rolled)
        assert any("witness copy" in f["message"] for f in rolled)


@pytest.mark.parametrize("full", [False, True])
def test_a_deleted_alert_is_named(simulated, full: bool) -> None:
    from sqlalchemy import select

    from store.models import AlertRecord
    from tests.verify.conftest import delete_rows

    if not full:
        assert simulated.verify().ok  # nothing new since: the incremental run has no alert in range
    with simulated.instance.db.session() as s:
        alert = s.scalars(select(AlertRecord).order_by(AlertRecord.id)).first()
        where = (alert.leaf_idx, alert.item, alert.code)
    delete_rows(simulated.instance, AlertRecord, AlertRecord.id == alert.id)
    outcome = simulated.verify(full=True)
    [missing] = named(outcome, "alert_missing")
    assert (missing["index"], missing["item"], missing["expected"]) == where
    assert json.dumps(outcome.report, ensure_ascii=False)


@pytest.mark.parametrize("report", ["not json", "[1]"])
def test_a_broken_report_behind_the_saved_state_is_named_not_a_crash(simulated, report: str) -> None:
    from sqlalchemy import update

    from store.verification_models import VerificationRun

    assert simulated.verify().ok
    with simulated.instance.db.write_session() as s:
        s.execute(update(VerificationRun).values(report=report))
    # the dashboard and the latest report show a damaged row as such, without a crash
    from store.verification import latest_report
    from web.logview import last_verification

    assert latest_report(simulated.instance)["signature_valid"] is False
    assert last_verification(simulated.instance)["summary"] == ""
    outcome = simulated.verify()
    assert not outcome.ok and outcome.report["mode"] == "full"
    [found] = named(outcome, "state_untrusted")
    assert "not a JSON object" in found["message"]
    # every other check holds: a row names what failed, and the summary says why the run went full
    (other,) = [c for c in outcome.report["checks"] if c["name"] == "other findings"]
    assert not other["ok"] and "state_untrusted ×1" in other["detail"] and other["name_zh"] == "其他问题"
    assert [c["name"] for c in outcome.report["checks"] if not c["ok"]] == ["other findings"]
    from custody.verify.report import render_html, render_text

    assert "mode full (state untrusted);" in render_text(outcome.report)
    assert "[FAIL] 其他问题 / other findings: state_untrusted ×1" in render_text(outcome.report)
    assert "(state untrusted)</small>" in render_html(outcome.report)
