"""``custody scan --source SRC --decode-only --json`` through click's test runner."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result

from cli.scan import STATION_NOT_BUILT, scan
from scanners.synth import Placement, SynthFrame
from tests.scanners.helpers import PARCEL_QR, FakeCapture, FakeDevice, write_image

MakeFrame = Callable[..., np.ndarray]
MakeVideo = Callable[..., tuple[Path, list[SynthFrame]]]


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(scan, list(args), env=env, catch_exceptions=False)


def rows(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test_an_image_gives_one_row_per_label_named_by_the_file(
    tmp_path: Path, make_frame: MakeFrame, texts: list[str]
) -> None:
    image = make_frame([Placement(texts[0], (350, 330), 200), Placement(texts[1], (950, 360), 170, angle=30)])
    path = write_image(tmp_path / "bags-1.jpg", image)
    result = run("--source", str(path), "--decode-only", "--json")
    assert result.exit_code == 0, result.output
    found = rows(result)
    assert {r["text"] for r in found} == {texts[0], texts[1]}
    for row in found:
        assert row["frame"] == "bags-1.jpg"
        assert row["kind"] == "label" and row["backend"] in {"zxing-cpp", "pyzbar"}
        assert len(row["polygon"]) == 4 and all(len(p) == 2 for p in row["polygon"])
        assert row["unverified_item"].count("-") == 3 and "error" not in row


def test_a_folder_reports_each_label_once_with_the_file_it_was_first_seen_in(
    tmp_path: Path, make_frame: MakeFrame, texts: list[str]
) -> None:
    write_image(tmp_path / "01.png", make_frame([Placement(texts[2], (400, 360), 200)], seed=1))
    write_image(tmp_path / "02.png", make_frame([Placement(texts[2], (700, 300), 200),
                                                 Placement(texts[3], (300, 500), 180)], seed=2))
    (tmp_path / "03.jpg").write_bytes(b"not a jpeg")
    result = run("--source", str(tmp_path), "--decode-only", "--json")
    assert result.exit_code == 0
    assert [(r["text"], r["frame"]) for r in rows(result)] == [(texts[2], "01.png"), (texts[3], "02.png")]
    assert "skipped 03.jpg" in result.stderr

    every = run("--source", str(tmp_path), "--decode-only", "--json", "--all-frames")
    assert sorted((r["frame"], r["text"]) for r in rows(every)) == sorted(
        [("01.png", texts[2]), ("02.png", texts[2]), ("02.png", texts[3])])


def test_a_video_reports_frame_numbers_and_each_label_once(
    make_video: MakeVideo, texts: list[str]
) -> None:
    placements = [Placement(texts[4], (380, 360), 200, angle=-15), Placement(texts[5], (900, 330), 170, tilt_y=25)]
    path, truth = make_video("cli", placements, n_frames=16)
    result = run("--source", str(path), "--decode-only", "--json")
    assert result.exit_code == 0, result.output
    found = rows(result)
    assert sorted(r["text"] for r in found) == sorted(texts[4:6])
    for row in found:
        assert isinstance(row["frame"], int) and 0 <= row["frame"] < 16
        # read no earlier than a frame before the code is wholly in view (error
        # correction reads one with an edge cut off)
        assert row["text"] in truth[row["frame"] + 1].texts

    bounded = run("--source", str(path), "--decode-only", "--json", "--max-frames", "2")
    assert bounded.exit_code == 0 and rows(bounded) == []  # the labels are not in view yet


def test_a_parcel_code_is_skipped_unless_all_codes(tmp_path: Path, make_frame: MakeFrame, texts: list[str]) -> None:
    image = make_frame([Placement(PARCEL_QR, (350, 360), 170), Placement(texts[6], (900, 360), 190)])
    path = write_image(tmp_path / "desk.png", image)
    ours = run("--source", str(path), "--decode-only", "--json")
    assert [r["text"] for r in rows(ours)] == [texts[6]]

    every = run("--source", str(path), "--decode-only", "--json", "--all-codes")
    kinds = {r["text"]: r["kind"] for r in rows(every)}
    assert kinds == {PARCEL_QR: "other", texts[6]: "label"}


def test_a_damaged_label_of_ours_is_reported_with_an_error(
    tmp_path: Path, make_frame: MakeFrame, texts: list[str]
) -> None:
    damaged = texts[7][:200]  # the prefix survived, the number is cut short
    path = write_image(tmp_path / "torn.png", make_frame([Placement(damaged, (640, 360), 200)]))
    result = run("--source", str(path), "--decode-only", "--json")
    assert result.exit_code == 0
    (row,) = rows(result)
    assert row["text"] == damaged and row["kind"] == "label"
    assert "label" in row["error"] and "unverified_item" not in row


def test_a_corrupt_video_is_a_clear_error_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "gate-camera.mp4"
    path.write_bytes(np.random.default_rng(5).bytes(20_000))
    result = run("--source", str(path), "--decode-only", "--json")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "error: cannot open" in result.stderr and "gate-camera.mp4" in result.stderr


def test_a_missing_source_is_exit_2(tmp_path: Path) -> None:
    result = run("--source", str(tmp_path / "nope"), "--decode-only", "--json")
    assert result.exit_code == 2 and "no such file or folder" in result.stderr


def test_a_lost_camera_keeps_what_was_read_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, make_frame: MakeFrame, texts: list[str]
) -> None:
    capture = FakeCapture(3)
    capture.image = make_frame([Placement(texts[8], (640, 360), 220)])
    monkeypatch.setattr("scanners.capture._open_cv_capture", FakeDevice([capture]))
    monkeypatch.setattr("scanners.capture.time.sleep", lambda seconds: None)
    result = run("--source", "0", "--decode-only", "--json")
    assert result.exit_code == 2
    assert [(r["text"], r["frame"]) for r in rows(result)] == [(texts[8], 0)]
    assert "camera 0 stopped delivering frames after frame 2" in result.stderr


def test_a_live_source_is_bounded_by_max_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    device = FakeDevice([FakeCapture(1000)])
    monkeypatch.setattr("scanners.capture._open_cv_capture", device)
    result = run("--source", "1", "--decode-only", "--json", "--max-frames", "5")
    assert result.exit_code == 0 and result.stdout == ""
    assert device.handed[0].delivered == 5


def test_without_decode_only_the_station_is_not_built_yet(tmp_path: Path) -> None:
    result = run("--source", "0")
    assert result.exit_code == 2
    assert STATION_NOT_BUILT in result.stderr


def test_options_come_from_the_environment(tmp_path: Path, make_frame: MakeFrame, texts: list[str]) -> None:
    path = write_image(tmp_path / "env.png", make_frame([Placement(texts[9], (640, 360), 200)]))
    result = run(env={"CUSTODY_SCAN_SOURCE": str(path), "CUSTODY_SCAN_DECODE_ONLY": "1", "CUSTODY_SCAN_JSON": "1"})
    assert result.exit_code == 0, result.output
    assert [r["text"] for r in rows(result)] == [texts[9]]


def test_people_get_a_line_per_label_and_a_summary(tmp_path: Path, make_frame: MakeFrame, texts: list[str]) -> None:
    path = write_image(tmp_path / "one.png", make_frame([Placement(texts[10], (640, 360), 200)]))
    result = run("--source", str(path), "--decode-only")
    assert result.exit_code == 0
    assert result.stdout.startswith("one.png\t") and "(not verified)" in result.stdout
    assert "1 frame(s), 1 distinct label(s)" in result.stderr


def test_bad_resolution_is_a_usage_error() -> None:
    result = run("--source", "0", "--decode-only", "--resolution", "big")
    assert result.exit_code == 2 and "WIDTHxHEIGHT" in result.stderr
