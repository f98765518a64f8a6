"""Cameras and QR decoding: frames in, label texts out.

- :mod:`scanners.capture`: :func:`open_source` for a camera, stream, video
  file, image or folder, yielding :class:`Frame` s;
- :mod:`scanners.decode`: :class:`Decoder` (zxing-cpp and pyzbar behind one
  interface, the measured default cascade), sharpness, :class:`Deduplicator`;
- :mod:`scanners.synth`: deterministic degraded frames for tests and the bench.

This package may use OpenCV, pyzbar and zxing-cpp; ``custody/`` never does.
Texts read here are not verified: pass them to :func:`custody.labels.verify_label`.
"""

from scanners.capture import Frame, FrameSource, open_source
from scanners.decode import (
    Decoder,
    Deduplicator,
    FrameResult,
    Reading,
    Sighting,
    default_decoder,
    make_decoder,
    sharpness,
)

__all__ = [
    "Decoder",
    "Deduplicator",
    "Frame",
    "FrameResult",
    "FrameSource",
    "Reading",
    "Sighting",
    "default_decoder",
    "make_decoder",
    "open_source",
    "sharpness",
]
