"""The PDF sheet: every QR on a page decodes to its label and verifies; the text is real Chinese."""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from custody.errors import PrintingError
from custody.labels import verify_label
from printing import sheet
from printing.layout import COMPACT_LAYOUT, DEFAULT_LAYOUT
from printing.sheet import write_label_pdf

pyzbar = pytest.importorskip("pyzbar.pyzbar")
needs_poppler = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("pdftoppm", "pdftotext", "pdffonts")), reason="poppler-utils not installed"
)


def render_page(pdf: Path, page: int, dpi: int = 150) -> Image.Image:
    prefix = pdf.with_suffix("")
    subprocess.run(["pdftoppm", "-r", str(dpi), "-png", "-singlefile", "-f", str(page), "-l", str(page),
                    str(pdf), f"{prefix}-p{page}"], check=True)
    return Image.open(f"{prefix}-p{page}.png").convert("L")


def page_text(pdf: Path, page: int) -> str:
    return subprocess.run(["pdftotext", "-f", str(page), "-l", str(page), "-layout", str(pdf), "-"],
                          check=True, capture_output=True, text=True).stdout


def decoded_texts(image: Image.Image) -> list[str]:
    return [symbol.data.decode("ascii") for symbol in pyzbar.decode(image, symbols=[pyzbar.ZBarSymbol.QRCODE])]


@needs_poppler
def test_every_qr_on_the_first_page_decodes_to_its_label_and_verifies(tmp_path: Path, make_sheet: Callable) -> None:
    signed = make_sheet("tiny")
    pdf = tmp_path / "tiny.pdf"
    assert write_label_pdf(signed.labels, pdf) == len(signed.labels) == 80

    found = decoded_texts(render_page(pdf, 1))

    expected = [label.text for label in signed.labels[: DEFAULT_LAYOUT.per_page]]
    assert sorted(found) == sorted(expected)
    for text, label in zip(expected, signed.labels[: len(expected)], strict=True):
        verified = verify_label(text, signed.keys)
        assert verified.payload.item_id == label.item_id


@needs_poppler
def test_the_last_page_holds_the_remainder(tmp_path: Path, make_sheet: Callable) -> None:
    signed = make_sheet("tiny")
    pdf = tmp_path / "tiny.pdf"
    write_label_pdf(signed.labels, pdf)
    per_page = DEFAULT_LAYOUT.per_page
    last_page = -(-len(signed.labels) // per_page)
    found = decoded_texts(render_page(pdf, last_page))
    assert sorted(found) == sorted(label.text for label in signed.labels[(last_page - 1) * per_page:])


@needs_poppler
def test_the_chinese_font_is_embedded_and_no_other_font_is_used(tmp_path: Path, make_sheet: Callable) -> None:
    pdf = tmp_path / "tiny.pdf"
    write_label_pdf(make_sheet("tiny", limit=12).labels, pdf)
    listing = subprocess.run(["pdffonts", str(pdf)], check=True, capture_output=True, text=True).stdout
    fonts = listing.splitlines()[2:]
    assert fonts, listing
    for line in fonts:
        name, *_ = line.split()
        emb = line.split()[-5]  # columns: name type [type] encoding emb sub uni object ID
        assert emb == "yes", f"font not embedded: {line}"
        assert "WenQuanYi" in name or "CJK" in name or "Ming" in name or "Kai" in name or "Droid" in name, line


@needs_poppler
def test_the_page_text_has_the_chinese_field_names_and_values(tmp_path: Path, make_sheet: Callable) -> None:
    signed = make_sheet("tiny")
    pdf = tmp_path / "tiny.pdf"
    write_label_pdf(signed.labels, pdf)
    text = page_text(pdf, 1)
    for word in ("科目", "考点", "考场", "份数", "封条号", "编号", "语文", "试卷袋", "答题卡袋", "试卷箱",
                 "2017年南昌市中等学校招生考试"):
        assert word in text, word
    first = signed.labels[1]
    assert first.item_id in text and first.seal in text and first.site_name in text


@needs_poppler
def test_english_labels_have_english_field_names(tmp_path: Path, make_sheet: Callable) -> None:
    signed = make_sheet("tiny", lang="en")
    pdf = tmp_path / "tiny-en.pdf"
    write_label_pdf(signed.labels, pdf, lang="en")
    text = page_text(pdf, 1)
    for word in ("Subject", "Site", "Room", "Count", "Seal no.", "Item", "Chinese", "PAPERS", "ANSWER CARDS"):
        assert word in text, word
    assert "科目" not in text and "封条号" not in text
    assert sorted(decoded_texts(render_page(pdf, 1))) == sorted(label.text for label in signed.labels[:12])


@needs_poppler
def test_the_compact_layout_fits_24_a_page_and_still_decodes(tmp_path: Path, make_sheet: Callable) -> None:
    signed = make_sheet("tiny")
    pdf = tmp_path / "compact.pdf"
    write_label_pdf(signed.labels, pdf, layout=COMPACT_LAYOUT)
    found = decoded_texts(render_page(pdf, 1))
    assert sorted(found) == sorted(label.text for label in signed.labels[:24])


def test_worker_processes_give_the_same_bytes_as_one_process(
    make_sheet: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    labels = make_sheet("tiny").labels
    alone, together = io.BytesIO(), io.BytesIO()
    write_label_pdf(labels, alone, workers=0)
    # Small batches so that the tiny exam goes through the pool in many out-of-step tasks.
    monkeypatch.setattr(sheet, "BATCH", 7)
    monkeypatch.setattr(sheet, "PARALLEL_FROM", 0)
    write_label_pdf(labels, together, workers=2)
    assert alone.getvalue() == together.getvalue()
    assert alone.getvalue().startswith(b"%PDF-")


def test_progress_reports_after_each_page(make_sheet: Callable) -> None:
    seen: list[int] = []
    labels = make_sheet("tiny").labels
    write_label_pdf(iter(labels), io.BytesIO(), progress=seen.append)
    assert seen == [*range(12, 80, 12), 80]


def test_the_pdf_can_go_to_a_file_object(make_sheet: Callable) -> None:
    out = io.BytesIO()
    assert write_label_pdf(make_sheet("tiny", limit=3).labels, out) == 3
    assert out.getvalue()[:5] == b"%PDF-"


def test_no_labels_is_an_error_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "empty.pdf"
    with pytest.raises(PrintingError, match="no labels"):
        write_label_pdf([], out)
    assert not out.exists()


def test_an_unknown_language_is_refused(make_sheet: Callable) -> None:
    with pytest.raises(ValueError, match="lang"):
        write_label_pdf(make_sheet("tiny", limit=1).labels, io.BytesIO(), lang="fr")
