"""Where everything goes on a label and on a sheet, independent of PDF or PNG.

A label is drawn from a short list of operations (:class:`Text`, :class:`Box`,
:class:`Symbol`) in millimetres from the label's top-left corner, y downwards.
:mod:`printing.sheet` plays them into a PDF and :mod:`printing.png` into a
Pillow image, so a PNG label is the same as its cell on the sheet. Operations
marked ``static`` are the same on every label of a kind and language (field
names); the PDF draws those once per document as a form.

Text widths are measured with the embedded font's metrics; a value too long
for its place is set smaller (down to a floor), then shortened with "…".
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from reportlab.pdfbase.pdfmetrics import stringWidth

from custody.labels import ItemKind
from printing.fonts import reportlab_font_name
from printing.printable import PrintableLabel, check_lang

PT = 25.4 / 72  # millimetres per point

KIND_NAMES: dict[str, dict[ItemKind, str]] = {
    "zh": {
        ItemKind.PAPER_BUNDLE: "试卷袋",
        ItemKind.ANSWER_CARD_BUNDLE: "答题卡袋",
        ItemKind.LISTENING_DISC: "听力光盘",
        ItemKind.ANSWER_KEY: "答案",
        ItemKind.BACKUP_PAPER: "副题",
        ItemKind.BOX: "试卷箱",
        ItemKind.BADGE: "工作证",
    },
    "en": {
        ItemKind.PAPER_BUNDLE: "PAPERS",
        ItemKind.ANSWER_CARD_BUNDLE: "ANSWER CARDS",
        ItemKind.LISTENING_DISC: "LISTENING DISC",
        ItemKind.ANSWER_KEY: "ANSWER KEY",
        ItemKind.BACKUP_PAPER: "BACKUP PAPER",
        ItemKind.BOX: "BOX",
        ItemKind.BADGE: "STAFF BADGE",
    },
}

FIELD_NAMES: dict[str, dict[str, str]] = {
    "zh": {"subject": "科目", "site": "考点", "unit": "单位", "room": "考场", "count": "份数",
           "seal": "封条号", "item": "编号", "page": "第 {page} 页", "none": "—"},
    "en": {"subject": "Subject", "site": "Site", "unit": "Unit", "room": "Room", "count": "Count",
           "seal": "Seal no.", "item": "Item", "page": "page {page}", "none": "—"},
}

#: What the count counts, by kind: papers in a bundle, bundles in a box.
COUNT_UNITS: dict[str, dict[ItemKind, str]] = {
    "zh": {ItemKind.BOX: "件", ItemKind.LISTENING_DISC: "张", ItemKind.BADGE: ""},
    "en": {ItemKind.BOX: "items", ItemKind.LISTENING_DISC: "disc", ItemKind.BADGE: ""},
}
DEFAULT_COUNT_UNIT = {"zh": "份", "en": "copies"}

#: Kinds that go to an exam site or room; the others go to an office or the grading centre.
SITE_BOUND = frozenset({ItemKind.PAPER_BUNDLE, ItemKind.ANSWER_CARD_BUNDLE, ItemKind.LISTENING_DISC, ItemKind.BOX})


@dataclass(frozen=True)
class Text:
    """A line of text; ``x, y`` is the baseline's left end (or right end, or centre)."""

    x: float
    y: float
    text: str
    size: float  # points
    gray: float = 0.0
    align: Literal["left", "right", "center"] = "left"
    bold: bool = False
    static: bool = False


@dataclass(frozen=True)
class Box:
    """A filled rectangle; ``x, y`` is its top-left corner."""

    x: float
    y: float
    width: float
    height: float
    gray: float = 0.0
    static: bool = False


@dataclass(frozen=True)
class Symbol:
    """The QR symbol (without its quiet zone, which the layout keeps clear); ``x, y`` top-left."""

    x: float
    y: float
    size: float


Op = Text | Box | Symbol


@dataclass(frozen=True)
class SheetLayout:
    """A grid of equal labels on a page, in millimetres; cut along the grid lines."""

    columns: int = 2
    rows: int = 6
    page_width: float = 210.0
    page_height: float = 297.0
    margin_x: float = 8.0
    margin_y: float = 10.5

    @property
    def per_page(self) -> int:
        return self.columns * self.rows

    @property
    def cell_width(self) -> float:
        return (self.page_width - 2 * self.margin_x) / self.columns

    @property
    def cell_height(self) -> float:
        return (self.page_height - 2 * self.margin_y) / self.rows

    def cell_origin(self, slot: int) -> tuple[float, float]:
        """Top-left corner of the ``slot``-th cell of a page (row by row), from the page's top-left."""
        row, column = divmod(slot, self.columns)
        return self.margin_x + column * self.cell_width, self.margin_y + row * self.cell_height


#: 2 x 6 labels of 97 x 46 mm: a 35 mm QR symbol (0.65 mm modules at version 9).
DEFAULT_LAYOUT = SheetLayout()
#: 3 x 8 labels of 64.7 x 34.5 mm: a 26 mm symbol, for small bags.
COMPACT_LAYOUT = SheetLayout(columns=3, rows=8, margin_x=8.0, margin_y=10.5)
LAYOUTS = {"2x6": DEFAULT_LAYOUT, "3x8": COMPACT_LAYOUT}

MIN_TEXT_SIZE = 5.5  # points; below this a photocopy is not readable
#: The font has no bold face: bold text is filled and outlined with a stroke this wide (points).
BOLD_STROKE = 0.35


def text_width(text: str, size: float, font: str | None = None) -> float:
    """Width of ``text`` at ``size`` points in the label font (or ``font``), in millimetres."""
    return float(stringWidth(text, font or reportlab_font_name(), size)) * PT


def fit(text: str, size: float, width: float, min_size: float = MIN_TEXT_SIZE,
        font: str | None = None) -> tuple[str, float]:
    """``text`` at the largest size up to ``size`` that fits ``width`` mm, shortened with … if need be."""
    return _fit(text, size, width, min_size, font or reportlab_font_name())


@lru_cache(maxsize=4096)  # names, subjects and rooms repeat across thousands of labels
def _fit(text: str, size: float, width: float, min_size: float, font: str) -> tuple[str, float]:
    natural = text_width(text, size, font)
    if natural <= width:
        return text, size
    smaller = max(min_size, size * width / natural * 0.995)
    if text_width(text, smaller, font) <= width:
        return text, smaller
    while len(text) > 1 and text_width(text + "…", smaller, font) > width:
        text = text[:-1]
    return text + "…", smaller


def _count_text(label: PrintableLabel, lang: str) -> str:
    unit = COUNT_UNITS[lang].get(label.kind, DEFAULT_COUNT_UNIT[lang])
    if not unit:
        return str(label.count)
    if lang == "en" and unit == "disc" and label.count != 1:
        unit = "discs"
    return f"{label.count} {unit}"


def label_ops(label: PrintableLabel, width: float, height: float, lang: str = "zh") -> list[Op]:
    """The drawing of one label in a ``width`` x ``height`` mm cell.

    The QR symbol sits on the left with its quiet zone inside the cell; the
    fields run down the right: exam, kind (reversed out of black), subject
    (largest), site or unit, room and count, seal number, item id.
    """
    check_lang(lang)
    font = reportlab_font_name()
    names = FIELD_NAMES[lang]
    s = height / 46.0  # everything below is drawn for a 46 mm high cell and scaled

    def pt(size: float) -> float:  # a text size, scaled, never below the readable floor
        return max(MIN_TEXT_SIZE, size * s)

    pad = 3.0 * s
    qr_box = height - 2 * pad  # the symbol and its quiet zone
    symbol = qr_box * 53 / 61  # a version-9 symbol keeps a 4-module quiet zone
    ops: list[Op] = [Symbol(pad + (qr_box - symbol) / 2, pad + (qr_box - symbol) / 2, symbol)]

    left = pad + qr_box + 1.0 * s
    right = width - pad - 0.5 * s
    column = right - left
    exam, exam_size = fit(label.exam_name, pt(7.0), column, font=font)
    ops.append(Text(left, 6.6 * s, exam, exam_size, gray=0.2))

    kind_name = KIND_NAMES[lang][label.kind]
    kind_name, kind_size = fit(kind_name, pt(10.5 if lang == "zh" else 9.0), column * 0.62, font=font)
    tag_w = text_width(kind_name, kind_size, font) + 3.0 * s
    ops.append(Box(left, 8.4 * s, tag_w, 5.9 * s, static=True))
    ops.append(Text(left + 1.5 * s, 12.6 * s, kind_name, kind_size, gray=1.0, bold=True, static=True))
    dest, dest_size = fit(label.destination, pt(8.5), column - tag_w - 2.0 * s, font=font)
    ops.append(Text(right, 12.6 * s, dest, dest_size, align="right", bold=True))

    field_size = pt(7.0)
    headings = [names["subject"], names["site"], names["unit"], names["room"], names["count"], names["seal"],
                names["item"]]
    value_x = left + max(text_width(h, field_size, font) for h in headings) + 1.6 * s
    value_w = right - value_x
    site_heading = names["site"] if label.kind in SITE_BOUND else names["unit"]
    none = names["none"]

    def field(y: float, heading: str, x: float = left) -> None:
        ops.append(Text(x, y * s, heading, field_size, gray=0.35, static=True))

    def value(y: float, text: str, size: float, room: float, x: float = value_x, bold: bool = False) -> None:
        shown, size = fit(text, pt(size), room, font=font)
        ops.append(Text(x, y * s, shown, size, bold=bold))

    field(20.0, names["subject"])
    value(20.0, label.subject_name or none, 12.5, value_w, bold=True)
    field(25.6, site_heading)
    value(25.6, label.site_name, 9.0, value_w)

    # Room and count share a line: the room on the left, the count on the right half.
    half = left + column * 0.58
    count_heading_w = text_width(names["count"], field_size, font) + 1.6 * s
    field(31.0, names["room"])
    value(31.0, label.room_name or none, 9.0, half - value_x - 1.0 * s)
    field(31.0, names["count"], x=half)
    value(31.0, _count_text(label, lang), 9.0, right - half - count_heading_w, x=half + count_heading_w)
    field(36.4, names["seal"])
    value(36.4, label.seal or none, 9.0, value_w)
    field(41.8, names["item"])
    value(41.8, label.item_id, 9.0, value_w, bold=True)
    return ops
