"""One label as a PNG image: the same drawing as its cell on the PDF sheet."""

from __future__ import annotations

import os
from typing import IO

import numpy as np
from PIL import Image, ImageDraw

from printing.fonts import pillow_font
from printing.layout import BOLD_STROKE, DEFAULT_LAYOUT, PT, Box, SheetLayout, Symbol, Text, label_ops
from printing.printable import PrintableLabel
from printing.qrmatrix import label_matrix


def label_png(
    label: PrintableLabel, *, dpi: int = 300, lang: str = "zh", layout: SheetLayout = DEFAULT_LAYOUT
) -> Image.Image:
    """The label drawn at ``dpi`` as a greyscale ("L") image, one cell of ``layout`` in size.

    The QR modules are whole pixels (each module is as many pixels as its
    position rounds to), so the image decodes at any dpi from about 150.
    """
    if dpi < 72:
        raise ValueError(f"dpi must be at least 72, found {dpi}")
    px = dpi / 25.4  # pixels per millimetre
    width, height = layout.cell_width, layout.cell_height
    image = Image.new("L", (round(width * px), round(height * px)), 255)
    draw = ImageDraw.Draw(image)
    for op in label_ops(label, width, height, lang):
        if isinstance(op, Symbol):
            _draw_symbol(image, label.text, op, px)
        elif isinstance(op, Box):
            draw.rectangle(
                (round(op.x * px), round(op.y * px), round((op.x + op.width) * px) - 1,
                 round((op.y + op.height) * px) - 1),
                fill=round(op.gray * 255),
            )
        elif isinstance(op, Text):
            size_px = op.size * PT * px
            font = pillow_font(size_px)
            anchor = {"left": "ls", "right": "rs", "center": "ms"}[op.align]
            shade = round(op.gray * 255)
            # PDF strokes the outline centred on it: half the stroke lies outside, as Pillow's does.
            stroke = max(1, round(BOLD_STROKE / 2 * PT * px)) if op.bold else 0
            draw.text((op.x * px, op.y * px), op.text, font=font, fill=shade, anchor=anchor,
                      stroke_width=stroke, stroke_fill=shade)
    return image


def _draw_symbol(image: Image.Image, text: str, op: Symbol, px: float) -> None:
    matrix = label_matrix(text)
    n = matrix.shape[0]
    # Module edges at rounded pixel positions: every module gets whole pixels.
    edges = np.round(np.linspace(op.x * px, (op.x + op.size) * px, n + 1)).astype(int)
    rows = np.round(np.linspace(op.y * px, (op.y + op.size) * px, n + 1)).astype(int)
    xs = np.repeat(np.arange(n), np.diff(edges))
    ys = np.repeat(np.arange(n), np.diff(rows))
    block = np.where(matrix[np.ix_(ys, xs)] == 1, 0, 255).astype(np.uint8)
    image.paste(Image.fromarray(block, mode="L"), (int(edges[0]), int(rows[0])))


def save_label_png(
    label: PrintableLabel, out: str | os.PathLike[str] | IO[bytes], *, dpi: int = 300, lang: str = "zh",
    layout: SheetLayout = DEFAULT_LAYOUT,
) -> None:
    """Write :func:`label_png` as a PNG file that records its ``dpi`` (so it prints at true size)."""
    label_png(label, dpi=dpi, lang=lang, layout=layout).save(out, format="PNG", dpi=(dpi, dpi), optimize=True)
