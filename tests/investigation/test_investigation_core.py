"""The pure core on hand-made scans: transit with no arrival, missing and found, packing, scoring."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from custody.investigation import (
    InvestigationConfig,
    ItemRecord,
    Scan,
    StoredAlert,
    Territory,
    score_unit,
    tier_summary,
    trace_item,
)
from custody.labels import ItemKind
from custody.plan import LOCAL_TZ
from custody.sample import sample_plan

PLAN = sample_plan("tiny")
GEO = Territory(PLAN)
YW = PLAN.subject("YW")
T = datetime(2017, 6, 16, 8, 0, tzinfo=LOCAL_TZ)
BUNDLE = ItemRecord("YW-P-K001-01", ItemKind.PAPER_BUNDLE, "YW", "K001-01", 29, "FT1", "YW-X-K001",
                    issued_at=T - timedelta(days=10), label_index=1)
LOOSE = ItemRecord("YW-B-360102", ItemKind.BACKUP_PAPER, "YW", "360102", 59, "FT2")


def scan(index: int, item: str, action: str, at: datetime, frm: str | None, to: str | None, *,
         late: timedelta = timedelta(seconds=20), seal: str = "intact", box: str | None = None,
         count: int | None = None) -> Scan:
    return Scan(index, item, action, at, at + late, frm, to, (f"{frm}-S1", f"{frm}-S2") if frm else (),
                (f"{to}-S1", f"{to}-S2") if to else (), "ST-X", f"E{index}", "ab" * 32, seal, "FT", count, None, box)


def trace(record: ItemRecord, scans: list[Scan], boxes: dict[str, list[Scan]] | None = None,
          until: datetime = T + timedelta(days=5)):  # type: ignore[no-untyped-def]
    return trace_item(record, [s for s in scans if s.item == record.item_id], boxes or {}, territory=GEO,
                      subject=YW, until=until, cutoff=min(YW.starts_at, until))


def test_departed_and_never_received_is_a_gap_after_the_transit_limit() -> None:
    scans = [scan(10, LOOSE.item_id, "receive", T, "3601", "360102"),
             scan(11, LOOSE.item_id, "depart", T + timedelta(hours=1), "360102", "K001")]
    early = trace(LOOSE, scans, until=T + timedelta(hours=3))
    assert early.gaps == () and early.current is not None and early.current.kind == "transit"
    late = trace(LOOSE, scans, until=T + timedelta(hours=9))
    (gap,) = late.gaps
    assert gap.code == "no_arrival" and gap.after_accountable == "360102" and gap.end is None
    assert gap.hours(T + timedelta(hours=9)) == pytest.approx(8)


def test_missing_then_found_is_a_gap_and_the_finder_holds_it() -> None:
    scans = [scan(10, LOOSE.item_id, "receive", T, "3601", "360102"),
             scan(11, LOOSE.item_id, "missing", T + timedelta(hours=2), None, "360102"),
             scan(12, LOOSE.item_id, "found", T + timedelta(hours=5), None, "360102-BMS")]
    custody = trace(LOOSE, scans)
    (gap,) = custody.gaps
    assert (gap.code, gap.start_index, gap.end_index) == ("reported_missing", 11, 12)
    assert custody.windows[-1].unit == "360102-BMS" and custody.windows[-1].accountable == "360102"


def test_the_box_holds_its_contents_until_it_is_unpacked() -> None:
    box = [scan(20, "YW-X-K001", "receive", T, "3601", "360102"),
           scan(21, "YW-X-K001", "store", T + timedelta(minutes=20), "360102", "360102-BMS"),
           scan(22, "YW-X-K001", "unpack", T + timedelta(days=3), "K001", "K001"),
           scan(23, "YW-X-K001", "store", T + timedelta(days=3, hours=1), "K001", "K001")]
    custody = trace(BUNDLE, [], {"YW-X-K001": box})
    assert [(w.unit, w.kind, w.via_box) for w in custody.windows] == [
        ("3601", "before_first_scan", None), ("360102", "held", "YW-X-K001"),
        ("360102-BMS", "stored", "YW-X-K001")] + [("K001", "held", "YW-X-K001")]
    assert 23 not in custody.indexes  # the box's scans after the unpack are not the bundle's


def test_off_route_late_and_night_scans_are_found() -> None:
    night = datetime(2017, 6, 19, 23, 30, tzinfo=LOCAL_TZ)
    scans = [scan(10, LOOSE.item_id, "receive", T, "3601", "360102"),
             scan(11, LOOSE.item_id, "take_out", night, "360102-BMS", "360102", late=timedelta(hours=2)),
             scan(12, LOOSE.item_id, "receive", night + timedelta(minutes=5), "360102", "360103")]
    codes = {(a.index, a.code) for a in trace(LOOSE, scans).anomalies}
    assert {(11, "late_sync"), (11, "night_access"), (12, "unexpected_place")} <= codes


def test_stored_alerts_win_over_the_same_finding() -> None:
    scans = [scan(10, LOOSE.item_id, "receive", T, "3601", "360102", seal="damaged")]
    stored = StoredAlert(10, LOOSE.item_id, "360102", "seal_damaged", "critical", "rules say", "规则")
    custody = trace_item(LOOSE, scans, {}, territory=GEO, subject=YW, until=T + timedelta(days=1),
                         cutoff=YW.starts_at, alerts=[stored])
    seals = [a for a in custody.anomalies if a.code == "seal_damaged"]
    assert len(seals) == 1 and seals[0].source == "rules" and seals[0].message == "rules say"


def test_a_seal_found_broken_on_departure_is_the_senders_finding() -> None:
    # the sender's station scans the depart; the rules store the alert at the event's to_unit
    scans = [scan(10, LOOSE.item_id, "receive", T, "3601", "360102"),
             scan(11, LOOSE.item_id, "depart", T + timedelta(hours=1), "360102", "K001", seal="damaged")]
    stored = StoredAlert(11, LOOSE.item_id, "K001", "seal_damaged", "critical", "rules say", "规则")
    for alerts in ([], [stored]):
        custody = trace_item(LOOSE, scans, {}, territory=GEO, subject=YW, until=T + timedelta(hours=2),
                             cutoff=YW.starts_at, alerts=alerts)
        (seal,) = [a for a in custody.anomalies if a.code == "seal_damaged"]
        assert (seal.unit, seal.accountable) == ("360102", "360102")
        ranked = {u.unit: {a.code for a in u.anomalies} for u in tier_summary([custody], GEO, until=T)}
        assert "seal_damaged" in ranked["360102"] and "seal_damaged" not in ranked.get("K001", set())


def test_the_score_is_documented_and_deterministic() -> None:
    scans = [scan(10, LOOSE.item_id, "receive", T, "3601", "360102", seal="damaged"),
             scan(11, LOOSE.item_id, "receive", T + timedelta(hours=10), "360103", "360103")]
    custody = trace(LOOSE, scans)
    until = T + timedelta(days=5)
    first = tier_summary([custody], GEO, until=until)
    again = tier_summary([custody], GEO, until=until)
    assert [(u.unit, u.score) for u in first] == [(u.unit, u.score) for u in again]
    county = next(u for u in first if u.unit == "360102")
    score, reasons = score_unit(county.anomalies, county.gaps, county.item_hours, until)
    assert score == county.score
    assert reasons[0].points == 100 and reasons[1].points == pytest.approx(60 + 2 * 10)
    assert county.rank == 1


def test_config_thresholds_are_parameters() -> None:
    scans = [scan(10, LOOSE.item_id, "receive", T, "3601", "360102", late=timedelta(minutes=20))]
    strict = trace_item(LOOSE, scans, {}, territory=GEO, subject=YW, until=T, cutoff=T,
                        config=InvestigationConfig(late_sync=timedelta(minutes=10)))
    assert [a.code for a in strict.anomalies] == ["late_sync"]


def _explained(stored: list[StoredAlert], scans: list[Scan]) -> dict[tuple[int, str], tuple[str, list[int]]]:
    custody = trace_item(LOOSE, scans, {}, territory=GEO, subject=YW, until=T + timedelta(days=1),
                         cutoff=YW.starts_at, alerts=stored)
    return {(a.index, a.code): (a.severity, list(a.details.get("explained_by", ()))) for a in custody.anomalies
            if a.source == "rules"}


def test_an_alert_the_rules_raised_for_want_of_a_late_upload_is_explained_not_blamed() -> None:
    # the county stores the backup paper at 09:00, but that scan's station was offline until 14:00; the
    # take-out at 10:00 was logged first, so the rules (in log order) said "taken out but not stored"
    scans = [scan(10, LOOSE.item_id, "receive", T, "3601", "360102"),
             scan(11, LOOSE.item_id, "take_out", T + timedelta(hours=2), "360102-BMS", "360102"),
             scan(12, LOOSE.item_id, "store", T + timedelta(hours=1), "360102", "360102-BMS",
                  late=timedelta(hours=5))]
    stored = [StoredAlert(11, LOOSE.item_id, "360102", "out_of_sequence", "warning", "take_out out of sequence",
                          "顺序异常", {"reasons": ["it was taken out but is not stored"]}),
              StoredAlert(12, LOOSE.item_id, "360102-BMS", "time_reversal", "warning", "earlier", "更早",
                          {"applied": False})]
    found = _explained(stored, scans)
    assert found[(11, "out_of_sequence")] == ("info", [12])
    assert found[(12, "time_reversal")] == ("info", [12])
    custody = trace_item(LOOSE, scans, {}, territory=GEO, subject=YW, until=T + timedelta(days=1),
                         cutoff=YW.starts_at, alerts=stored)
    (late,) = [a for a in custody.anomalies if a.code == "late_sync"]
    assert late.severity == "warning"  # the offline station's own finding stays
    (explained,) = [a for a in custody.anomalies if a.code == "out_of_sequence"]
    assert "explained" in explained.message and "已解释" in explained.message_zh
    assert explained.details["stored_severity"] == "warning"
    ranked = {u.unit: u for u in tier_summary([custody], GEO, until=T + timedelta(days=1))}
    assert not any("out_of_sequence" in r.en for r in ranked["360102"].reasons)


def test_a_late_upload_explains_nothing_that_happened_before_it_or_a_real_gap() -> None:
    order = StoredAlert(11, LOOSE.item_id, "360102", "out_of_sequence", "warning", "m", "m")
    # the late scan was made after the flagged one: it cannot have been missing when it was judged
    after = [scan(10, LOOSE.item_id, "receive", T, "3601", "360102"),
             scan(11, LOOSE.item_id, "take_out", T + timedelta(hours=2), "360102-BMS", "360102"),
             scan(12, LOOSE.item_id, "store", T + timedelta(hours=3), "360102", "360102-BMS", late=timedelta(hours=5))]
    assert _explained([order], after)[(11, "out_of_sequence")] == ("warning", [])
    # in station-time order the flagged scan is still somewhere custody never went: a gap, not explained
    gap = [scan(10, LOOSE.item_id, "receive", T, "3601", "360102"),
           scan(11, LOOSE.item_id, "receive", T + timedelta(hours=2), "360103", "360103"),
           scan(12, LOOSE.item_id, "store", T + timedelta(hours=1), "360102", "360102-BMS", late=timedelta(hours=5))]
    assert _explained([order], gap)[(11, "out_of_sequence")] == ("warning", [])
    # a time reversal that moved custody back (a station clock, not a backlog) stands
    applied = StoredAlert(12, LOOSE.item_id, "360102", "time_reversal", "warning", "m", "m", {"applied": True})
    assert _explained([applied], after[:2] + [after[2]._replace(time=T + timedelta(hours=1))])[
        (12, "time_reversal")] == ("warning", [])
