"""A station key revoked back to when it was stolen: the scans it signed since prove nothing of custody."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from custody.events import Action
from custody.investigation import InvestigationConfig, ItemRecord, Revocation, Scan, Territory, tier_summary
from custody.investigation.report import flag_revoked_keys
from custody.investigation.trace import trace_item
from custody.labels import ItemKind
from custody.sample import sample_plan
from store.investigation import investigate
from store.ledger import Ledger
from tests.store.ledger_helpers import Desk

T = datetime(2017, 6, 12, 2, 0, tzinfo=UTC)
PLAN = sample_plan("tiny")
GEO = Territory(PLAN)


def _scan(index: int, at: datetime, frm: str, to: str, kid: str) -> Scan:
    return Scan(index, "YW-B-360102", "receive", at, at + timedelta(seconds=20), frm, to, (f"{frm}-S1",),
                (f"{to}-S1",), f"ST-{to}", f"E{index}", "ab" * 32, "intact", "FT2", 59, None, None, kid)


def test_scans_signed_after_the_time_a_key_was_revoked_from_are_flagged_at_its_station() -> None:
    record = ItemRecord("YW-B-360102", ItemKind.BACKUP_PAPER, "YW", "360102", 59, "FT2")
    scans = [_scan(10, T, "36-YS", "3601", "aa" * 8), _scan(11, T + timedelta(hours=3), "3601", "360102", "bb" * 8)]
    custody = trace_item(record, scans, {}, territory=GEO, subject=PLAN.subject("YW"), until=T + timedelta(days=1),
                         cutoff=PLAN.subject("YW").starts_at, config=InvestigationConfig())
    stolen = {"bb" * 8: Revocation("bb" * 8, T + timedelta(hours=1), 40, "laptop stolen")}
    flagged = flag_revoked_keys(custody, {s.index: s for s in scans}, stolen, GEO, {"ST-360102": "360102"})
    (found,) = [a for a in flagged.anomalies if a.code == "revoked_key"]
    assert (found.index, found.severity, found.unit, found.source) == (11, "critical", "360102", "investigation")
    assert found.details == {"kid": "bb" * 8, "station": "ST-360102",
                             "revoked_at": (T + timedelta(hours=1)).isoformat(), "revocation_index": 40,
                             "reason": "laptop stolen"}
    assert "laptop stolen" in found.message and "吊销" in found.message_zh
    ranked = {u.unit: u for u in tier_summary([flagged], GEO, until=T + timedelta(days=1))}
    assert any("revoked_key" in r.en for r in ranked["360102"].reasons)
    # revoked from after the scan: the scan was good when made
    later = {"bb" * 8: Revocation("bb" * 8, T + timedelta(hours=4), 40, None)}
    assert flag_revoked_keys(custody, {s.index: s for s in scans}, later, GEO, {}) is custody


def test_an_investigation_flags_the_scans_of_a_key_revoked_back_in_time(tiny_exam) -> None:
    """`custody keys revoke KID --at EARLIER` after the server had accepted what the stolen key signed:
    the nightly verification names those leaves; the investigation must too, where custody is judged."""
    clock = {"now": T + timedelta(minutes=10)}
    ledger = Ledger(tiny_exam, clock=lambda: clock["now"])
    ledger.record_labels("zk2017")
    desk = Desk(tiny_exam, "3601", T - timedelta(days=10))
    early = desk.receive_events(1, T)[0]
    top = sorted(i for i, r in desk.items.items() if r.parent_box is None and i != early["event"]["item"])
    late = desk.event(top[0], Action.RECEIVE, T + timedelta(minutes=5), frm="36-YS", to="3601")
    assert [r["status"] for r in ledger.submit([early, late])] == ["accepted", "accepted"]
    kid = desk.signers[desk.code].kid.hex()
    tiny_exam.keys.revoke(kid, T + timedelta(minutes=2), "laptop stolen")
    clock["now"] = T + timedelta(minutes=20)
    ledger.record_labels("zk2017")  # the next batch logs the revocation
    subject = desk.items[late["event"]["item"]].subject
    report = investigate(tiny_exam, subject, now=clock["now"])
    flags = [a for c in report.custodies for a in c.anomalies if a.code == "revoked_key"]
    assert {a.item for a in flags} == {late["event"]["item"]}  # the scan before the theft stands
    assert all(a.unit == "3601" and a.details["kid"] == kid and a.details["reason"] == "laptop stolen"
               for a in flags)
    ledger.close()
