"""Frame sources: images, folders, video files (good, corrupt, truncated), live sources that die."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from custody.errors import SourceError, SourceLost
from scanners.capture import FolderSource, ImageSource, LiveSource, VideoFileSource, open_source, parse_resolution
from scanners.synth import Placement, SynthFrame
from tests.scanners.helpers import FakeCapture, FakeDevice, write_image

MakeVideo = Callable[..., tuple[Path, list[SynthFrame]]]


@pytest.fixture
def small_video(make_video: MakeVideo, texts: list[str]) -> Path:
    path, _ = make_video("capture", [Placement(texts[0], (700, 360), 200)], n_frames=12)
    return path


def test_an_image_is_one_frame_named_by_its_file(tmp_path: Path) -> None:
    path = write_image(tmp_path / "bag 07.png", np.zeros((20, 30, 3), np.uint8))
    with open_source(str(path)) as source:
        frames = list(source)
    assert isinstance(source, ImageSource)
    assert [f.ref for f in frames] == ["bag 07.png"]
    assert frames[0].image.shape == (20, 30, 3)


def test_a_grey_image_is_delivered_as_bgr(tmp_path: Path) -> None:
    path = write_image(tmp_path / "grey.png", np.full((10, 10), 128, np.uint8))
    (frame,) = list(open_source(str(path)))
    assert frame.image.shape == (10, 10, 3)


def test_a_folder_is_its_images_in_name_order_and_skips_other_files(tmp_path: Path) -> None:
    for name in ("b.jpg", "a.PNG", "c.bmp"):
        write_image(tmp_path / name, np.full((8, 8, 3), 100, np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "sub").mkdir()
    write_image(tmp_path / "sub" / "0.png", np.zeros((8, 8, 3), np.uint8))
    source = open_source(str(tmp_path))
    assert isinstance(source, FolderSource)
    assert [f.ref for f in source] == ["a.PNG", "b.jpg", "c.bmp"]


def test_an_unreadable_image_in_a_folder_is_skipped_and_listed(tmp_path: Path) -> None:
    write_image(tmp_path / "good.png", np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 this is not really a jpeg")
    source = open_source(str(tmp_path))
    assert [f.ref for f in source] == ["good.png"]
    assert source.skipped[0][0] == "broken.jpg"
    assert "cannot read image" in source.skipped[0][1]


def test_a_folder_without_images_is_a_source_error(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(SourceError, match="holds no images"):
        open_source(str(tmp_path))


def test_a_missing_path_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file or folder"):
        open_source(str(tmp_path / "nowhere.mp4"))


def test_a_broken_image_file_is_a_source_error(tmp_path: Path) -> None:
    path = tmp_path / "label.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(SourceError, match=r"cannot read image .*label\.png"):
        open_source(str(path))


def test_a_video_is_its_frames_numbered_from_zero(small_video: Path) -> None:
    source = open_source(str(small_video))
    assert isinstance(source, VideoFileSource)
    frames = list(source)
    assert [f.ref for f in frames] == list(range(12))
    assert frames[0].image.shape == (720, 1280, 3)


def test_random_bytes_are_not_a_video(tmp_path: Path) -> None:
    path = tmp_path / "recording.avi"
    path.write_bytes(np.random.default_rng(1).bytes(50_000))
    with pytest.raises(SourceError, match="cannot open .*recording.avi as a video"):
        open_source(str(path))


def test_an_empty_file_is_not_a_video(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(SourceError, match="corrupt or truncated"):
        open_source(str(path))


def test_a_truncated_avi_gives_its_good_frames_then_a_clear_error(small_video: Path, tmp_path: Path) -> None:
    data = small_video.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    refs: list[object] = []
    with pytest.raises(SourceError, match=r"stopped decoding at frame \d+ of the 12 it declares.*truncated"):
        for frame in open_source(str(cut)):
            refs.append(frame.ref)
    assert 0 < len(refs) < 12


def test_a_truncated_mp4_cannot_be_opened(tmp_path: Path, texts: list[str]) -> None:
    from scanners.synth import moving_labels_frames, write_video

    frames = [f.image for f in moving_labels_frames([Placement(texts[1], (600, 300), 150)], 6)]
    path = write_video(tmp_path / "v.mp4", frames)
    assert len(list(open_source(str(path)))) == 6
    path.write_bytes(path.read_bytes()[:-4000])  # mp4v puts its index at the end
    with pytest.raises(SourceError, match="corrupt or truncated"):
        open_source(str(path))


def test_a_video_whose_frames_do_not_decode_is_a_source_error(small_video: Path, tmp_path: Path) -> None:
    data = bytearray(small_video.read_bytes())
    damaged = tmp_path / "damaged.avi"
    # keep the RIFF header, wipe everything after it: opens, but no frame decodes
    data[4096:] = np.random.default_rng(9).bytes(len(data) - 4096)
    damaged.write_bytes(bytes(data))
    with pytest.raises(SourceError, match="corrupt or truncated"):
        for _ in open_source(str(damaged)):
            pass


def test_a_camera_that_cannot_open_is_a_source_error() -> None:
    device = FakeDevice([FakeCapture(0, opened=False)])
    with pytest.raises(SourceError, match="cannot open camera 3"):
        open_source("3", open_capture=device)
    assert device.opened == [3]


def test_a_camera_gets_a_small_buffer_and_the_requested_resolution() -> None:
    device = FakeDevice([FakeCapture(2)])
    source = open_source("0", resolution=(1280, 720), open_capture=device)
    assert isinstance(source, LiveSource) and source.kind == "camera" and source.live
    source.close()
    settings = device.handed[0].settings
    assert settings[cv2.CAP_PROP_BUFFERSIZE] == 1
    assert (settings[cv2.CAP_PROP_FRAME_WIDTH], settings[cv2.CAP_PROP_FRAME_HEIGHT]) == (1280, 720)


def test_a_stream_that_dies_mid_session_is_lost_after_bounded_reconnects_with_backoff() -> None:
    device = FakeDevice([FakeCapture(5)])
    waits: list[float] = []
    source = open_source("rtsp://guard:s3cret@10.0.0.7/live", open_capture=device, sleep=waits.append)
    refs: list[object] = []
    with pytest.raises(SourceLost) as lost:
        for frame in source:
            refs.append(frame.ref)
    assert refs == [0, 1, 2, 3, 4]
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0]  # five attempts, doubling
    assert len(device.opened) == 1 + 5
    message = str(lost.value)
    assert "after frame 4" in message and "5 reconnect attempt(s) failed" in message
    assert "s3cret" not in message and "guard:***@10.0.0.7" in message
    assert all(c.released for c in device.handed)


def test_a_stream_that_comes_back_keeps_numbering_frames() -> None:
    device = FakeDevice([FakeCapture(3), FakeCapture(0, opened=False), FakeCapture(2)])
    waits: list[float] = []
    source = open_source("http://10.0.0.8/stream.mjpg", open_capture=device, sleep=waits.append)
    refs: list[object] = []
    with pytest.raises(SourceLost):
        for frame in source:
            refs.append(frame.ref)
    assert refs == [0, 1, 2, 3, 4]
    assert waits[:2] == [0.5, 1.0]


def test_a_camera_that_stops_is_lost() -> None:
    device = FakeDevice([FakeCapture(4)])
    with pytest.raises(SourceLost, match=r"camera 0 stopped delivering frames after frame 3; 2 reconnect"):
        for _ in open_source("0", open_capture=device, sleep=lambda s: None):
            pass


def test_resolution_text() -> None:
    assert parse_resolution("1920X1080") == (1920, 1080)
    for bad in ("1920", "x1080", "0x10", "axb"):
        with pytest.raises(ValueError):
            parse_resolution(bad)
