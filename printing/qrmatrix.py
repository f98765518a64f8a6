"""The module matrix of a label's QR symbol, fast, and identical to segno's.

:func:`printing.qr.qr_code` lets segno choose the data mask the way ISO/IEC
18004 §7.8.3 prescribes: it masks the symbol eight times and scores each in
pure Python, about 6 ms of the 7.5 ms a version-9 symbol costs. Printing the
whole city (23,000 labels) needs that to be cheaper, without changing a single
module of what is printed. :func:`label_matrix` therefore

1. has segno encode the segments and compute the Reed-Solomon codewords (the
   steps of segno's ``_encode`` up to the final message),
2. places the bits with a precomputed module order and scores all eight masks
   at once with numpy, reproducing segno's ``mask_scores`` exactly (its N3
   search included),
3. applies the winning mask and writes the format and version information.

About 1.5 ms instead of 7.5. The result equals ``qr_code(text).matrix`` module
for module: the tests check this over many label texts and arbitrary text, and
every process checks it once at first use; should a segno release change its
internals or its choice, that check fails and this module falls back to
``segno.make`` (slow, never wrong), with a warning.
"""

from __future__ import annotations

import warnings
from functools import cache
from typing import Any

import numpy as np
import segno
from segno import consts as _consts
from segno import encoder as _encoder

from custody.labels import QR_PREFIX

# segno's encoder functions are not part of its typed, public API; the first-use check guards them.
encoder: Any = _encoder
consts: Any = _consts

_N3_PATTERN = np.array([1, 0, 1, 1, 1, 0, 1], dtype=np.uint8)
_ERROR = consts.ERROR_LEVEL_M


def _content(text: str) -> Any:
    """The segments of :func:`printing.qr.qr_code`: ``CUS1:`` alphanumeric, the digits numeric."""
    if text.startswith(QR_PREFIX) and text[len(QR_PREFIX):].isdigit():
        return [(QR_PREFIX, consts.MODE_ALPHANUMERIC), (text[len(QR_PREFIX):], consts.MODE_NUMERIC)]
    return text


class _VersionTables:
    """What does not depend on the data: regions, mask patterns, format templates."""

    def __init__(self, version: int):
        width = encoder.calc_matrix_size(version)
        self.width = width
        base = encoder.make_matrix(width, width)
        encoder.add_finder_patterns(base, width, width)
        encoder.add_alignment_patterns(base, width, width)
        grid = np.array([list(row) for row in base], dtype=np.uint8)
        region = grid > 1
        region[-8, 8] = False  # the dark module is not data (segno's function_matrix does the same)
        self.region = region
        #: The matrix segno scores: function patterns, reserved areas still light.
        self.before_format = np.where(region, 0, grid).astype(np.uint8)
        i, j = np.indices((width, width))
        masks = [
            (i + j) % 2 == 0,
            i % 2 == 0,
            j % 3 == 0,
            (i + j) % 3 == 0,
            (i // 2 + j // 3) % 2 == 0,
            (i * j) % 2 + (i * j) % 3 == 0,
            ((i * j) % 2 + (i * j) % 3) % 2 == 0,
            (((i + j) % 2) + (i * j) % 3) % 2 == 0,
        ]
        #: The eight masks, restricted to the data region: shape (8, width, width).
        self.masks = np.stack([m & region for m in masks]).astype(np.uint8)
        finals = []
        for mask in range(8):
            final = tuple(bytearray(row) for row in self.before_format.tolist())
            encoder.add_format_info(final, version, _ERROR, mask)
            encoder.add_version_info(final, version)
            finals.append(np.array([list(row) for row in final], dtype=np.uint8))
        #: Everything outside the data region, as printed, for each mask.
        self.finished = np.stack(finals)
        self.order = _placement_order(region)


def _placement_order(region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of each data module in bit order (ISO/IEC 18004 §7.7.3, as segno's ``add_codewords``).

    Two-module columns from the right, alternately upwards and downwards,
    skipping the vertical timing pattern (column 6) and function modules.
    """
    size = region.shape[0]
    rows: list[int] = []
    cols: list[int] = []
    for right in range(size - 1, 0, -2):
        if right <= 6:
            right -= 1
        for vertical in range(size):
            for z in range(2):
                j = right - z
                up = ((right & 2) == 0) ^ (j < 6)
                i = size - 1 - vertical if up else vertical
                if region[i, j]:
                    rows.append(i)
                    cols.append(j)
    return np.array(rows), np.array(cols)


@cache
def _tables(version: int) -> _VersionTables:
    return _VersionTables(version)


def _run_penalty(lines: np.ndarray) -> np.ndarray:
    """N1 for each of ``k`` stacks of lines (k, n, n): runs of 5+ same-colour modules score run-2."""
    k, n, _ = lines.shape
    sep = np.full((k, n, 1), 2, dtype=np.uint8)  # a value no module has ends every run at a line end
    flat = np.concatenate([lines, sep], axis=2).reshape(-1)
    starts = np.flatnonzero(np.concatenate(([True], flat[1:] != flat[:-1])))
    lengths = np.diff(np.append(starts, flat.size))
    scored = lengths >= 5
    owner = starts[scored] // (n * (n + 1))
    return np.bincount(owner, weights=lengths[scored] - 2, minlength=k).astype(np.int64)


def _finder_like_penalty(lines: np.ndarray) -> np.ndarray:
    """N3 for each of ``k`` stacks of lines, exactly as segno's ``n3_pattern_occurrences`` counts it.

    An occurrence of 1011101 scores 40 when the four modules before it or the
    four after it (fewer at the symbol's edge) are light. segno resumes its
    search 7 modules on after a scored occurrence and 4 after an unscored one,
    so an occurrence overlapping a scored one (4 or 6 modules on) is skipped.
    """
    k, n, _ = lines.shape
    span = n - 6  # where a pattern can start
    found = np.ones((k, n, span), dtype=bool)
    for offset, bit in enumerate(_N3_PATTERN.tolist()):
        window = lines[:, :, offset:offset + span]
        found &= window.astype(bool) if bit else window == 0
    # Dark modules up to each position; the 4 before p are [p-4, p), after are [p+7, p+11).
    dark = np.zeros((k, n, n + 9), dtype=np.int16)
    np.cumsum(lines, axis=2, out=dark[:, :, 5:n + 5])
    dark[:, :, n + 5:] = dark[:, :, n + 4:n + 5]
    # dark[..., i + 5] counts modules 0..i; dark[..., 4] (and below) count nothing.
    starts = np.arange(span)
    before = dark[:, :, starts + 4] - dark[:, :, np.maximum(starts - 4, 0) + 4]
    after = dark[:, :, starts + 15] - dark[:, :, starts + 11]
    light_around = (before == 0) | (after == 0)
    scores = np.zeros(k, dtype=np.int64)
    mask_idx, line_idx, pos = np.nonzero(found)
    if pos.size == 0:
        return scores
    # Lines whose occurrences all lie 7 or more apart need no sequential pass.
    same_line = (mask_idx[1:] == mask_idx[:-1]) & (line_idx[1:] == line_idx[:-1])
    close = same_line & (pos[1:] - pos[:-1] < 7)
    if not close.any():
        np.add.at(scores, mask_idx, 40 * light_around[mask_idx, line_idx, pos])
        return scores
    current: tuple[int, int] | None = None
    resume = 0
    for m, line, p in zip(mask_idx.tolist(), line_idx.tolist(), pos.tolist(), strict=True):
        if (m, line) != current:
            current, resume = (m, line), 0
        if p < resume:
            continue
        if light_around[m, line, p]:
            scores[m] += 40
            resume = p + 7
        else:
            resume = p + 4
    return scores


def mask_penalties(candidates: np.ndarray) -> list[int]:
    """segno's ``evaluate_mask`` for each of ``k`` candidate matrices (k, n, n) of 0/1."""
    k, n, _ = candidates.shape
    columns = candidates.transpose(0, 2, 1)
    n1 = _run_penalty(candidates) + _run_penalty(columns)
    block = (
        (candidates[:, 1:, 1:] == candidates[:, 1:, :-1])
        & (candidates[:, 1:, 1:] == candidates[:, :-1, 1:])
        & (candidates[:, 1:, 1:] == candidates[:, :-1, :-1])
    )
    n2 = 3 * block.sum(axis=(1, 2))
    n3 = _finder_like_penalty(candidates) + _finder_like_penalty(columns)
    dark = candidates.sum(axis=(1, 2)).tolist()
    # N4 in Python floats, the very arithmetic segno uses, so ties break alike.
    n4 = [10 * int(abs(float(d) / (n**2) * 100 - 50) / 5) for d in dark]
    return [int(a) + int(b) + int(c) + d for a, b, c, d in zip(n1, n2, n3, n4, strict=True)]


def _final_message(text: str) -> tuple[int, np.ndarray]:
    """The version and the final bit stream (data and error codewords, remainder bits) of ``text``.

    The steps of segno's ``_encode`` before the matrix, with segno's own
    functions: segments, smallest version, terminator, padding, Reed-Solomon.
    """
    segments = encoder.prepare_data(_content(text), None, None)
    version = encoder.find_version(segments, _ERROR, eci=False, micro=False)
    buff = encoder.Buffer()
    versions = encoder.version_range(version)
    for segment in segments:
        encoder.write_segment(buff, segment, None, versions, False)
    capacity = consts.SYMBOL_CAPACITY[version][_ERROR]
    encoder.write_terminator(buff, capacity, None, len(buff))
    encoder.write_padding_bits(buff, version, len(buff))
    encoder.write_pad_codewords(buff, version, capacity, len(buff))
    message = encoder.make_final_message(version, _ERROR, buff)
    return version, np.frombuffer(bytes(message.getbits()), dtype=np.uint8)


def _fast_matrix(text: str) -> np.ndarray:
    version, bits = _final_message(text)
    tables = _tables(version)
    rows, cols = tables.order
    if bits.size != rows.size:
        raise ValueError(f"{bits.size} bits for {rows.size} data modules")
    data = np.zeros_like(tables.before_format)
    data[rows, cols] = bits
    candidates = np.where(tables.region, data ^ tables.masks, tables.before_format)
    penalties = mask_penalties(candidates)
    best = penalties.index(min(penalties))  # the first of equals, as segno's strict "<" keeps
    matrix: np.ndarray = np.where(tables.region, candidates[best], tables.finished[best])
    return matrix


def _segno_matrix(text: str) -> np.ndarray:
    code = segno.make(_content(text), error="m", boost_error=False, micro=False)
    return np.array(code.matrix, dtype=np.uint8)


#: Whether the fast path agrees with segno in this process: None until first checked.
_fast_path_ok: bool | None = None


def label_matrix(text: str) -> np.ndarray:
    """The symbol of ``text`` as a (width, width) uint8 array, 1 = dark, no quiet zone.

    Equal to ``printing.qr.qr_code(text).matrix`` (ECC M, automatic mask).
    """
    global _fast_path_ok
    if _fast_path_ok is None:
        exact = _segno_matrix(text)
        try:
            _fast_path_ok = bool(np.array_equal(_fast_matrix(text), exact))
        except Exception:  # segno's internals moved: an AttributeError, a changed signature
            _fast_path_ok = False
        if not _fast_path_ok:
            warnings.warn("printing.qrmatrix: the fast QR path disagrees with segno; using segno.make "
                          "(about 5 times slower)", RuntimeWarning, stacklevel=2)
        return exact
    return _fast_matrix(text) if _fast_path_ok else _segno_matrix(text)


def label_mask_bits(text: str) -> tuple[int, bytes]:
    """``(width, rows)`` for a 1-bit PDF image mask: each row packed MSB first, 0 = dark.

    A picklable result for worker processes.
    """
    matrix = label_matrix(text)
    return matrix.shape[0], np.packbits(matrix == 0, axis=1).tobytes()


def label_mask_bits_batch(texts: list[str]) -> list[tuple[int, bytes]]:
    """:func:`label_mask_bits` for each text, in order: one task for a worker process."""
    return [label_mask_bits(text) for text in texts]
