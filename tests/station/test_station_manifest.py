"""The handover manifest: the county's station prints it when it distributes; the site's station, offline and
without a list from the server, scans it and checks the boxes against it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from click.testing import CliRunner

from cli.scan import scan
from cli.station import station as station_cli
from custody.events import Action
from tests.station.conftest import PASSPHRASE
from tests.station.scenes import CITY_TO_COUNTY_PEOPLE, COUNTY_RECEIVES, handover_video, readings, scene

SITE_BOXES = [i for i in COUNTY_RECEIVES if i.endswith("-X-K001")]
COUNTY_TO_SITE_PEOPLE = ["360102-S1", "360102-S2", "K001-S1", "K001-S2"]


def printed(manifest_png: Path, out: Path) -> Path:
    """The printed manifest held up to the desk camera: the PNG on a 1280x720 desk picture."""
    qr = cv2.imread(str(manifest_png), cv2.IMREAD_GRAYSCALE)
    side = 640
    qr = cv2.resize(qr, (side, side), interpolation=cv2.INTER_AREA)
    frame = np.full((720, 1280, 3), 150, np.uint8)
    frame[40:40 + side, 320:320 + side] = cv2.cvtColor(qr, cv2.COLOR_GRAY2BGR)
    cv2.imwrite(str(out), frame)
    return out


def test_a_site_offline_checks_the_boxes_against_the_county_manifest(make_station: Any, live_server: Any,
                                                                    tmp_path: Path, label_of: Any,
                                                                    badge_of: Any) -> None:
    county = make_station("ST-360102", "360102")
    received = county.new_session(Action.RECEIVE, "3601")
    received.observe(0, readings([label_of(i) for i in COUNTY_RECEIVES] + [badge_of(p) for p in
                                                                          CITY_TO_COUNTY_PEOPLE]))
    county.confirm(received)
    assert county.sync(["distribute"]).errors == []
    # the list of an outgoing handover is everything held here; what is not handed over simply stays
    assert set(county.expected_cache.load("distribute").entries) == set(COUNTY_RECEIVES)
    # the county hands the site its six boxes and prints the manifest
    out = county.new_session(Action.DISTRIBUTE, "K001")
    out.observe(0, readings([label_of(i) for i in SITE_BOXES] + [badge_of(p) for p in COUNTY_TO_SITE_PEOPLE]))
    assert out.complete() and out.counts()["scanned"] == 6 and out.missing() == []
    county.confirm(out)
    result = CliRunner().invoke(station_cli, ["--station-home", str(county.home.path), "manifest", out.id])
    assert result.exit_code == 0
    [text] = result.stdout.split()
    assert text.startswith("CUSM1:") and result.stderr.strip().endswith(f"{out.id}-1.png")
    png = county.home.manifests_dir / f"{out.id}-1.png"

    # a crash after the confirm, before the files were written, loses no manifest: it is in the outbox
    for path in county.home.manifests_dir.iterdir():
        path.unlink()
    result = CliRunner().invoke(station_cli, ["--station-home", str(county.home.path), "manifest", out.id])
    assert result.exit_code == 0 and result.stdout.split() == [text] and png.exists()
    result = CliRunner().invoke(station_cli, ["--station-home", str(county.home.path), "manifest", received.id])
    assert result.exit_code == 2 and "no manifest" in result.stderr

    # the site's station has the key bundle (with the county station's key) but no list; its line is down
    site = make_station("ST-K001", "K001", actions=())
    assert site.expected_cache.load("receive") is None
    live_server.stop()
    video = handover_video(tmp_path / "boxes.avi", [
        scene([label_of(i) for i in SITE_BOXES] + [badge_of(p) for p in COUNTY_TO_SITE_PEOPLE], seed=61, frames=8)])
    result = CliRunner().invoke(scan, ["--station-home", str(site.home.path), "--source",
                                       str(printed(png, tmp_path / "manifest.png")), "--next-source", str(video),
                                       "--headless", "--no-sync", "--no-send", "--action", "receive",
                                       "--counterpart", "360102", "--confirm-when-complete"],
                                env={"CUSTODY_PASSPHRASE": PASSPHRASE}, catch_exceptions=False)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[0]["type"] == "session" and lines[0]["expected"] == 0 and lines[0]["expected_source"] == "none"
    loaded = next(line for line in lines if line["type"] == "scan" and line["what"] == "manifest")
    assert loaded["colour"] == "green" and loaded["message"] == f"已载入交接单 {out.id} 1/1：6 件"
    items = {line["item"]: line["colour"] for line in lines if line["type"] == "scan" and line["what"] == "item"}
    assert items == dict.fromkeys(SITE_BOXES, "green")
    confirmed = next(line for line in lines if line["type"] == "confirmed")
    assert result.exit_code == 0 and confirmed["summary"]["recorded"] == sorted(SITE_BOXES)
    assert confirmed["summary"]["expected_source"] == "manifest"
    assert site.outbox.counts()["pending"] == 6  # sent when the line is back


def test_a_forged_or_foreign_manifest_is_refused(make_station: Any) -> None:
    from custody.labels import ItemKind, Signer
    from scanners.station.manifest import ManifestItem, make_manifests, verify_manifest
    from scanners.synth import synth_signer

    county = make_station("ST-360102", "360102")
    site = make_station("ST-K001", "K001", actions=())
    items = [ManifestItem("YW-X-K001", ItemKind.BOX, 6, "ab" * 32)]
    now = county.clock()

    def manifest(to_unit: str, signer: Signer) -> str:
        [text] = make_manifests(id="ST-360102-S00009", from_unit="360102", to_unit=to_unit, action="distribute",
                                created_at=now, station="ST-360102", items=items, signer=signer)
        return text

    good = manifest("K001", county.signer())
    assert verify_manifest(good, site.bundle().keyring).items == tuple(items)
    flipped = good[:200] + ("1" if good[200] != "1" else "2") + good[201:]
    other_key, _ = synth_signer(77)
    forged = manifest("K001", Signer(county.signer().kid, other_key.sign))  # claims the county's key id
    elsewhere = manifest("K002", county.signer())
    session = site.new_session(Action.RECEIVE, "360102")
    judged = {name: session.scan_manifest(text, "frame").verdict for name, text in
              [("bit-flip", flipped), ("forged", forged), ("other-handover", elsewhere)]}
    assert {n: (v.colour, v.reason) for n, v in judged.items()} == {
        "bit-flip": ("red", "manifest_invalid"), "forged": ("red", "manifest_invalid"),
        "other-handover": ("amber", "manifest_other")}
    assert judged["forged"].message("zh").startswith("交接单无效：")
    assert judged["other-handover"].message("zh") == "交接单 ST-360102-S00009 1/1 属于另一次交接（360102→K002）"
    assert session.knowledge.expected == {} and session.counts()["refused"] == 2
