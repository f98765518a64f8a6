"""The investigation report on the planted demo exam: ranking, windows, gaps, clones, scope."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from custody.errors import NotFound
from custody.plan import LOCAL_TZ
from store.investigation import investigate
from tests.investigation.conftest import CLONE_SEEN, CLONED, LEAK_COUNTY, LEAK_TAKEN_OUT, LEAKED, Demo


def test_the_planted_leak_puts_the_county_office_first_and_says_why(demo: Demo) -> None:
    report = investigate(demo.instance, "YW")
    first = report.ranking[0]
    assert first.unit == LEAK_COUNTY and first.tier == "county" and first.rank == 1
    assert first.score > report.ranking[1].score
    reasons = " ".join(r.en for r in first.reasons)
    assert "seal_damaged" in reasons and "gap starting here (unlinked_move" in reasons
    assert {a.code for a in first.anomalies} >= {"seal_damaged", "night_access"}
    assert [g.item for g in first.gaps] == [LEAKED]
    # the reasons add up to the score, largest first
    assert round(sum(r.points for r in first.reasons), 1) == first.score
    assert [r.points for r in first.reasons] == sorted((r.points for r in first.reasons), reverse=True)
    # starting from the leaked bundle gives the same answer
    from_item = investigate(demo.instance, "YW", leaked_item=LEAKED)
    assert from_item.focus == [LEAKED] and from_item.ranking[0].unit == LEAK_COUNTY


def test_the_leaked_bundle_has_a_gap_from_the_night_take_out_to_its_site(demo: Demo) -> None:
    custody = investigate(demo.instance, "YW").custody(LEAKED)
    (gap,) = custody.gaps
    assert gap.code == "unlinked_move" and gap.after_unit == LEAK_COUNTY and gap.next_unit == "K001"
    assert gap.start == LEAK_TAKEN_OUT
    assert gap.end is not None and gap.end.astimezone(LOCAL_TZ).date() == LEAK_TAKEN_OUT.date() + timedelta(days=1)
    codes = {(a.code, a.accountable) for a in custody.anomalies}
    assert ("seal_damaged", LEAK_COUNTY) in codes
    # the box's windows count for it until it left the box: city secure room, county secure room
    units = [w.unit for w in custody.windows]
    assert units[:3] == ["36-YS", "3601", "3601-BMS"] and f"{LEAK_COUNTY}-BMS" in units
    assert custody.windows[-1].kind == "opened" and custody.windows[-1].end is None
    assert 85 < custody.hours_before_start[LEAK_COUNTY] < 86  # 16 June 10:00 to 19 June 23:10


def test_a_clean_bundle_is_held_all_the_time_with_no_gap(demo: Demo) -> None:
    report = investigate(demo.instance, "YW")
    custody = report.custody("YW-P-K001-02")
    assert custody.gaps == ()
    assert not [a for a in custody.anomalies if a.severity == "critical"]
    windows = custody.windows
    assert windows[0].kind == "before_first_scan" and windows[0].start == custody.item.issued_at
    for a, b in zip(windows, windows[1:], strict=False):
        assert a.end == b.start and a.end_index == b.start_index, (a, b)
    assert windows[-1].end is None
    assert [w.accountable for w in windows if w.kind != "transit"][1:4] == ["3601", "3601", "3601"]
    assert all(w.people for w in windows[1:])


def test_a_cloned_label_seen_at_two_places_is_flagged(demo: Demo) -> None:
    report = investigate(demo.instance, "WL")
    custody = report.custody(CLONED)
    clones = [a for a in custody.anomalies if a.code == "cloned_label"]
    assert len(clones) == 1 and clones[0].unit == LEAK_COUNTY and clones[0].time == CLONE_SEEN
    assert clones[0].details["held_by"] == "360103-BMS"
    # custody never left the real holder: no gap, and the box's secure room window spans the sighting
    assert custody.gaps == ()
    stored = [w for w in custody.windows if w.unit == "360103-BMS"]
    assert stored and stored[0].start < CLONE_SEEN < stored[0].end
    assert report.ranking[0].unit == LEAK_COUNTY
    assert "cloned_label" in {a.code for a in report.ranking[0].anomalies}


def test_late_synced_scans_are_flagged_at_the_offline_site(demo: Demo) -> None:
    report = investigate(demo.instance, "YW")
    site = next(u for u in report.ranking if u.unit == "K002")
    assert "late_sync" in {a.code for a in site.anomalies}


def test_the_offline_sites_late_uploads_do_not_put_findings_on_the_county(demo: Demo) -> None:
    # K002's station was offline on the YW morning: the county received the answer cards back before
    # the site's unpack of their box reached the log, and the rules (in log order) flagged the receive
    report = investigate(demo.instance, "YW")
    county = next(u for u in report.ranking if u.unit == "360103")
    order = [a for a in county.anomalies if a.code == "out_of_sequence"]
    assert order and all(a.severity == "info" and a.details["explained_by"] for a in order)
    assert not any("out_of_sequence" in r.en for r in county.reasons)
    for a in order:
        assert all(i > a.index for i in a.details["explained_by"])
        assert "ST-K002" in a.message
    # the site's own finding stays; the planted leak's out-of-sequence take-out is not explained away
    site = next(u for u in report.ranking if u.unit == "K002")
    assert {a.code: a.severity for a in site.anomalies}["late_sync"] == "warning"
    leak = next(u for u in report.ranking if u.unit == LEAK_COUNTY)
    assert [a.severity for a in leak.anomalies if a.code == "out_of_sequence"] == ["warning"]
    # the ranking row shows the explained alert apart from what counts
    from printing.report import anomaly_codes

    assert anomaly_codes(county.anomalies) == "(out_of_sequence)"
    assert anomaly_codes(leak.anomalies).startswith("night_access,out_of_sequence,seal_damaged")


def test_scope_of_a_leaked_bundle_before_the_exam(demo: Demo) -> None:
    leak = datetime(2017, 6, 19, 23, 30, tzinfo=LOCAL_TZ)
    report = investigate(demo.instance, "YW", leaked_item=LEAKED, leak_time=leak)
    scope = report.scope
    assert scope.timing == "before" and scope.localised
    assert [a.county for a in scope.scenario2] == [LEAK_COUNTY]
    assert [a.county for a in scope.scenario3] == ["360102", "360103"]
    assert "3601" in scope.city_level_holders
    (backup,) = scope.backups2
    assert backup.item == "YW-B-360102" and backup.papers == 59 and backup.candidates == 59
    assert backup.holder == "360102-BMS" and backup.status == "stored" and backup.clean
    assert [b.item for b in scope.backups3] == ["YW-B-360102", "YW-B-360103"]
    assert scope.papers3 == 118
    # the leak time cuts what counts: the site never held it before the leak
    assert "K001" not in {u.unit for u in report.ranking}


def test_scope_from_a_room_and_after_the_exam(demo: Demo) -> None:
    report = investigate(demo.instance, "YW", leaked_unit="K002-01")
    assert report.focus == ["YW-P-K002-01"]
    assert [a.county for a in report.scope.scenario2] == ["360103"]
    assert report.scope.timing == "after"
    assert report.to_json(proofs=False)["scope"]["scenario2"]["action"] == "void the subject"


def test_unknown_subject_item_and_unit_are_named(demo: Demo) -> None:
    with pytest.raises(NotFound, match="subject 'XX'"):
        investigate(demo.instance, "XX")
    with pytest.raises(NotFound, match="WL-P-K001-01"):
        investigate(demo.instance, "YW", leaked_item="WL-P-K001-01")
    with pytest.raises(NotFound, match="K999"):
        investigate(demo.instance, "YW", leaked_unit="K999")


def test_as_of_reports_the_log_as_it_stood(demo: Demo) -> None:
    as_of = datetime(2017, 6, 17, 12, 0, tzinfo=LOCAL_TZ)
    report = investigate(demo.instance, "YW", as_of=as_of)
    assert report.until == as_of
    assert all(report.scans[i].received_at <= as_of for c in report.custodies for i in c.indexes)
    leaked = report.custody(LEAKED)
    assert leaked.gaps == () and leaked.current is not None and leaked.current.unit == f"{LEAK_COUNTY}-BMS"


def test_an_as_of_later_than_now_is_refused(demo: Demo) -> None:
    # on the exam morning, a mistyped date a day ahead must not decide 'after the start: void the subject'
    morning = datetime(2017, 6, 20, 7, 0, tzinfo=LOCAL_TZ)
    with pytest.raises(NotFound, match="later than now"):
        investigate(demo.instance, "YW", as_of=morning + timedelta(days=1), now=morning)
    assert investigate(demo.instance, "YW", as_of=morning, now=morning).scope.timing == "before"


def test_a_leak_time_later_than_the_reports_time_is_refused(demo: Demo) -> None:
    morning = datetime(2017, 6, 20, 7, 0, tzinfo=LOCAL_TZ)
    with pytest.raises(NotFound, match="leak time .* later than the report's time"):
        investigate(demo.instance, "YW", leak_time=morning + timedelta(days=1), now=morning)
    with pytest.raises(NotFound, match="--as-of"):
        investigate(demo.instance, "YW", leak_time=morning, as_of=morning - timedelta(hours=1), now=morning)
    assert investigate(demo.instance, "YW", leak_time=morning, now=morning).scope.timing == "before"


@pytest.mark.parametrize("subject", ["YW", "WL", "YY"])
def test_shared_box_walks_give_the_same_custody_as_item_by_item(demo: Demo, subject: str) -> None:
    from custody.investigation.territory import Territory
    from custody.investigation.trace import trace_item, trace_items

    report = investigate(demo.instance, subject)
    records = [c.item for c in report.custodies]
    scans_of: dict[str, list] = {}
    for scan in report.scans.values():
        scans_of.setdefault(scan.item, []).append(scan)
    territory = Territory(demo.plan)
    options = {"territory": territory, "subject": report.subject, "until": report.until, "cutoff": report.cutoff}
    together = trace_items(records, scans_of, {}, **options)
    for record, custody in zip(records, together, strict=True):
        boxes = {record.parent_box: scans_of.get(record.parent_box, [])} if record.parent_box else {}
        alone = trace_item(record, scans_of.get(record.item_id, []), boxes, **options)
        assert (custody.windows, custody.gaps, custody.anomalies, custody.indexes) == \
            (alone.windows, alone.gaps, alone.anomalies, alone.indexes), record.item_id
        assert custody.hours_before_start == pytest.approx(alone.hours_before_start), record.item_id


def test_remembered_custody_is_the_custody_computed_afresh(demo: Demo) -> None:
    import store.investigation as stored

    first = investigate(demo.instance, "YW").to_json(proofs=False)
    again = investigate(demo.instance, "YW").to_json(proofs=False)  # every item from the memo
    earlier = investigate(demo.instance, "YW", as_of=datetime(2017, 6, 17, 12, 0, tzinfo=LOCAL_TZ))
    stored._CACHE.clear()
    fresh = investigate(demo.instance, "YW").to_json(proofs=False)
    assert first == again == fresh
    assert earlier.custody(LEAKED).gaps == ()
