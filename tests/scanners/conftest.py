"""Factories for the scanner tests: signed label texts, synthetic frames and videos.
Plain helpers (fake capture devices, image writing) are in ``helpers.py``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from scanners.synth import (
    Placement,
    SynthFrame,
    background,
    label_texts,
    moving_labels_frames,
    multi_placements,
    place_label,
    write_video,
)


@pytest.fixture(scope="session")
def texts() -> list[str]:
    """Twenty real signed label texts (deterministic)."""
    return label_texts(20, seed=3)


@pytest.fixture
def make_frame() -> Callable[..., np.ndarray]:
    """``make_frame(placements, seed=0)``: a cluttered 1280x720 frame with those labels."""

    def make(placements: Sequence[Placement], seed: int = 0) -> np.ndarray:
        rng = np.random.default_rng([seed, 42])
        image = background(rng)
        for p in placements:
            place_label(image, p, rng)
        return image

    return make


@pytest.fixture(scope="session")
def make_video(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., tuple[Path, list[SynthFrame]]]:
    """``make_video(name, placements, n_frames=24, kind="clean", seed=0)``: an MJPG .avi
    of the labels sliding into view, and the ground-truth frames. Cached per name."""
    cache: dict[str, tuple[Path, list[SynthFrame]]] = {}
    folder = tmp_path_factory.mktemp("videos")

    def make(name: str, placements: Sequence[Placement], n_frames: int = 24, kind: str = "clean",
             seed: int = 0) -> tuple[Path, list[SynthFrame]]:
        if name not in cache:
            frames = list(moving_labels_frames(placements, n_frames, seed=seed, enter_frames=n_frames // 2, kind=kind))
            path = write_video(folder / f"{name}.avi", [f.image for f in frames], fps=15)
            cache[name] = (path, frames)
        return cache[name]

    return make


@pytest.fixture
def multi_labels(texts: list[str]) -> Callable[[int, int], list[Placement]]:
    """``multi_labels(n, seed)``: ``n`` non-overlapping label placements."""

    def make(n: int, seed: int = 0) -> list[Placement]:
        return multi_placements(texts[:n], np.random.default_rng([seed, 5]))

    return make
