"""Frame sources: an image, a folder of images, a video file, a camera or a stream.

:func:`open_source` turns the ``--source`` text into a :class:`FrameSource`, an
iterable of :class:`Frame` (``ref``, BGR ``image``). ``ref`` names the frame as
the command line reports it: the image's file name for an image or a folder,
the frame number (from 0) for a video, a camera or a stream.

Failures are :class:`~custody.errors.SourceError` with a message that names the
source: a missing path, a file that is not an image or video, a corrupt or
truncated video (found when fewer frames decode than the file declares, after
the good frames were delivered), a camera that cannot be opened. A live camera
or stream that stops delivering is retried: reads are retried a few times, then
the device or URL is reopened with exponential backoff; when that fails too,
:class:`~custody.errors.SourceLost` says after which frame. Frames delivered
before an error stay valid; nothing is buffered beyond the frame being read.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from custody.errors import SourceError, SourceLost

# Our own messages say what went wrong with a source; FFmpeg's ("moov atom not
# found", "overread 8") and OpenCV's warnings would only repeat them in their
# words. FFmpeg reads this variable when the first capture opens.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pbm", ".pgm", ".ppm"})
STREAM_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://", "tcp://")
FrameRef = str | int


@dataclass(frozen=True)
class Frame:
    """One frame: ``ref`` (file name or frame number) and a BGR uint8 image."""

    ref: FrameRef
    image: np.ndarray


class Capture(Protocol):
    """The part of ``cv2.VideoCapture`` a source uses (tests pass fakes)."""

    def isOpened(self) -> bool: ...  # noqa: N802 (OpenCV's name)
    def read(self) -> tuple[bool, np.ndarray | None]: ...
    def set(self, prop: int, value: float) -> bool: ...
    def get(self, prop: int) -> float: ...
    def release(self) -> None: ...


OpenCapture = Callable[[str | int], Capture]


class FrameSource:
    """An iterable of frames; ``kind`` is image, folder, video, camera or stream.

    Use it once, as a context manager or by iterating to the end; ``close``
    releases the device.
    """

    kind: str = "source"
    live: bool = False

    def __init__(self, name: str):
        self.name = name
        #: files of a folder that could not be read, as (file name, reason)
        self.skipped: list[tuple[str, str]] = []

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the device or file; safe to call twice."""

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_image(path: Path) -> np.ndarray:
    """A BGR image from a file, or :class:`SourceError`. Works for any file name
    (``cv2.imread`` fails silently on some non-ASCII paths)."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise SourceError(f"cannot read image {path}: {exc.strerror or exc}") from None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise SourceError(f"cannot read image {path}: not an image OpenCV can decode ({data.size} bytes)")
    return image


class ImageSource(FrameSource):
    kind = "image"

    def __init__(self, path: Path):
        super().__init__(str(path))
        self.path = path
        self._image = read_image(path)  # fail at open, not mid-run

    def __iter__(self) -> Iterator[Frame]:
        yield Frame(self.path.name, self._image)


class FolderSource(FrameSource):
    """The images of a folder (not its subfolders), in file-name order. A file that
    has an image extension but cannot be decoded is skipped and listed in
    ``skipped``: one bad photo must not hide the rest."""

    kind = "folder"

    def __init__(self, path: Path):
        super().__init__(str(path))
        self.path = path
        self.files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not self.files:
            raise SourceError(
                f"folder {path} holds no images (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})")

    def __iter__(self) -> Iterator[Frame]:
        for file in self.files:
            try:
                image = read_image(file)
            except SourceError as exc:
                self.skipped.append((file.name, str(exc)))
                continue
            yield Frame(file.name, image)


#: A stream that does not answer within this is treated as down (FFmpeg's own
#: default waits 30 s or more, which freezes a station).
STREAM_TIMEOUT_MS = 5000


def _open_cv_capture(target: str | int) -> Capture:
    if isinstance(target, int):
        return cv2.VideoCapture(target)
    if target.lower().startswith(STREAM_SCHEMES):
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, STREAM_TIMEOUT_MS]
        return cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)
    return cv2.VideoCapture(target, cv2.CAP_FFMPEG)


class VideoFileSource(FrameSource):
    """Frames of a video file, numbered from 0.

    A file whose container declares N frames but whose frames stop decoding
    before about N raises :class:`SourceError` ("truncated or corrupt") after
    the good frames were delivered, so a damaged recording never passes for a
    short one.
    """

    kind = "video"

    def __init__(self, path: Path, open_capture: OpenCapture | None = None):
        super().__init__(str(path))
        self.path = path
        self._cap = (open_capture or _open_cv_capture)(str(path))
        if not self._cap.isOpened():
            self._cap.release()
            raise SourceError(
                f"cannot open {path} as a video: it is not a format OpenCV/FFmpeg can read, or the file is "
                f"corrupt or truncated ({path.stat().st_size} bytes)")
        self.declared_frames = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)

    def __iter__(self) -> Iterator[Frame]:
        number = 0
        try:
            while True:
                ok, image = self._cap.read()
                if not ok or image is None:
                    break
                yield Frame(number, image)
                number += 1
        finally:
            self.close()
        if number == 0:
            raise SourceError(f"video {self.path} has no frame that can be decoded: the file is corrupt or truncated")
        # container frame counts can be estimates off by a frame or two
        if self.declared_frames and number < self.declared_frames - max(2, self.declared_frames // 50):
            raise SourceError(
                f"video {self.path} stopped decoding at frame {number} of the {self.declared_frames} it declares: "
                f"the file is truncated or corrupt (frames 0-{number - 1} were read)")

    def close(self) -> None:
        self._cap.release()


class LiveSource(FrameSource):
    """A camera (index) or a network stream (URL), numbered from 0 across reconnects.

    A small capture buffer keeps the frame handed out close to "now". When a
    read fails, it is retried ``read_retries`` times; then the capture is
    reopened up to ``reconnects`` times, waiting ``backoff``, 2x``backoff``, ...
    (at most ``max_backoff``) between attempts. When all fail,
    :class:`SourceLost` names the last frame delivered.
    """

    live = True

    def __init__(
        self,
        target: str | int,
        *,
        resolution: tuple[int, int] | None = None,
        reconnects: int = 5,
        read_retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        open_capture: OpenCapture | None = None,
        sleep: Callable[[float], None] | None = None,
    ):
        super().__init__(str(target))
        self.kind = "camera" if isinstance(target, int) else "stream"
        self.target = target
        self.resolution = resolution
        self.reconnects = reconnects
        self.read_retries = read_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._open_capture = open_capture or _open_cv_capture
        self._sleep = sleep or time.sleep
        self._cap: Capture | None = self._open()
        if self._cap is None:
            what = self._what()
            hint = ("is it connected, and not in use by another program?" if self.kind == "camera"
                    else "is the address right and the camera reachable?")
            raise SourceError(f"cannot open {what}: {hint}")

    def _what(self) -> str:
        return f"camera {self.target}" if self.kind == "camera" else f"stream {_redact(str(self.target))}"

    def _open(self) -> Capture | None:
        cap = self._open_capture(self.target)
        if not cap.isOpened():
            cap.release()
            return None
        # one buffered frame: decode what the camera sees now, not a queue of the past
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        if self.resolution is not None:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.resolution[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.resolution[1])
        return cap

    def _read(self) -> np.ndarray | None:
        if self._cap is None:
            return None
        for _ in range(self.read_retries):
            ok, image = self._cap.read()
            if ok and image is not None:
                return image
        return None

    def _reconnect(self) -> bool:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        delay = self.backoff
        for _ in range(self.reconnects):
            self._sleep(delay)
            self._cap = self._open()
            if self._cap is not None:
                return True
            delay = min(self.max_backoff, delay * 2)
        return False

    def __iter__(self) -> Iterator[Frame]:
        number = 0
        try:
            while True:
                image = self._read()
                if image is None:
                    if not self._reconnect() or (image := self._read()) is None:
                        what = self._what()
                        after = f"after frame {number - 1}" if number else "before the first frame"
                        raise SourceLost(
                            f"{what} stopped delivering frames {after}; "
                            f"{self.reconnects} reconnect attempt(s) failed")
                yield Frame(number, image)
                number += 1
        finally:
            self.close()

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def _redact(url: str) -> str:
    """A stream URL without its password (rtsp://user:secret@host/ -> rtsp://user:***@host/)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    credentials, at, host = rest.partition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url


def parse_resolution(text: str) -> tuple[int, int]:
    """``1280x720`` -> (1280, 720); ``ValueError`` otherwise."""
    width, sep, height = text.lower().partition("x")
    if not (sep and width.isdigit() and height.isdigit() and int(width) > 0 and int(height) > 0):
        raise ValueError(f"a resolution is WIDTHxHEIGHT, e.g. 1280x720, not {text!r}")
    return int(width), int(height)


def open_source(
    src: str,
    *,
    resolution: tuple[int, int] | None = None,
    reconnects: int | None = None,
    open_capture: OpenCapture | None = None,
    sleep: Callable[[float], None] | None = None,
) -> FrameSource:
    """The frame source that ``src`` names, opened, or :class:`SourceError`.

    - a digit string (``"0"``, ``"1"``): that camera;
    - an ``rtsp://``, ``http(s)://`` ... URL: a network stream;
    - a folder: its images (by extension), in name order;
    - a file with an image extension: that image;
    - any other file: a video.

    ``resolution`` is requested from cameras and streams (they may ignore it).
    ``reconnects`` bounds how often a live source is reopened (default: 2 for a
    camera, which rarely comes back, and 5 for a stream). ``open_capture``
    (default ``cv2.VideoCapture``) and ``sleep`` are for tests.
    """
    src = src.strip()
    if not src:
        raise SourceError("no source given: name a camera index, a video or image file, a folder or a stream URL")
    if src.isdigit():
        return LiveSource(int(src), resolution=resolution, reconnects=2 if reconnects is None else reconnects,
                          open_capture=open_capture, sleep=sleep)
    if src.lower().startswith(STREAM_SCHEMES):
        return LiveSource(src, resolution=resolution, reconnects=5 if reconnects is None else reconnects,
                          open_capture=open_capture, sleep=sleep)
    path = Path(src)
    if path.is_dir():
        return FolderSource(path)
    if not path.exists():
        raise SourceError(f"no such file or folder: {src}")
    if not path.is_file():
        raise SourceError(f"{src} is neither a file nor a folder")
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return ImageSource(path)
    return VideoFileSource(path, open_capture=open_capture)
