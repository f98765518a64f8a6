"""Helpers for the scanner tests: a fake capture device, image writing."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

PARCEL_QR = "SF1400123456789"  # a courier's tracking number: a QR code that is not ours


def write_image(path: Path, image: np.ndarray) -> Path:
    ok, data = cv2.imencode(path.suffix, image)
    assert ok
    path.write_bytes(data.tobytes())
    return path


class FakeCapture:
    """A capture device that delivers ``frames`` frames, then fails every read."""

    def __init__(self, frames: int, opened: bool = True, size: tuple[int, int] = (64, 48)):
        self.frames = frames
        self.opened = opened
        self.delivered = 0
        self.settings: dict[int, float] = {}
        self.released = False
        self.image = np.full((size[1], size[0], 3), 200, np.uint8)

    def isOpened(self) -> bool:  # noqa: N802
        return self.opened and not self.released

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.released or self.delivered >= self.frames:
            return False, None
        self.delivered += 1
        return True, self.image

    def set(self, prop: int, value: float) -> bool:
        self.settings[prop] = value
        return True

    def get(self, prop: int) -> float:
        return 0.0

    def release(self) -> None:
        self.released = True


class FakeDevice:
    """``open_capture`` for a source: hands out the given captures in turn, then
    ones that cannot open; records every target opened."""

    def __init__(self, captures: Sequence[FakeCapture]):
        self.captures: Iterator[FakeCapture] = iter(captures)
        self.opened: list[str | int] = []
        self.handed: list[FakeCapture] = []

    def __call__(self, target: str | int) -> FakeCapture:
        self.opened.append(target)
        capture = next(self.captures, None) or FakeCapture(0, opened=False)
        self.handed.append(capture)
        return capture
