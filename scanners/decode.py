"""QR decoding of camera frames: backends, the default cascade, sharpness, de-duplication.

A :class:`Decoder` turns one frame into a :class:`FrameResult`: every QR symbol
read in it (a :class:`Reading`: text, the symbol's four corners in frame
pixels, the backend that read it), the symbols it located but could not read,
and how sharp the frame is (``blurred`` is the UI's cue to say 请保持稳定,
"hold still"). The texts are not verified here; that is
:func:`custody.labels.verify_label`'s job.

A decoder is a list of :class:`Pass` es run in order: a backend (zxing-cpp or
pyzbar) applied, after an optional :class:`Enhancement`, to the whole frame or
only to the crops around symbols an earlier pass located but could not read.
The numbers behind :func:`default_decoder` are in its docstring and come from
``bench/decode.py``.

:class:`Deduplicator` reports each distinct text once over a run of frames
(first frame, last frame, number of frames): a station counts bags with it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from scanners.capture import FrameRef

Point = tuple[float, float]
Polygon = tuple[Point, Point, Point, Point]


@dataclass(frozen=True)
class Reading:
    """A decoded QR symbol: its text, its corners in frame pixels (clockwise from the
    symbol's top-left where the backend knows it), and which backend read it;
    ``stage`` names the decoder pass (``frame``, ``unread:threshold``, ...)."""

    text: str
    polygon: Polygon
    backend: str
    stage: str = "frame"

    @property
    def center(self) -> Point:
        return _center(self.polygon)


@dataclass(frozen=True)
class FrameResult:
    """What a decoder found in one frame.

    ``readings`` holds each symbol once (the same text at two places in a frame
    is two readings: two bags, or a copied label). ``unread`` are symbols that
    were located but could not be decoded (glare, blur, damage). ``sharpness``
    is :func:`sharpness` of the frame and ``blurred`` says it is below the
    decoder's threshold.
    """

    readings: tuple[Reading, ...]
    sharpness: float
    blurred: bool
    unread: tuple[Polygon, ...] = ()

    @property
    def texts(self) -> set[str]:
        return {r.text for r in self.readings}


# --- geometry and images --------------------------------------------------------


def _center(polygon: Sequence[Point]) -> Point:
    return (sum(p[0] for p in polygon) / len(polygon), sum(p[1] for p in polygon) / len(polygon))


def _size(polygon: Sequence[Point]) -> float:
    xs, ys = [p[0] for p in polygon], [p[1] for p in polygon]
    return max(max(xs) - min(xs), max(ys) - min(ys), 1.0)


def _contains(polygon: Sequence[Point], point: Point) -> bool:
    contour = np.array(polygon, np.float32).reshape(-1, 1, 2)
    return bool(cv2.pointPolygonTest(contour, (float(point[0]), float(point[1])), False) >= 0)


def _same_symbol(a: Sequence[Point], b: Sequence[Point]) -> bool:
    (ax, ay), (bx, by) = _center(a), _center(b)
    return math.hypot(ax - bx, ay - by) < 0.4 * min(_size(a), _size(b)) or _contains(a, (bx, by))


def to_gray(image: np.ndarray) -> np.ndarray:
    """8-bit single-channel copy of a BGR, BGRA or grey frame.

    pyzbar reads only the first channel of a colour array (the blue one); a
    blue-ish label then loses its contrast, so every backend is given grey.
    """
    if image.ndim == 2:
        return image if image.dtype == np.uint8 else cv2.convertScaleAbs(image)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    if image.shape[2] == 1:
        return image[:, :, 0]
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


SHARPNESS_WIDTH = 640


def sharpness(gray: np.ndarray) -> float:
    """How much fine detail the frame has relative to its contrast.

    The variance of the Laplacian of the grey frame downscaled to 640 pixels
    wide, divided by the variance of that image, times 100. Downscaling makes it
    cheap (about 1 ms at 1280x720) and less sensitive to sensor noise; dividing
    by the image's variance makes a dim frame as sharp as a bright one of the
    same scene. Measured on 80 synthetic frames a class: with the raw Laplacian
    variance, a threshold that flags 2% of the sharp frames flags 1% of the
    blurred ones (dim frames score lower than blurred ones); with this ratio
    the same 2% flags 99%.
    """
    h, w = gray.shape[:2]
    small = cv2.resize(gray, (SHARPNESS_WIDTH, max(1, round(h * SHARPNESS_WIDTH / w))),
                       interpolation=cv2.INTER_AREA) if w > SHARPNESS_WIDTH else gray
    lap = cv2.Laplacian(small, cv2.CV_32F)
    _, lap_std = cv2.meanStdDev(lap)
    _, std = cv2.meanStdDev(small)
    return float(100.0 * lap_std[0, 0] ** 2 / (std[0, 0] ** 2 + 1.0))


# --- enhancements -----------------------------------------------------------------


@dataclass(frozen=True)
class Enhancement:
    """A grey-to-grey image transform tried before a backend; ``scale`` is how much
    it enlarges the image (to map corners back)."""

    name: str
    apply: Callable[[np.ndarray], np.ndarray]
    scale: float = 1.0


def _unsharp(gray: np.ndarray, sigma: float = 2.0, amount: float = 1.5) -> np.ndarray:
    return cv2.addWeighted(gray, 1 + amount, cv2.GaussianBlur(gray, (0, 0), sigma), -amount, 0)


def _upscale(gray: np.ndarray) -> np.ndarray:
    return cv2.resize(gray, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)


def _threshold(gray: np.ndarray) -> np.ndarray:
    # local mean threshold: sees modules through a glare gradient that fools a global one
    block = max(15, (min(gray.shape[:2]) // 10) | 1)
    return cv2.adaptiveThreshold(gray, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, block, 5)


def _clahe(gray: np.ndarray) -> np.ndarray:
    return cv2.createCLAHE(clipLimit=3.0, tileGridSize=(8, 8)).apply(gray)


PLAIN = Enhancement("plain", lambda g: g)
ENHANCEMENTS: dict[str, Enhancement] = {
    e.name: e
    for e in (
        PLAIN,
        Enhancement("unsharp", _unsharp),
        Enhancement("upscale", _upscale, 2.0),
        Enhancement("upscale-unsharp", lambda g: _unsharp(_upscale(g), 3.0, 1.5), 2.0),
        Enhancement("threshold", _threshold),
        Enhancement("unsharp-threshold", lambda g: _threshold(_unsharp(g))),
        Enhancement("clahe", _clahe),
    )
}


# --- backends -----------------------------------------------------------------------


class Backend:
    """One QR library. ``read`` takes a grey uint8 image and returns the decoded
    symbols and the polygons of symbols located but not decoded."""

    name = "backend"

    def read(self, gray: np.ndarray) -> tuple[list[tuple[str, Polygon]], list[Polygon]]:
        raise NotImplementedError


class ZxingCpp(Backend):
    """zxing-cpp, QR Code only. Single-threaded; reports located-but-unreadable
    symbols (``return_errors``), which the cascade retries on crops."""

    name = "zxing-cpp"

    def __init__(self, *, try_invert: bool = True, try_downscale: bool = True):
        import zxingcpp

        self._zx = zxingcpp
        self._formats = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
        self.try_invert = try_invert
        self.try_downscale = try_downscale

    def read(self, gray: np.ndarray) -> tuple[list[tuple[str, Polygon]], list[Polygon]]:
        found: list[tuple[str, Polygon]] = []
        failed: list[Polygon] = []
        results = self._zx.read_barcodes(
            np.ascontiguousarray(gray), formats=self._formats, try_invert=self.try_invert,
            try_downscale=self.try_downscale, return_errors=True)
        for b in results:
            p = b.position
            polygon: Polygon = ((p.top_left.x, p.top_left.y), (p.top_right.x, p.top_right.y),
                                (p.bottom_right.x, p.bottom_right.y), (p.bottom_left.x, p.bottom_left.y))
            if b.valid:
                found.append((b.text, polygon))
            else:
                failed.append(polygon)
        return found, failed


class Pyzbar(Backend):
    """ZBar through pyzbar, restricted to QR Code (its 1D scanners would waste time
    and report parcel barcodes). Given grey only: see :func:`to_gray`."""

    name = "pyzbar"

    def __init__(self) -> None:
        from pyzbar import pyzbar

        self._decode = pyzbar.decode
        self._symbols = [pyzbar.ZBarSymbol.QRCODE]

    def read(self, gray: np.ndarray) -> tuple[list[tuple[str, Polygon]], list[Polygon]]:
        found: list[tuple[str, Polygon]] = []
        for d in self._decode(np.ascontiguousarray(gray), symbols=self._symbols):
            points = [(float(p.x), float(p.y)) for p in d.polygon]
            if len(points) != 4:
                box = cv2.boxPoints(cv2.minAreaRect(np.array(points or [(0, 0)], np.float32)))
                points = [(float(x), float(y)) for x, y in box]
            found.append((d.data.decode("utf-8", errors="replace"), tuple(points)))  # type: ignore[arg-type]
        return found, []


BACKENDS: dict[str, Callable[[], Backend]] = {"zxing-cpp": ZxingCpp, "pyzbar": Pyzbar}


# --- the decoder ----------------------------------------------------------------------


@dataclass(frozen=True)
class Pass:
    """Run ``backend`` on the ``enhancement`` of the whole frame (``scope="frame"``)
    or of a crop around each symbol located but not yet read (``scope="unread"``)."""

    backend: Backend
    enhancement: Enhancement = PLAIN
    scope: str = "frame"

    @property
    def name(self) -> str:
        return f"{self.scope}:{self.backend.name}:{self.enhancement.name}"


#: Below this :func:`sharpness` a frame is flagged ``blurred``. On the bench set
#: (seed 0) it flags 95.5% of the blur class and 0.8% of the other frames.
SHARPNESS_THRESHOLD = 45.0


@dataclass
class Decoder:
    """Runs its passes over a frame; see the module docstring.

    ``blurred_passes`` is how many passes a blurred frame gets (``None``: all).
    """

    passes: Sequence[Pass]
    sharpness_threshold: float = SHARPNESS_THRESHOLD
    blurred_passes: int | None = None
    crop_margin: float = 0.3
    name: str = field(default="custom")

    def decode(self, image: np.ndarray) -> FrameResult:
        gray = to_gray(image)
        sharp = sharpness(gray)
        blurred = sharp < self.sharpness_threshold
        passes = self.passes if not blurred or self.blurred_passes is None else self.passes[: self.blurred_passes]
        readings: list[Reading] = []
        unread: list[Polygon] = []

        def add(text: str, polygon: Polygon, p: Pass) -> None:
            if not any(r.text == text and _same_symbol(r.polygon, polygon) for r in readings):
                readings.append(Reading(text, polygon, p.backend.name, p.name))

        def note_unread(polygon: Polygon) -> None:
            if not any(_same_symbol(u, polygon) for u in unread):
                unread.append(polygon)

        for p in passes:
            if p.scope == "frame":
                found, failed = p.backend.read(p.enhancement.apply(gray))
                for text, polygon in found:
                    add(text, _scaled(polygon, p.enhancement.scale, 0, 0), p)
                for polygon in failed:
                    note_unread(_scaled(polygon, p.enhancement.scale, 0, 0))
                continue
            for polygon in list(unread):
                if any(_contains(r.polygon, _center(polygon)) for r in readings):
                    continue
                x0, y0, crop = self._crop(gray, polygon)
                found, _ = p.backend.read(p.enhancement.apply(crop))
                for text, found_polygon in found:
                    add(text, _scaled(found_polygon, p.enhancement.scale, x0, y0), p)
        still_unread = tuple(u for u in unread if not any(_contains(r.polygon, _center(u)) for r in readings))
        return FrameResult(tuple(readings), sharp, blurred, still_unread)

    def _crop(self, gray: np.ndarray, polygon: Polygon) -> tuple[int, int, np.ndarray]:
        h, w = gray.shape[:2]
        xs, ys = [p[0] for p in polygon], [p[1] for p in polygon]
        pad = self.crop_margin * _size(polygon) + 8
        x0, y0 = max(0, int(min(xs) - pad)), max(0, int(min(ys) - pad))
        x1, y1 = min(w, int(max(xs) + pad) + 1), min(h, int(max(ys) + pad) + 1)
        return x0, y0, gray[y0:y1, x0:x1]


def _scaled(polygon: Polygon, scale: float, x0: int, y0: int) -> Polygon:
    return tuple((x / scale + x0, y / scale + y0) for x, y in polygon)  # type: ignore[return-value]


def single_backend_decoder(name: str) -> Decoder:
    """One backend, one pass over the plain grey frame (the bench's baselines)."""
    return Decoder([Pass(BACKENDS[name]())], name=name)


def default_decoder() -> Decoder:
    """zxing-cpp on the frame and on the frame upscaled 2x, then retries on crops
    around every symbol located but not read.

    Why, measured with bench/decode.py (seed 1 for tuning, 200 frames a class of
    blur, glare, small and tilt; one core):

    - zxing-cpp alone reads 80.5% of those labels at 1.9 ms a 1280x720 frame;
      pyzbar alone 71.2% at 19.4 ms, and adding pyzbar on the whole frame after
      zxing-cpp (83.5%) costs 10x the time for less than the crop retries give.
    - Crop retries (zxing-cpp on an unsharp-masked, locally thresholded crop,
      then pyzbar on the same, then zxing-cpp on the crop upscaled and
      sharpened) lift it to 87.5% at 2.2 ms: glare 63% -> 79.5%, blur 79.5% ->
      84%. They cost nothing on a frame where every located symbol was read.
      Of the labels they recover, pyzbar adds about 1 in 800 on top of
      zxing-cpp: a second binariser for damaged symbols, kept as it is free.
    - The 2x upscaled frame pass lifts it to 89.3% at 7.0 ms (small 99% ->
      100%, blur 84% -> 86%, glare -> 82%): symbols of 1.6 px a module are
      found reliably only when upscaled. Further whole-frame passes (unsharp,
      CLAHE, upscale+unsharp) add at most 0.5% for 4-8 ms more each.

    On the full bench (seed 0, 200 frames a class) it reads 98.4% of all
    labels (zxing-cpp alone 97.0%, pyzbar alone 94.7%) at 7.3 ms of CPU a
    single-label frame, 137 frames/s on one core. So a blurred frame gets
    every pass too: that reads 86.5% of the blur class at 6.0 ms, the first
    pass alone 79.5% at 1.5 ms, and skipping reads nothing.
    """
    zxing = ZxingCpp()
    pyzbar = Pyzbar()
    unsharp_threshold = ENHANCEMENTS["unsharp-threshold"]
    return Decoder(
        [
            Pass(zxing),
            Pass(zxing, ENHANCEMENTS["upscale"]),
            Pass(zxing, unsharp_threshold, "unread"),
            Pass(pyzbar, unsharp_threshold, "unread"),
            Pass(zxing, ENHANCEMENTS["upscale-unsharp"], "unread"),
        ],
        name="default",
    )


def make_decoder(name: str = "default") -> Decoder:
    """``default``, ``zxing-cpp`` or ``pyzbar``."""
    if name == "default":
        return default_decoder()
    if name in BACKENDS:
        return single_backend_decoder(name)
    raise ValueError(f"unknown decoder {name!r}; known: default, {', '.join(BACKENDS)}")


# --- de-duplication ---------------------------------------------------------------------


@dataclass
class Sighting:
    """One distinct text over a run of frames."""

    text: str
    first_frame: FrameRef
    last_frame: FrameRef
    frames: int
    first: Reading
    most_in_one_frame: int = 1

    @property
    def count(self) -> int:
        """Frames the text was read in."""
        return self.frames


class Deduplicator:
    """Reports each distinct text once across frames.

    ``add(frame_ref, readings)`` returns the sightings that are new with this
    frame; all sightings, in the order first seen, are ``sightings()``. The same
    text twice in one frame counts one frame but raises ``most_in_one_frame``
    (a copied label held next to the original).
    """

    def __init__(self) -> None:
        self._seen: dict[str, Sighting] = {}

    def add(self, ref: FrameRef, readings: Iterable[Reading]) -> list[Sighting]:
        new: list[Sighting] = []
        in_frame: dict[str, int] = {}
        for reading in readings:
            in_frame[reading.text] = in_frame.get(reading.text, 0) + 1
            if in_frame[reading.text] > 1:
                continue
            sighting = self._seen.get(reading.text)
            if sighting is None:
                sighting = Sighting(reading.text, ref, ref, 1, reading)
                self._seen[reading.text] = sighting
                new.append(sighting)
            else:
                sighting.last_frame = ref
                sighting.frames += 1
        for text, n in in_frame.items():
            self._seen[text].most_in_one_frame = max(self._seen[text].most_in_one_frame, n)
        return new

    def sightings(self) -> list[Sighting]:
        return list(self._seen.values())

    def __len__(self) -> int:
        return len(self._seen)

    def __contains__(self, text: object) -> bool:
        return text in self._seen
