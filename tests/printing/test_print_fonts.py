"""Finding a Chinese font reportlab can embed, and saying what to install when there is none."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from custody.errors import CustodyError, FontMissing
from printing import fonts
from printing.sheet import write_label_pdf

NOTO_CFF = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"


def test_a_font_is_found_and_covers_the_label_words() -> None:
    found = fonts.find_cjk_font({})
    assert os.path.isfile(found.path)
    assert fonts.reportlab_font_name(found) == fonts.reportlab_font_name(found)  # registered once


def test_custody_font_pointing_nowhere_raises_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-font.ttf"
    with pytest.raises(FontMissing) as caught:
        fonts.find_cjk_font({"CUSTODY_FONT": str(missing)})
    message = str(caught.value)
    assert str(missing) in message and "no such file" in message
    assert "apt-get install fonts-wqy-zenhei" in message
    assert isinstance(caught.value, CustodyError)


def test_printing_with_a_missing_font_fails_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_sheet: Callable
) -> None:
    monkeypatch.setenv("CUSTODY_FONT", str(tmp_path / "gone.ttc") + ",0")
    out = tmp_path / "labels.pdf"
    with pytest.raises(FontMissing, match="CUSTODY_FONT"):
        write_label_pdf(make_sheet("tiny", limit=1).labels, out)
    assert not out.exists()


def test_a_font_without_chinese_is_refused(tmp_path: Path) -> None:
    latin = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
    if not os.path.isfile(latin):
        pytest.skip("DejaVu Sans not installed")
    with pytest.raises(FontMissing, match="no glyphs"):
        fonts.find_cjk_font({"CUSTODY_FONT": latin})


def test_a_cff_font_is_refused_with_the_reason() -> None:
    if not os.path.isfile(NOTO_CFF):
        pytest.skip("Noto CJK not installed")
    with pytest.raises(FontMissing, match="postscript outlines"):
        fonts.find_cjk_font({"CUSTODY_FONT": NOTO_CFF + ",2"})


def test_no_known_font_lists_every_place_tried(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(fonts, "KNOWN_FONTS", ((str(tmp_path / "a.ttc"), 0, "fonts-a"),
                                               (str(tmp_path / "b.ttf"), 0, "fonts-b")))
    fonts._find.cache_clear()
    try:
        with pytest.raises(FontMissing) as caught:
            fonts.find_cjk_font({})
    finally:
        fonts._find.cache_clear()
    assert "fonts-a" in str(caught.value) and "fonts-b" in str(caught.value)


def test_a_collection_index_can_be_chosen() -> None:
    found = fonts.find_cjk_font({})
    if not found.path.endswith(".ttc"):
        pytest.skip("the installed font is not a collection")
    chosen = fonts.find_cjk_font({"CUSTODY_FONT": f"{found.path},1"})
    assert chosen.index == 1 and chosen.reportlab_name != found.reportlab_name
    assert fonts.pillow_font(20, chosen).getname()[0]

