"""A single label as a PNG: decodes, verifies, has the cell's size."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from custody.labels import verify_label
from printing.layout import DEFAULT_LAYOUT
from printing.png import label_png, save_label_png

pyzbar = pytest.importorskip("pyzbar.pyzbar")


@pytest.mark.parametrize("dpi", [150, 300])
def test_the_png_of_a_label_decodes_and_verifies(make_sheet: Callable, dpi: int) -> None:
    signed = make_sheet("tiny", limit=2)
    label = signed.labels[1]
    image = label_png(label, dpi=dpi)
    assert image.mode == "L"
    assert image.size == (round(DEFAULT_LAYOUT.cell_width * dpi / 25.4), round(DEFAULT_LAYOUT.cell_height * dpi / 25.4))
    found = [s.data.decode("ascii") for s in pyzbar.decode(image)]
    assert found == [label.text]
    assert verify_label(found[0], signed.keys).payload.item_id == label.item_id


def test_the_english_png_decodes_too(make_sheet: Callable) -> None:
    label = make_sheet("tiny", lang="en", limit=1).labels[0]
    assert [s.data.decode() for s in pyzbar.decode(label_png(label, lang="en", dpi=200))] == [label.text]


def test_saved_png_records_its_resolution(make_sheet: Callable, tmp_path: Path) -> None:
    label = make_sheet("tiny", limit=1).labels[0]
    out = tmp_path / "label.png"
    save_label_png(label, out, dpi=300)
    with Image.open(out) as image:
        assert image.format == "PNG"
        assert round(image.info["dpi"][0]) == 300
        assert [s.data.decode() for s in pyzbar.decode(image)] == [label.text]


def test_the_png_has_ink_where_the_text_goes(make_sheet: Callable) -> None:
    # Chinese glyphs, not empty boxes or nothing: the text column carries a fair amount of ink.
    label = make_sheet("tiny", limit=1).labels[0]
    image = label_png(label, dpi=300)
    width, height = image.size
    text_column = image.crop((int(width * 0.48), 0, width, height))
    dark = sum(text_column.histogram()[:128])
    assert dark > 0.04 * text_column.width * text_column.height


def test_a_too_low_resolution_is_refused(make_sheet: Callable) -> None:
    with pytest.raises(ValueError, match="dpi"):
        label_png(make_sheet("tiny", limit=1).labels[0], dpi=50)
