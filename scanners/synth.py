"""Deterministic synthetic camera frames of custody labels, for tests and the bench.

Every frame is a function of ``(seed, class, index)`` only: the same arguments
give the same pixels on every run and machine (NumPy's PCG64 and OpenCV's
deterministic filters), so a failing case can be named and replayed.

A frame is a 1280x720 BGR image: a cluttered background (gradients, shapes,
lines, Latin text, noise), one or more printed label cards (a real label QR
from :func:`printing.qr.qr_image`, a white margin, text-like lines) seen through
a pinhole camera, then the degradation of its class:

==========  ===================================================================
class       what is done
==========  ===================================================================
clean       QR 150-300 px wide, facing the camera, mild sensor noise
small       QR 80-130 px wide (1.6-2.7 px a module for a version-8 label)
tilt        out-of-plane tilt of 15-40 degrees in a random direction
rotation    in-plane rotation by any angle
blur        Gaussian (sigma 1.0-2.2) or motion blur (4-10 px) of the frame
jpeg        JPEG at quality 20-40
lowlight    brightness x0.15-0.35, then sensor noise (sigma 3-6)
glare       a saturated specular blob covering part of the code
multi       6 to 12 labels in one frame, QR 110-150 px, none overlapping
==========  ===================================================================

The labels are signed with a key derived from the seed; they are real
``CUS1:`` texts that :func:`custody.labels.parse_unverified_label` accepts.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody.errors import MalformedLabel
from custody.keyring import key_id
from custody.labels import ItemKind, LabelPayload, Signer, issue_label, parse_unverified_label
from printing.qr import qr_image

FRAME_SIZE = (1280, 720)  # width, height
FOCAL_PX = 1000.0  # a 720p webcam with about 65 degrees of horizontal view
CLASSES = ("clean", "small", "tilt", "rotation", "blur", "jpeg", "lowlight", "glare", "multi")
QR_BORDER = 4  # quiet zone in modules, as printed

Polygon = tuple[tuple[float, float], tuple[float, float], tuple[float, float], tuple[float, float]]
Rng = np.random.Generator


# --- labels -----------------------------------------------------------------

SUBJECTS = ("YW", "SX", "YY", "WL", "HX", "ZZ", "LS")
KIND_LETTERS = {ItemKind.PAPER_BUNDLE: "P", ItemKind.ANSWER_CARD_BUNDLE: "C", ItemKind.BACKUP_PAPER: "B"}


def synth_signer(seed: int = 0) -> tuple[Signer, bytes]:
    """A label signer from a key derived from ``seed``, and its raw public key."""
    private = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"custody-synth-{seed}".encode()).digest())
    public_raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return Signer(key_id(public_raw), private.sign), public_raw


def label_texts(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct signed label texts of realistic items (Ed25519 is deterministic)."""
    signer, _ = synth_signer(seed)
    rng = np.random.default_rng([seed, 7919])
    kinds = list(KIND_LETTERS)
    texts = []
    for i in range(n):
        subject = SUBJECTS[i % len(SUBJECTS)]
        kind = kinds[int(rng.integers(len(kinds)))]
        site = f"K{int(rng.integers(1, 60)):03d}"
        room = i // len(SUBJECTS) + 1
        payload = LabelPayload(
            item_id=f"{subject}-{KIND_LETTERS[kind]}-{site}-{room:02d}",
            kind=kind,
            exam="zk2017",
            subject=subject,
            destination=site,
            count=int(rng.integers(25, 36)),
            issued_at=datetime(2017, 6, 10, 8, 0, int(rng.integers(60)), tzinfo=UTC),
            seal=f"FT17{int(rng.integers(100000)):05d}",
        )
        texts.append(issue_label(payload, signer))
    return texts


# --- drawing ----------------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    """Where a label is held: the QR's centre in the frame, its width when facing
    the camera, in-plane rotation and out-of-plane tilt (degrees)."""

    text: str
    center: tuple[float, float]
    qr_width: float
    angle: float = 0.0
    tilt_x: float = 0.0
    tilt_y: float = 0.0
    text_width: float = 0.8  # width of the card's text column, in QR widths


@dataclass(frozen=True)
class PlacedLabel:
    """Ground truth: a label's text and the QR symbol's corners in the frame
    (top-left, top-right, bottom-right, bottom-left of the symbol as printed)."""

    text: str
    polygon: Polygon


@dataclass(frozen=True)
class SynthFrame:
    image: np.ndarray
    labels: tuple[PlacedLabel, ...]
    kind: str
    index: int

    @property
    def texts(self) -> set[str]:
        return {label.text for label in self.labels}


def background(rng: Rng, size: tuple[int, int] = FRAME_SIZE) -> np.ndarray:
    """A cluttered BGR scene: gradient, shapes, lines, Latin text, fine texture."""
    w, h = size
    corners = rng.uniform(40, 200, (2, 2, 3)).astype(np.float32)
    img = cv2.resize(corners, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.uint8)
    for _ in range(int(rng.integers(25, 45))):
        color = tuple(int(v) for v in rng.integers(0, 256, 3))
        shape = int(rng.integers(5))
        x, y = int(rng.integers(-100, w)), int(rng.integers(-100, h))
        if shape == 0:
            cv2.rectangle(img, (x, y), (x + int(rng.integers(20, 300)), y + int(rng.integers(20, 200))), color, -1)
        elif shape == 1:
            thickness = -1 if rng.random() < 0.6 else int(rng.integers(1, 6))
            cv2.circle(img, (x, y), int(rng.integers(10, 120)), color, thickness)
        elif shape == 2:
            cv2.line(img, (x, y), (int(rng.integers(w)), int(rng.integers(h))), color, int(rng.integers(1, 8)))
        elif shape == 3:
            words = ["EXAM", "ROOM", "K037", "SEAL", "FT1700", "BOX", "ZK2017", "NO.", "12", "SITE"]
            line = " ".join(words[int(i)] for i in rng.integers(0, len(words), int(rng.integers(1, 5))))
            cv2.putText(img, line, (x, y), cv2.FONT_HERSHEY_SIMPLEX, float(rng.uniform(0.5, 2.0)), color,
                        int(rng.integers(1, 4)))
        else:  # a checker or stripe patch: edges a QR detector must not be fooled by
            cell = int(rng.integers(4, 16))
            n = int(rng.integers(3, 10))
            for i in range(n):
                for j in range(n):
                    if (i + j) % 2 == 0:
                        top_left = (x + i * cell, y + j * cell)
                        cv2.rectangle(img, top_left, (top_left[0] + cell - 1, top_left[1] + cell - 1), color, -1)
    coarse = rng.normal(128, 6, (h // 4, w // 4)).astype(np.uint8)
    texture = cv2.cvtColor(cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR), cv2.COLOR_GRAY2BGR)
    return cv2.addWeighted(img, 1.0, texture, 1.0, -128.0)


def label_card(text: str, module_px: int, text_width: float = 0.8) -> tuple[np.ndarray, Polygon]:
    """A printed label: off-white card, the QR with its quiet zone, the item id and
    text-like lines beside it. The same text always gives the same card.

    Returns the BGR card and the corners of the QR symbol (without quiet zone)
    in card pixels.
    """
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big"))
    qr = _qr_modules(text)
    qr = cv2.resize(qr, None, fx=module_px, fy=module_px, interpolation=cv2.INTER_NEAREST)
    q = qr.shape[0]
    margin = module_px * 2
    text_w = int(q * text_width)
    ch, cw = q + 2 * margin, q + text_w + 3 * margin
    paper = int(rng.integers(225, 252))
    card = np.full((ch, cw), paper, np.uint8)
    card[margin:margin + q, margin:margin + q] = np.where(qr < 128, int(rng.integers(10, 40)), paper)
    # beside the code: the item id, then bars of "words"
    x0 = q + 2 * margin
    scale = max(0.3, q / 260)
    cv2.putText(card, _item_id(text), (x0, margin + int(24 * scale)), cv2.FONT_HERSHEY_SIMPLEX, scale * 0.8, 20,
                max(1, int(2 * scale)))
    y = margin + int(45 * scale)
    line_h = max(4, int(q / 9))
    while y + line_h < ch - margin:
        x = x0
        while True:
            word = int(rng.integers(line_h, line_h * 4))
            if x + word > cw - margin:
                break
            cv2.rectangle(card, (x, y), (x + word, y + max(2, line_h // 2)), int(rng.integers(20, 90)), -1)
            x += word + max(3, line_h // 2)
        y += line_h
    s0 = margin + QR_BORDER * module_px
    s1 = margin + q - QR_BORDER * module_px
    corners: Polygon = ((s0, s0), (s1, s0), (s1, s1), (s0, s1))
    return cv2.cvtColor(card, cv2.COLOR_GRAY2BGR), corners


@functools.lru_cache(maxsize=4096)
def _qr_modules(text: str) -> np.ndarray:
    """The printed symbol with its quiet zone, one pixel a module (encoding is slow)."""
    modules = np.asarray(qr_image(text, module_px=1, border=QR_BORDER))
    modules.setflags(write=False)
    return modules


def _item_id(text: str) -> str:
    """What the label prints in words: its item id, or the start of a foreign code."""
    try:
        label = parse_unverified_label(text)
    except MalformedLabel:
        label = None
    return label.payload.item_id if label is not None else text[:14]


def _rotation(angle: float, tilt_x: float, tilt_y: float) -> np.ndarray:
    a, tx, ty = (math.radians(v) for v in (angle, tilt_x, tilt_y))
    rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, math.cos(tx), -math.sin(tx)], [0, math.sin(tx), math.cos(tx)]])
    ry = np.array([[math.cos(ty), 0, math.sin(ty)], [0, 1, 0], [-math.sin(ty), 0, math.cos(ty)]])
    rotation: np.ndarray = ry @ rx @ rz
    return rotation


def _projector(placement: Placement, qr_corners: Polygon) -> Callable[[np.ndarray], np.ndarray]:
    """Card pixels -> frame pixels through a pinhole camera looking at the held card."""
    qr_side = qr_corners[1][0] - qr_corners[0][0]
    scale = placement.qr_width / qr_side
    qcx = (qr_corners[0][0] + qr_corners[1][0]) / 2
    qcy = (qr_corners[0][1] + qr_corners[2][1]) / 2
    rot = _rotation(placement.angle, placement.tilt_x, placement.tilt_y)

    def project(pts: np.ndarray) -> np.ndarray:
        p3 = np.stack([(pts[:, 0] - qcx) * scale, (pts[:, 1] - qcy) * scale, np.zeros(len(pts))], axis=1) @ rot.T
        z = FOCAL_PX + p3[:, 2]
        u = FOCAL_PX * p3[:, 0] / z + placement.center[0]
        v = FOCAL_PX * p3[:, 1] / z + placement.center[1]
        return np.stack([u, v], axis=1)

    return project


def _card_geometry(module_px: int, text_width: float) -> tuple[int, int, Polygon]:
    """(height, width, QR symbol corners) of a card as :func:`label_card` draws it
    (a version-8 label; only used to plan where cards go)."""
    q = (49 + 2 * QR_BORDER) * module_px
    margin = module_px * 2
    s0, s1 = margin + QR_BORDER * module_px, margin + q - QR_BORDER * module_px
    return q + 2 * margin, q + int(q * text_width) + 3 * margin, ((s0, s0), (s1, s0), (s1, s1), (s0, s1))


def card_outline(placement: Placement) -> np.ndarray:
    """The four corners of the whole card in the frame (planning only)."""
    ch, cw, corners = _card_geometry(10, placement.text_width)
    return _projector(placement, corners)(np.array([[0, 0], [cw, 0], [cw, ch], [0, ch]], np.float64))


def place_label(frame: np.ndarray, placement: Placement, rng: Rng, module_px: int | None = None) -> PlacedLabel:
    """Draw a label card into ``frame`` (in place) as a camera would see it."""
    if module_px is None:
        # render at about 1.5x the final size, so the warp mostly shrinks
        module_px = max(2, int(math.ceil(placement.qr_width / 49 * 1.5)))
    card, qr_corners = label_card(placement.text, module_px, placement.text_width)
    ch, cw = card.shape[:2]
    project = _projector(placement, qr_corners)
    scale = placement.qr_width / (qr_corners[1][0] - qr_corners[0][0])
    src = np.array([[0, 0], [cw, 0], [cw, ch], [0, ch]], np.float64)
    dst = project(src)
    qr_dst = project(np.array(qr_corners, np.float64))
    fh, fw = frame.shape[:2]
    x0, y0 = (int(max(0, math.floor(v))) for v in dst.min(axis=0))
    x1, y1 = int(min(fw, math.ceil(dst[:, 0].max()))), int(min(fh, math.ceil(dst[:, 1].max())))
    polygon: Polygon = tuple((float(x), float(y)) for x, y in qr_dst)  # type: ignore[assignment]
    if x1 <= x0 or y1 <= y0:
        return PlacedLabel(placement.text, polygon)
    # shrink with a prefilter so fine modules average as a lens would, not alias
    shrink = 1.0 / scale
    if shrink > 1.2:
        card = cv2.GaussianBlur(card, (0, 0), 0.45 * shrink)
    shade = rng.uniform(0.8, 1.05) + rng.uniform(-0.15, 0.15) * np.linspace(-1, 1, cw, dtype=np.float32)[None, :, None]
    card = np.clip(card.astype(np.float32) * shade, 0, 255)
    h = cv2.getPerspectiveTransform(src.astype(np.float32), (dst - [x0, y0]).astype(np.float32))
    size = (x1 - x0, y1 - y0)
    warped = cv2.warpPerspective(card, h, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    mask = cv2.warpPerspective(np.ones((ch, cw), np.float32), h, size, flags=cv2.INTER_LINEAR)[:, :, None]
    roi = frame[y0:y1, x0:x1].astype(np.float32)
    frame[y0:y1, x0:x1] = np.clip(roi * (1 - mask) + warped * mask, 0, 255).astype(np.uint8)
    return PlacedLabel(placement.text, polygon)


# --- degradations -----------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _noise_pool() -> np.ndarray:
    # Drawing 2.8 million normals per frame costs more than rendering the frame;
    # a fixed pool read at a random offset is as good for a decoder and 10x cheaper.
    w, h = FRAME_SIZE
    return np.random.default_rng(2017).standard_normal((h + 256, w + 256, 3), dtype=np.float32)


def sensor_noise(img: np.ndarray, rng: Rng, sigma: float) -> np.ndarray:
    h, w = img.shape[:2]
    pool = _noise_pool()
    noise: np.ndarray
    if h + 256 > pool.shape[0] or w + 256 > pool.shape[1]:
        noise = rng.standard_normal(img.shape, dtype=np.float32)
    else:
        dy, dx = (int(v) for v in rng.integers(0, 256, 2))
        noise = pool[dy:dy + h, dx:dx + w, : img.shape[2] if img.ndim == 3 else 1].reshape(img.shape)
    out = img.astype(np.float32)
    out += noise * np.float32(sigma)
    return np.clip(out, 0, 255, out=out).astype(np.uint8)


def motion_blur(img: np.ndarray, length: int, angle: float) -> np.ndarray:
    line = np.zeros((length, length), np.float32)
    line[length // 2, :] = 1.0
    m = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), angle, 1.0)
    kernel = cv2.warpAffine(line, m, (length, length))
    return cv2.filter2D(img, -1, kernel / kernel.sum())


def blur(img: np.ndarray, rng: Rng) -> np.ndarray:
    if rng.random() < 0.5:
        return cv2.GaussianBlur(img, (0, 0), float(rng.uniform(1.0, 2.2)))
    return motion_blur(img, int(rng.integers(4, 11)), float(rng.uniform(0, 180)))


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    decoded = cv2.imdecode(data, cv2.IMREAD_COLOR) if ok else None
    if decoded is None:
        raise RuntimeError("OpenCV could not round-trip a JPEG")
    return decoded


def low_light(img: np.ndarray, rng: Rng) -> np.ndarray:
    dark = img.astype(np.float32) * float(rng.uniform(0.15, 0.35))
    return sensor_noise(dark.astype(np.uint8), rng, float(rng.uniform(3, 6)))


def glare(img: np.ndarray, polygon: Polygon, rng: Rng) -> np.ndarray:
    """A saturated specular blob centred near the code's edge, covering part of it."""
    pts = np.array(polygon)
    centre = pts.mean(axis=0)
    width = float(np.linalg.norm(pts[1] - pts[0]))
    direction = rng.uniform(0, 2 * math.pi)
    at = centre + width * rng.uniform(0.25, 0.45) * np.array([math.cos(direction), math.sin(direction)])
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rx, ry = width * rng.uniform(0.12, 0.22), width * rng.uniform(0.08, 0.16)
    d2 = ((xx - at[0]) / rx) ** 2 + ((yy - at[1]) / ry) ** 2
    blob = np.clip(1.6 * np.exp(-d2 / 2), 0, 1)[:, :, None] * 255.0
    out: np.ndarray = np.clip(img.astype(np.float32) + blob, 0, 255).astype(np.uint8)
    return out


# --- frames of each class ---------------------------------------------------


def _inside(outline: np.ndarray, pad: float = 2.0) -> bool:
    w, h = FRAME_SIZE
    (x0, y0), (x1, y1) = outline.min(axis=0), outline.max(axis=0)
    return bool(x0 >= pad and y0 >= pad and x1 <= w - pad and y1 <= h - pad)


def _placement(kind: str, text: str, rng: Rng) -> Placement:
    w, h = FRAME_SIZE
    width = float(rng.uniform(80, 130) if kind == "small" else rng.uniform(150, 300))
    text_width = float(rng.uniform(0.5, 1.0))
    angle = float(rng.uniform(-12, 12))
    tilt_x = tilt_y = 0.0
    if kind == "rotation":
        angle = float(rng.uniform(0, 360))
    elif kind == "tilt":
        magnitude, direction = rng.uniform(15, 40), rng.uniform(0, 2 * math.pi)
        tilt_x, tilt_y = magnitude * math.cos(direction), magnitude * math.sin(direction)
    else:
        tilt_x, tilt_y = (float(v) for v in rng.uniform(-8, 8, 2))
    placement = Placement(text, (w / 2, h / 2), width, angle, tilt_x, tilt_y, text_width)
    for _ in range(100):  # anywhere the whole card is in view
        candidate = replace(placement, center=(float(rng.uniform(0, w)), float(rng.uniform(0, h))))
        if _inside(card_outline(candidate)):
            return candidate
    return placement


def multi_placements(texts: Sequence[str], rng: Rng) -> list[Placement]:
    """Cards on a jittered grid (3 or 4 columns), each wholly inside its cell so none
    overlaps; QR 110-150 px wide (shrunk if the cell is too small), rotated up to
    15 degrees and tilted up to 10."""
    w, h = FRAME_SIZE
    cols = 4 if len(texts) > 6 else 3
    rows = math.ceil(len(texts) / cols)
    cell_w, cell_h = w / cols, h / rows
    cells = [divmod(int(i), cols) for i in rng.permutation(rows * cols)[: len(texts)]]
    placements = []
    for text, (r, c) in zip(texts, cells, strict=True):
        width = float(rng.uniform(110, 150))
        x0, y0 = c * cell_w, r * cell_h
        for attempt in range(300):
            if attempt and attempt % 30 == 0:
                width *= 0.93
            tilt = rng.uniform(-10, 10, 2)
            center = (float(rng.uniform(x0, x0 + cell_w)), float(rng.uniform(y0, y0 + cell_h)))
            candidate = Placement(text, center, width, float(rng.uniform(-15, 15)), float(tilt[0]), float(tilt[1]),
                                  float(rng.uniform(0.35, 0.6)))
            outline = card_outline(candidate)
            if (outline[:, 0].min() >= x0 + 2 and outline[:, 0].max() <= x0 + cell_w - 2
                    and outline[:, 1].min() >= y0 + 2 and outline[:, 1].max() <= y0 + cell_h - 2):
                placements.append(candidate)
                break
        else:
            raise RuntimeError(f"cannot fit {len(texts)} labels in one frame")
    return placements


def degrade(kind: str, img: np.ndarray, labels: Sequence[PlacedLabel], rng: Rng) -> np.ndarray:
    """Apply the class's degradation to a rendered frame."""
    if kind == "blur":
        img = blur(img, rng)
    elif kind == "jpeg":
        img = jpeg(img, int(rng.integers(20, 41)))
    elif kind == "lowlight":
        return low_light(img, rng)
    elif kind == "glare":
        img = glare(img, labels[0].polygon, rng)
    return sensor_noise(img, rng, float(rng.uniform(1.0, 2.5)))


def render(
    placements: Sequence[Placement], rng: Rng, base: np.ndarray | None = None
) -> tuple[np.ndarray, tuple[PlacedLabel, ...]]:
    img = background(rng) if base is None else base.copy()
    labels = tuple(place_label(img, p, rng) for p in placements)
    return img, labels


def degraded_frame(kind: str, index: int, texts: Sequence[str], seed: int = 0) -> SynthFrame:
    """Frame ``index`` of class ``kind``; its labels are taken from ``texts`` in turn."""
    if kind not in CLASSES:
        raise ValueError(f"unknown frame class {kind!r}; known: {', '.join(CLASSES)}")
    rng = np.random.default_rng([seed, CLASSES.index(kind), index])
    if kind == "multi":
        n = int(rng.integers(6, 13))
        start = int(rng.integers(len(texts)))
        chosen = [texts[(start + i) % len(texts)] for i in range(n)]
        placements = multi_placements(chosen, rng)
    else:
        placements = [_placement(kind, texts[index % len(texts)], rng)]
    img, labels = render(placements, rng)
    return SynthFrame(degrade(kind, img, labels, rng), labels, kind, index)


def degraded_set(
    per_class: int, seed: int = 0, classes: Sequence[str] = CLASSES, texts: Sequence[str] | None = None
) -> Iterator[SynthFrame]:
    """``per_class`` frames of each class (multi: frames, each of 6 to 12 labels)."""
    texts = list(texts) if texts is not None else label_texts(max(per_class, 12), seed)
    for kind in classes:
        for i in range(per_class):
            yield degraded_frame(kind, i, texts, seed)


def jittered(base: np.ndarray, placements: Sequence[Placement], n: int, seed: int, scene: int = 0,
             kind: str = "clean") -> Iterator[SynthFrame]:
    """``n`` frames of one still scene filmed hand-held: each label moves by a few
    pixels and degrees, with fresh sensor noise in every frame."""
    for i in range(n):
        rng = np.random.default_rng([seed, 104729, scene, i])
        moved = [
            replace(p, center=(p.center[0] + float(rng.normal(0, 2)), p.center[1] + float(rng.normal(0, 2))),
                    angle=p.angle + float(rng.normal(0, 1)), tilt_x=p.tilt_x + float(rng.normal(0, 1.5)),
                    tilt_y=p.tilt_y + float(rng.normal(0, 1.5)))
            for p in placements
        ]
        img, labels = render(moved, rng, base)
        yield SynthFrame(degrade(kind, img, labels, rng), labels, kind, i)


def multi_scene_video(scene: int, texts: Sequence[str], n_frames: int = 30, seed: int = 0) -> Iterator[SynthFrame]:
    """A still scene of 6 to 12 labels filmed hand-held for ``n_frames``."""
    rng = np.random.default_rng([seed, 15485863, scene])
    n = int(rng.integers(6, 13))
    start = int(rng.integers(len(texts)))
    placements = multi_placements([texts[(start + i) % len(texts)] for i in range(n)], rng)
    return jittered(background(rng), placements, n_frames, seed, scene, "multi")


# --- video ------------------------------------------------------------------


def moving_labels_frames(
    placements: Sequence[Placement],
    n_frames: int,
    seed: int = 0,
    enter_frames: int | None = None,
    kind: str = "clean",
) -> Iterator[SynthFrame]:
    """Labels slide in from the left edge over ``enter_frames`` and then stay
    (with hand jitter); ``kind`` degrades every frame (``blur``, ``lowlight``, ...)."""
    rng = np.random.default_rng([seed, 1299709])
    base = background(rng)
    enter = enter_frames if enter_frames is not None else max(1, n_frames // 2)
    for i in range(n_frames):
        frng = np.random.default_rng([seed, 1299721, i])
        progress = min(1.0, i / enter)
        moved = []
        for p in placements:
            start_x = -p.qr_width * 2.5
            x = start_x + (p.center[0] - start_x) * progress
            moved.append(replace(p, center=(x + float(frng.normal(0, 1)), p.center[1] + float(frng.normal(0, 1)))))
        img, labels = render(moved, frng, base)
        w, h = FRAME_SIZE
        visible = tuple(lab for lab in labels if all(0 <= x < w and 0 <= y < h for x, y in lab.polygon))
        yield SynthFrame(degrade(kind, img, labels, frng), visible, kind, i)


def write_video(path: str | Path, frames: Iterator[np.ndarray] | Sequence[np.ndarray], fps: float = 15.0) -> Path:
    """Write BGR frames to ``path``: ``.avi`` as MJPG, anything else as mp4v."""
    path = Path(path)
    fourcc = cv2.VideoWriter.fourcc(*("MJPG" if path.suffix.lower() == ".avi" else "mp4v"))
    writer: cv2.VideoWriter | None = None
    try:
        for frame in frames:
            if writer is None:
                h, w = frame.shape[:2]
                writer = cv2.VideoWriter(str(path), fourcc, fps, (w, h))
                if not writer.isOpened():
                    raise OSError(f"OpenCV cannot write video {path}")
            writer.write(frame)
    finally:
        if writer is not None:
            writer.release()
    return path
