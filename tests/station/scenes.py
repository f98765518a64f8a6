"""Generated handover videos for the station tests: real labels and badges of the tiny exam, on cluttered
backgrounds, sliding into view, tilted, blurred and dim, 6 to 12 labels a frame (scanners.synth)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from custody.labels import Signer, issue_label, parse_unverified_label
from scanners.decode import Reading
from scanners.synth import SynthFrame, moving_labels_frames, multi_placements, synth_signer, write_video

PARCEL_QR = "SF1400123456789"  # a courier's tracking number: a QR code that is not ours

#: What the county 360102 receives from the city 3601 in the tiny exam: six boxes for its site, six backup papers.
COUNTY_RECEIVES = ["YW-X-K001", "YW-B-360102", "WL-X-K001", "WL-B-360102", "SX-X-K001", "SX-B-360102",
                   "HX-X-K001", "HX-B-360102", "YY-X-K001", "YY-B-360102", "ZL-X-K001", "ZL-B-360102"]
#: The city's two escorts hand over, the county's two officers receive (双人).
CITY_TO_COUNTY_PEOPLE = ["3601-S1", "3601-S2", "360102-S1", "360102-S2"]


def readings(texts: Sequence[str]) -> list[Reading]:
    """Decoded readings of ``texts`` side by side, as a decoder would give them (for tests that need no video)."""
    return [Reading(t, ((200.0 * n, 0.0), (200.0 * n + 150, 0.0), (200.0 * n + 150, 150.0), (200.0 * n, 150.0)),
                    "test") for n, t in enumerate(texts)]


def forged(text: str) -> str:
    """The label with its count changed, re-signed by a key that is not the institute's but claims its key id."""
    label = parse_unverified_label(text)
    assert label is not None
    other, _ = synth_signer(99)
    payload = replace(label.payload, count=label.payload.count + 5)
    return issue_label(payload, Signer(label.kid, other.sign))


def scene(texts: Sequence[str], *, seed: int, frames: int = 10, kind: str = "clean") -> list[SynthFrame]:
    """``texts`` (6 to 12) sliding in from the left over half the frames, then held (with hand jitter)."""
    placements = multi_placements(list(texts), np.random.default_rng([seed, 5]))
    return list(moving_labels_frames(placements, frames, seed=seed, enter_frames=max(1, frames // 2), kind=kind))


def handover_video(path: Path, scenes: Sequence[list[SynthFrame]], fps: float = 15.0) -> Path:
    return write_video(path, [f.image for s in scenes for f in s], fps=fps)
