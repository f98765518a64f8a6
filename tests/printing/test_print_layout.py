"""The label layout: every text stays in its column, long names shrink, then shorten."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custody.labels import ItemKind
from printing.layout import (
    COMPACT_LAYOUT,
    DEFAULT_LAYOUT,
    KIND_NAMES,
    MIN_TEXT_SIZE,
    PT,
    Box,
    SheetLayout,
    Symbol,
    Text,
    fit,
    label_ops,
    text_width,
)
from printing.printable import PrintableLabel


def extent(op: Text) -> tuple[float, float]:
    width = text_width(op.text, op.size)
    start = {"left": op.x, "right": op.x - width, "center": op.x - width / 2}[op.align]
    return start, start + width


def check_inside(ops: list, width: float, height: float) -> None:
    symbol = next(op for op in ops if isinstance(op, Symbol))
    quiet = symbol.size * 4 / 53  # the quiet zone of a version-9 symbol
    assert symbol.x >= quiet and symbol.y >= quiet and symbol.y + symbol.size + quiet <= height + 1e-6
    clear_from = symbol.x + symbol.size + quiet
    for op in ops:
        if isinstance(op, Text):
            start, end = extent(op)
            assert clear_from - 1e-6 <= start and end <= width + 1e-6, (op, clear_from, width)
            assert op.size * PT <= op.y <= height, op
            assert op.size >= MIN_TEXT_SIZE - 1e-9
        elif isinstance(op, Box):
            assert clear_from - 1e-6 <= op.x and op.x + op.width <= width and op.y + op.height <= height


@pytest.mark.parametrize("layout", [DEFAULT_LAYOUT, COMPACT_LAYOUT], ids=["2x6", "3x8"])
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_sample_labels_stay_in_their_cell(make_sheet: Callable, layout: SheetLayout, lang: str) -> None:
    for label in make_sheet("tiny", lang=lang).labels:
        check_inside(label_ops(label, layout.cell_width, layout.cell_height, lang), layout.cell_width,
                     layout.cell_height)


def test_the_qr_is_at_least_25_mm_in_every_layout() -> None:
    for layout in (DEFAULT_LAYOUT, COMPACT_LAYOUT):
        symbol = next(op for op in label_ops(_label(), layout.cell_width, layout.cell_height) if isinstance(op, Symbol))
        assert symbol.size >= 25.0


def _label(**changes: object) -> PrintableLabel:
    base = PrintableLabel(text="CUS1:1", item_id="ZL-C-K050-45", kind=ItemKind.ANSWER_CARD_BUNDLE,
                          exam_name="2017年南昌市中等学校招生考试", subject_name="思想品德与历史",
                          site_name="经济技术开发区外国语学校考点", room_name="第45考场", count=30,
                          seal="FT0023228", destination="K050-45")
    return replace(base, **changes)  # type: ignore[arg-type]


names = st.text(st.sampled_from("南昌市第一中学考点外国语实验ABCXYZ0123456789-"), min_size=1, max_size=60)


@settings(max_examples=80, deadline=None)
@given(site=names, subject=names, exam=names, room=names, seal=names, item=names,
       kind=st.sampled_from(list(ItemKind)), count=st.integers(0, 2**32 - 1), lang=st.sampled_from(["zh", "en"]))
def test_any_names_stay_in_the_cell(site: str, subject: str, exam: str, room: str, seal: str, item: str,
                                    kind: ItemKind, count: int, lang: str) -> None:
    label = _label(site_name=site, subject_name=subject, exam_name=exam, room_name=room, seal=seal,
                   item_id=item, kind=kind, count=count)
    layout = DEFAULT_LAYOUT
    check_inside(label_ops(label, layout.cell_width, layout.cell_height, lang), layout.cell_width,
                 layout.cell_height)


def test_fit_shrinks_then_shortens() -> None:
    assert fit("语文", 12, 50) == ("语文", 12)
    text, size = fit("思想品德与历史", 12, 20)
    assert text == "思想品德与历史" and MIN_TEXT_SIZE <= size < 12 and text_width(text, size) <= 20
    text, size = fit("很长" * 40, 9, 30)
    assert text.endswith("…") and size == MIN_TEXT_SIZE and text_width(text, size) <= 30


def test_every_kind_has_a_name_in_both_languages() -> None:
    assert KIND_NAMES["zh"][ItemKind.PAPER_BUNDLE] == "试卷袋"
    for lang in ("zh", "en"):
        assert set(KIND_NAMES[lang]) == set(ItemKind)


def test_site_heading_follows_where_the_item_goes() -> None:
    def headings(label: PrintableLabel) -> set[str]:
        return {op.text for op in label_ops(label, 97, 46) if isinstance(op, Text) and op.static}

    assert "考点" in headings(_label(kind=ItemKind.PAPER_BUNDLE))
    backup = headings(_label(kind=ItemKind.BACKUP_PAPER, room_name=None, site_name="东湖区中招办"))
    assert "单位" in backup and "考点" not in backup


def test_cells_tile_the_page_inside_the_margins() -> None:
    for layout in (DEFAULT_LAYOUT, COMPACT_LAYOUT):
        x, y = layout.cell_origin(layout.per_page - 1)
        assert x + layout.cell_width == pytest.approx(layout.page_width - layout.margin_x)
        assert y + layout.cell_height == pytest.approx(layout.page_height - layout.margin_y)
