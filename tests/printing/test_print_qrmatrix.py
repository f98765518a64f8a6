"""The fast QR matrix is segno's matrix, module for module, mask choice included."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from segno import encoder

from printing import qrmatrix
from printing.qr import qr_code


def segno_matrix(text: str) -> np.ndarray:
    return np.array([list(row) for row in qr_code(text).matrix], dtype=np.uint8)


def test_real_labels_match_segno_and_fit_version_9(make_sheet: Callable) -> None:
    masks = set()
    for label in make_sheet("tiny").labels[:40]:
        code = qr_code(label.text)
        assert code.version <= 9
        masks.add(code.mask)
        assert np.array_equal(qrmatrix.label_matrix(label.text), segno_matrix(label.text)), label.item_id
    assert len(masks) >= 4  # the comparison exercised several mask choices, not one


@settings(max_examples=60, deadline=None)
@given(digits=st.text("0123456789", min_size=1, max_size=420))
def test_any_label_shaped_text_matches_segno(digits: str) -> None:
    text = "CUS1:1" + digits
    assert np.array_equal(qrmatrix._fast_matrix(text), segno_matrix(text))


@settings(max_examples=40, deadline=None)
@given(text=st.text(min_size=1, max_size=120))
def test_any_text_matches_segno(text: str) -> None:
    assert np.array_equal(qrmatrix._fast_matrix(text), segno_matrix(text))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(size=st.sampled_from([21, 25, 33, 53]), seed=st.integers(0, 2**32 - 1), density=st.floats(0.2, 0.8))
def test_mask_penalties_equal_segno_scores(size: int, seed: int, density: float) -> None:
    rng = np.random.default_rng(seed)
    candidates = (rng.random((3, size, size)) < density).astype(np.uint8)
    # Plant finder-like runs, overlapping ones included, where segno's resume rule matters.
    for pattern in ([1, 0, 1, 1, 1, 0, 1, 1, 1, 0, 1], [1, 0, 1, 1, 1, 0, 1, 0, 1, 1, 1, 0, 1]):
        row, col = rng.integers(0, size), rng.integers(0, size - len(pattern))
        candidates[0, row, col:col + len(pattern)] = pattern
        candidates[1, col:col + len(pattern), row] = pattern
    expected = [encoder.evaluate_mask(tuple(bytearray(r) for r in m.tolist()), size, size) for m in candidates]
    assert qrmatrix.mask_penalties(candidates) == expected


@pytest.mark.parametrize("line", [
    "0000101110100001011101",          # two apart: both scored
    "10111011101" + "0" * 14,          # overlap by 3 after a scored one: the second is skipped
    "1111" + "10111011101" + "0000",   # the first unscored, so the overlapping second is found
    "1011101011101" + "0" * 12,        # overlap by 1
])
def test_the_n3_search_follows_segno_on_overlaps(line: str) -> None:
    size = len(line)
    lines = np.zeros((1, size, size), dtype=np.uint8)
    lines[0, 0] = [int(c) for c in line]
    ours = int(qrmatrix._finder_like_penalty(lines)[0])
    theirs = encoder.mask_scores(tuple(bytearray(r) for r in lines[0].tolist()), size, size)[2]
    # segno scores rows and columns together; the columns here are all light or single modules.
    columns = int(qrmatrix._finder_like_penalty(lines.transpose(0, 2, 1).copy())[0])
    assert ours + columns == theirs


def test_a_disagreeing_fast_path_falls_back_to_segno(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qrmatrix, "_fast_path_ok", None)
    monkeypatch.setattr(qrmatrix, "_fast_matrix", lambda text: np.zeros((21, 21), dtype=np.uint8))
    with pytest.warns(RuntimeWarning, match="fast QR path"):
        first = qrmatrix.label_matrix("CUS1:1234")
    assert qrmatrix._fast_path_ok is False
    assert np.array_equal(first, segno_matrix("CUS1:1234"))
    assert np.array_equal(qrmatrix.label_matrix("CUS1:98765"), segno_matrix("CUS1:98765"))


def test_mask_bits_pack_light_modules_as_ones() -> None:
    width, bits = qrmatrix.label_mask_bits("CUS1:1234")
    matrix = segno_matrix("CUS1:1234")
    assert width == matrix.shape[0]
    unpacked = np.unpackbits(np.frombuffer(bits, dtype=np.uint8).reshape(width, -1), axis=1)[:, :width]
    assert np.array_equal(unpacked, 1 - matrix)
