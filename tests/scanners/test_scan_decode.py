"""Decoding real frames: videos of labels moving into view, many labels, blur, de-duplication."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest

from custody.labels import parse_unverified_label
from scanners.capture import open_source
from scanners.decode import (
    Decoder,
    Deduplicator,
    Reading,
    default_decoder,
    make_decoder,
    sharpness,
    single_backend_decoder,
    to_gray,
)
from scanners.synth import Placement, SynthFrame, blur, degraded_frame, label_texts

MakeVideo = Callable[..., tuple[Path, list[SynthFrame]]]
MakeFrame = Callable[..., np.ndarray]


@pytest.fixture(scope="module")
def decoder() -> Decoder:
    return default_decoder()


def scan_video(path: Path, decoder: Decoder) -> Deduplicator:
    seen = Deduplicator()
    for frame in open_source(str(path)):
        seen.add(frame.ref, decoder.decode(frame.image).readings)
    return seen


def three_labels(texts: Sequence[str], **pose: float) -> list[Placement]:
    return [Placement(texts[0], (330, 200), 170, **pose), Placement(texts[1], (900, 220), 150, **pose),
            Placement(texts[2], (560, 540), 190, **pose)]


@pytest.mark.parametrize(
    ("name", "pose", "kind"),
    [
        ("upright", {"angle": 5.0}, "clean"),
        ("tilted", {"angle": -20.0, "tilt_x": 28.0, "tilt_y": -22.0}, "clean"),
        ("blurred", {"angle": 10.0}, "blur"),
        ("dim", {"angle": -8.0, "tilt_y": 15.0}, "lowlight"),
    ],
)
def test_labels_moving_into_view_are_all_found(
    make_video: MakeVideo, texts: list[str], decoder: Decoder, name: str, pose: dict[str, float], kind: str
) -> None:
    path, truth = make_video(name, three_labels(texts, **pose), n_frames=24, kind=kind)
    seen = scan_video(path, decoder)
    assert {s.text for s in seen.sightings()} == set(texts[:3])
    for sighting in seen.sightings():
        assert isinstance(sighting.first_frame, int)
        # not read before the label was wholly in view
        in_view = min(i for i, f in enumerate(truth) if sighting.text in f.texts)
        assert sighting.first_frame >= in_view - 1
        assert parse_unverified_label(sighting.text) is not None


@pytest.mark.parametrize("n", [6, 12])
def test_six_to_twelve_labels_in_a_frame_are_all_found_within_the_video(
    make_video: MakeVideo, multi_labels: Callable[[int, int], list[Placement]], texts: list[str],
    decoder: Decoder, n: int
) -> None:
    path, _ = make_video(f"multi{n}", multi_labels(n, n), n_frames=20)
    seen = scan_video(path, decoder)
    assert {s.text for s in seen.sightings()} == set(texts[:n])


def test_many_labels_in_one_still_frame_each_reading_has_its_polygon(texts: list[str]) -> None:
    frame = degraded_frame("multi", 3, texts)
    result = default_decoder().decode(frame.image)
    assert result.texts == frame.texts and len(frame.texts) >= 6
    truth = {label.text: np.array(label.polygon) for label in frame.labels}
    for reading in result.readings:
        assert len(reading.polygon) == 4
        centre = np.array(reading.polygon).mean(axis=0)
        assert np.linalg.norm(centre - truth[reading.text].mean(axis=0)) < 10


@pytest.mark.parametrize("backend", ["zxing-cpp", "pyzbar"])
def test_each_backend_reads_a_clean_frame(backend: str, texts: list[str]) -> None:
    frame = degraded_frame("clean", 1, texts)
    result = single_backend_decoder(backend).decode(frame.image)
    (reading,) = result.readings
    assert reading.text == frame.labels[0].text and reading.backend == backend
    centre = np.array(reading.polygon).mean(axis=0)
    assert np.linalg.norm(centre - np.array(frame.labels[0].polygon).mean(axis=0)) < 6


def test_pyzbar_is_given_grey_so_a_blue_label_is_read(make_frame: MakeFrame, texts: list[str]) -> None:
    from pyzbar import pyzbar

    image = make_frame([Placement(texts[4], (640, 360), 220)])
    # blue ink on the label: as bright as the paper in the blue channel, dark in red and green
    region = np.zeros(image.shape[:2], bool)
    region[150:570, 400:1000] = True
    ink = region & (to_gray(image) < 128)
    image[ink] = (int(image[region & ~ink, 0].mean()), 60, 20)
    assert pyzbar.decode(np.ascontiguousarray(image[:, :, 0])) == []  # what pyzbar would read of a colour array
    assert make_decoder("pyzbar").decode(image).texts == {texts[4]}


def test_the_default_reads_a_small_label_that_needs_upscaling(texts: list[str]) -> None:
    small = [degraded_frame("small", i, texts) for i in range(6)]
    decoder = default_decoder()
    assert all(decoder.decode(f.image).texts == f.texts for f in small)


def test_a_blurred_frame_is_flagged_and_a_sharp_one_is_not(make_frame: MakeFrame, texts: list[str]) -> None:
    sharp_image = make_frame([Placement(texts[5], (500, 330), 200, angle=4)])
    blurred_image = cv2.GaussianBlur(sharp_image, (0, 0), 2.5)
    decoder = default_decoder()
    sharp, blurred = decoder.decode(sharp_image), decoder.decode(blurred_image)
    assert not sharp.blurred and blurred.blurred
    assert blurred.sharpness < decoder.sharpness_threshold < sharp.sharpness
    assert sharp.texts == {texts[5]}


def test_sharpness_does_not_mistake_dim_for_blurred(make_frame: MakeFrame, texts: list[str]) -> None:
    image = make_frame([Placement(texts[6], (500, 330), 200)])
    dim = (image.astype(np.float32) * 0.25).astype(np.uint8)
    assert sharpness(to_gray(dim)) == pytest.approx(sharpness(to_gray(image)), rel=0.25)
    assert not default_decoder().decode(dim).blurred


def test_a_badly_blurred_label_is_not_read_and_the_frame_is_flagged(make_frame: MakeFrame, texts: list[str]) -> None:
    rng = np.random.default_rng(0)
    image = make_frame([Placement(texts[7], (640, 360), 260)])
    for _ in range(3):
        image = blur(image, rng)
    result = default_decoder().decode(cv2.GaussianBlur(image, (0, 0), 3.2))
    assert result.blurred and result.readings == ()


def test_non_custody_codes_are_decoded_too(make_frame: MakeFrame, texts: list[str]) -> None:
    from tests.scanners.helpers import PARCEL_QR

    image = make_frame([Placement(PARCEL_QR, (400, 360), 160), Placement(texts[8], (900, 360), 180)])
    result = default_decoder().decode(image)
    assert result.texts == {PARCEL_QR, texts[8]}


def test_two_copies_of_one_label_in_a_frame_are_two_readings(make_frame: MakeFrame, texts: list[str]) -> None:
    image = make_frame([Placement(texts[9], (300, 360), 180), Placement(texts[9], (900, 360), 180)])
    result = default_decoder().decode(image)
    assert [r.text for r in result.readings] == [texts[9], texts[9]]
    seen = Deduplicator()
    (sighting,) = seen.add("copy.jpg", result.readings)
    assert sighting.most_in_one_frame == 2 and sighting.count == 1


def test_deduplicator_reports_each_text_once_with_first_last_and_count() -> None:
    square = ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0))
    a, b = Reading("A", square, "zxing-cpp"), Reading("B", square, "pyzbar")
    seen = Deduplicator()
    assert [s.text for s in seen.add(0, [a])] == ["A"]
    assert [s.text for s in seen.add(1, [a, b])] == ["B"]
    assert seen.add(2, []) == []
    assert seen.add(3, [b]) == []
    assert len(seen) == 2 and "A" in seen and "C" not in seen
    first, second = seen.sightings()
    assert (first.text, first.first_frame, first.last_frame, first.count) == ("A", 0, 1, 2)
    assert (second.text, second.first_frame, second.last_frame, second.count) == ("B", 1, 3, 2)
    assert second.first.backend == "pyzbar"


def test_unknown_decoder_name() -> None:
    with pytest.raises(ValueError, match="unknown decoder"):
        make_decoder("opencv")


def test_synthetic_frames_are_deterministic() -> None:
    texts = label_texts(3, seed=11)
    assert texts == label_texts(3, seed=11)
    a, b = degraded_frame("glare", 2, texts, seed=11), degraded_frame("glare", 2, texts, seed=11)
    assert np.array_equal(a.image, b.image) and a.labels == b.labels
    assert not np.array_equal(a.image, degraded_frame("glare", 3, texts, seed=11).image)
