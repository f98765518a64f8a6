"""A whole handover through ``custody scan --headless``: generated video -> real capture and decode ->
verdicts -> badges -> counts -> confirm -> outbox -> the real server -> verified receipts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli.scan import scan
from tests.station.conftest import PASSPHRASE
from tests.station.scenes import COUNTY_RECEIVES, PARCEL_QR, forged, handover_video, scene


def run_scan(station: Any, *args: str) -> tuple[int, list[dict[str, Any]]]:
    result = CliRunner().invoke(scan, ["--station-home", str(station.home.path), *args],
                                env={"CUSTODY_PASSPHRASE": PASSPHRASE}, catch_exceptions=False)
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result.exit_code, lines


@pytest.fixture
def county_video(tmp_path: Path, label_of: Any, badge_of: Any) -> Path:
    items = [label_of(i) for i in COUNTY_RECEIVES]
    city = [badge_of("3601-S1"), badge_of("3601-S2")]
    county = [badge_of("360102-S1"), badge_of("360102-S2")]
    return handover_video(tmp_path / "handover.avi", [
        # 11 labels slide in, tilted a little: six bags, the city's two officers, a parcel code, a forged
        # label and a box that belongs to another county
        scene(items[:6] + city + [PARCEL_QR, forged(items[0]), label_of("YW-X-K002")], seed=11, frames=12),
        scene(items[6:], seed=12, frames=6, kind="blur"),                  # a shaky hand: hold still
        scene(items[6:] + county, seed=13, frames=10, kind="lowlight"),     # 8 labels in a dim room
    ])


def test_a_county_receives_from_the_city_through_the_whole_station(make_station: Any, live_server: Any,
                                                                    county_video: Path, label_of: Any) -> None:
    station = make_station("ST-360102", "360102")
    code, lines = run_scan(station, "--source", str(county_video), "--headless", "--json", "--action", "receive",
                           "--counterpart", "3601", "--confirm-when-complete")
    assert code == 0, lines[-3:]
    kinds = [line["type"] for line in lines]
    assert kinds[0] == "sync" and kinds[1] == "session" and lines[1]["expected"] == 12
    scans = {line.get("item") or line["reason"]: line for line in lines if line["type"] == "scan"
             and line["colour"] != "red"}
    assert {i for i in COUNTY_RECEIVES if scans.get(i, {}).get("colour") == "green"} == set(COUNTY_RECEIVES)
    assert scans["not_ours"]["colour"] == "grey" and scans["not_ours"]["message"] == "不是保密标签（其他二维码）"
    forged_line = next(line for line in lines if line["type"] == "scan" and line["reason"] == "bad_signature")
    assert forged_line["colour"] == "red" and forged_line["item"] == "YW-X-K001"
    assert "伪造" in forged_line["message"] and "forged" in forged_line["message_en"]
    assert scans["YW-X-K002"]["colour"] == "amber" and "K002" in scans["YW-X-K002"]["message"]
    badges = [line for line in lines if line["type"] == "scan" and line["what"] == "badge"]
    assert {(b["item"], b["side"]) for b in badges} == {
        ("360102-S1", "received"), ("360102-S2", "received"), ("3601-S1", "handed"), ("3601-S2", "handed")}
    assert any(line["type"] == "hold_still" and line["blurred"] and line["message"] == "请保持稳定" for line in lines)
    counts = [line for line in lines if line["type"] == "counts"][-1]
    assert counts["expected"] == 12 and counts["scanned"] == 12 and counts["missing"] == 0
    assert counts["unexpected"] == 1 and counts["handed"] == 2 and counts["received"] == 2

    confirmed = next(line for line in lines if line["type"] == "confirmed")
    assert len(confirmed["events"]) == 12 and confirmed["summary"]["unexpected_not_recorded"] == ["YW-X-K002"]
    synced = next(line for line in lines if line["type"] == "sync" and line["send"]["attempted"])
    assert synced["send"]["accepted"] == 12 and synced["unsent"] == 0
    # exactly our events are in the log, each once, each with its receipt stored beside it
    leaves = live_server.handover_leaves("ST-360102")
    assert sorted(leaf["event"]["id"] for leaf in leaves) == sorted(confirmed["events"])
    assert all(leaf["event"]["from_unit"] == "3601" and leaf["event"]["to_unit"] == "360102" for leaf in leaves)
    assert all(len(leaf["event"]["handed_by"]) == 2 and len(leaf["event"]["received_by"]) == 2 for leaf in leaves)
    outbox = station.outbox.events()
    assert {e.state for e in outbox} == {"receipted"} and all(e.receipt and e.leaf_index is not None for e in outbox)
    # the forged label is not an event: it is refusal evidence, reported to the server and in the log
    assert synced["refusals_reported"] == 1 and station.outbox.unreported_refusals() == []
    assert station.outbox.counts()["refusals"] == 1
    with live_server.instance.db.session() as s:
        from sqlalchemy import select

        from store.models import LogLeaf

        rows = s.scalars(select(LogLeaf).where(LogLeaf.type == "scan_refusal")).all()
        evidence = [json.loads(r.data) for r in rows]
    assert [(e["station"], e["reason"], e["claimed_item"]) for e in evidence] == [
        ("ST-360102", "bad_signature", "YW-X-K001")]
    assert station.status()["drafts"] == []


def test_without_everything_the_session_is_not_confirmed_and_resumes(make_station: Any, tmp_path: Path,
                                                                     label_of: Any, badge_of: Any) -> None:
    station = make_station("ST-360102", "360102")
    first = handover_video(tmp_path / "part1.avi", [
        scene([label_of(i) for i in COUNTY_RECEIVES[:6]] + [badge_of("3601-S1"), badge_of("3601-S2")], seed=21)])
    code, lines = run_scan(station, "--source", str(first), "--headless", "--action", "receive",
                           "--counterpart", "3601", "--confirm-when-complete", "--no-send")
    assert code == 3
    end = lines[-1]
    assert end["type"] == "incomplete" and len(end["missing"]) == 6
    assert any("接收方需要 2 人" in p for p in end["problems"]) and any("缺少 6 件" in p for p in end["problems"])
    assert station.outbox.counts()["pending"] == 0  # nothing was signed
    # restarted later: the draft brings back what was scanned; the rest arrives with a reason for what is missing
    second = handover_video(tmp_path / "part2.avi", [
        scene([label_of(i) for i in COUNTY_RECEIVES[6:10]] + [badge_of("360102-S1"), badge_of("360102-S2")],
              seed=22)])
    code, lines = run_scan(station, "--source", str(second), "--headless", "--resume", "--confirm-at-end",
                           "--missing-reason", "押运车第二趟送达", "--seal-damaged", "YW-X-K001=封条撕裂",
                           "--no-send")
    assert code == 0, lines[-1]
    confirmed = next(line for line in lines if line["type"] == "confirmed")
    assert lines[0]["type"] == "sync" and lines[1]["session"] == end["session"]
    events = {e.id: e.submission["event"] for e in station.outbox.events()}
    assert len(events) == len(confirmed["events"]) == 12
    by_item = {(e["item"], e["action"]): e for e in events.values()}
    assert {i for i, a in by_item if a == "receive"} == set(COUNTY_RECEIVES[:10])
    assert {i for i, a in by_item if a == "missing"} == set(COUNTY_RECEIVES[10:])
    assert by_item[("ZL-X-K001", "missing")]["reason"] == "押运车第二趟送达"
    damaged = by_item[("YW-X-K001", "receive")]
    assert damaged["seal"]["condition"] == "damaged" and damaged["reason"] == "封条撕裂"
    assert [e["id"] for e in events.values()] == [f"ST-360102-{n:07d}" for n in range(1, 13)]


def test_bad_sources_give_a_message_and_the_session_goes_on(make_station: Any, tmp_path: Path, label_of: Any,
                                                            badge_of: Any) -> None:
    station = make_station("ST-360102", "360102")
    corrupt = tmp_path / "broken.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 20)
    empty = handover_video(tmp_path / "nothing.avi", [scene([PARCEL_QR] * 0 + [PARCEL_QR], seed=31, frames=3)])
    good = handover_video(tmp_path / "good.avi", [
        scene([label_of(i) for i in COUNTY_RECEIVES[:2]] + [badge_of(s) for s in
              ("3601-S1", "3601-S2", "360102-S1", "360102-S2")], seed=32)])
    code, lines = run_scan(station, "--source", str(tmp_path / "no-such.avi"), "--next-source", str(corrupt),
                           "--next-source", str(empty), "--next-source", str(good), "--headless", "--action",
                           "receive", "--counterpart", "3601", "--confirm-at-end", "--missing-reason", "分批送达",
                           "--no-send")
    errors = [line for line in lines if line["type"] == "source_error"]
    assert [e["source"] for e in errors] == [str(tmp_path / "no-such.avi"), str(corrupt)]
    assert errors[0]["message"].startswith("画面来源出错") and "no such file" in errors[0]["message_en"]
    assert code == 0 and next(line for line in lines if line["type"] == "confirmed")["summary"]["recorded"] == \
        sorted(COUNTY_RECEIVES[:2])


def test_without_action_the_station_says_what_it_needs(tmp_path: Path) -> None:
    result = CliRunner().invoke(scan, ["--source", "0", "--station-home", str(tmp_path / "none")])
    assert result.exit_code == 2 and "--action" in result.stderr
    result = CliRunner().invoke(scan, ["--source", "0", "--station-home", str(tmp_path / "none"), "--action",
                                       "receive", "--headless"], env={"CUSTODY_PASSPHRASE": PASSPHRASE})
    assert result.exit_code == 2 and "custody station init" in result.stderr
