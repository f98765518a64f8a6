"""Sheets of labels: many labels, one PDF, A4 pages with cut marks.

``write_label_pdf`` lays labels on a grid (:data:`printing.layout.DEFAULT_LAYOUT`,
2 x 6 labels of 97 x 46 mm), in the order given, and writes one PDF with the
label font embedded. The whole city's 23,000 labels take well under two minutes:

* the QR matrices are computed in worker processes (the mask choice is most of
  the cost), in batches whose results are consumed in submission order, so the
  PDF is the same whatever the number of workers;
* each symbol is one inline 1-bit image mask (a few hundred bytes, drawn with
  no interpolation) rather than hundreds of rectangles;
* what every label of a kind shares (field names, the kind tag) is a form
  XObject drawn by reference; crop marks are one form per document.

Nothing is written to ``out`` until every label has been drawn: a run that
fails half-way (a bad label, an interrupt) leaves no half-filled sheet. The output is byte-for-byte reproducible
(reportlab's invariant mode: fixed creation date and document id).
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from itertools import chain, islice
from typing import IO

from reportlab import rl_config
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas
from reportlab.pdfgen.textobject import PDFTextObject

from custody.errors import PrintingError
from printing.fonts import reportlab_font_name
from printing.layout import BOLD_STROKE, DEFAULT_LAYOUT, FIELD_NAMES, Box, Op, SheetLayout, Symbol, Text, label_ops
from printing.printable import PrintableLabel, check_lang, printable_label
from printing.qrmatrix import label_mask_bits_batch

__all__ = ["PrintableLabel", "printable_label", "write_label_pdf", "SheetLayout", "DEFAULT_LAYOUT"]

#: Labels per worker task: big enough to amortise the round trip, small enough to keep both cores busy.
BATCH = 60
#: Below this many labels, starting worker processes costs more than it saves.
PARALLEL_FROM = 400

CROP_MARK = 5.0  # mm, length of a crop mark in the margin
CROP_GAP = 1.5  # mm, gap between a crop mark and the cut line's corner
TICK = 1.2  # mm, half-length of the cross at inner grid intersections


def write_label_pdf(
    labels: Iterable[PrintableLabel],
    out: str | os.PathLike[str] | IO[bytes],
    *,
    lang: str = "zh",
    progress: Callable[[int], None] | None = None,
    layout: SheetLayout = DEFAULT_LAYOUT,
    workers: int | None = None,
) -> int:
    """Write ``labels`` as a PDF sheet to ``out`` (a path or a binary file); return how many.

    ``progress`` is called after each page with the number of labels drawn so
    far. ``workers`` is the number of processes computing QR symbols (default:
    the CPUs this process may use; 0 computes them here). Raises
    :class:`PrintingError` for an empty ``labels`` (no file is written) and
    :class:`custody.errors.FontMissing` when no Chinese font is installed.
    """
    check_lang(lang)
    font = reportlab_font_name()
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    # initialFontName: reportlab's default Helvetica would be listed, unembedded, on every page.
    target = os.fspath(out) if isinstance(out, (str, os.PathLike)) else out
    canvas = Canvas(target, pagesize=(layout.page_width * mm, layout.page_height * mm), pageCompression=1,
                    invariant=1, initialFontName=font, initialFontSize=7)
    canvas.setTitle("Signed custody labels" if lang == "en" else "保密材料交接标签")
    canvas.setAuthor("custody")
    canvas.setCreator("custody printing.sheet")
    writer = _SheetWriter(canvas, layout, lang, font)
    # Binary (Flate only) streams: reportlab's pure-Python ASCII85 encoder would add about
    # 8 s for the city and a quarter to the file's size. The setting is global in reportlab
    # (not thread-safe), so it is restored afterwards.
    a85 = rl_config.useA85
    rl_config.useA85 = 0
    try:
        batches = _with_symbols(labels, workers)
        try:
            for batch, symbols in batches:
                writer.add(batch, symbols, progress)
        finally:
            batches.close()  # on an error, stop the workers now, not when garbage is collected
        if writer.count == 0:
            raise PrintingError("there are no labels to print; nothing was written")
        writer.finish(progress)
        canvas.save()
    finally:
        rl_config.useA85 = a85
    return writer.count


def _batches(labels: Iterable[PrintableLabel], size: int) -> Iterator[list[PrintableLabel]]:
    it = iter(labels)
    while batch := list(islice(it, size)):
        yield batch


def _with_symbols(
    labels: Iterable[PrintableLabel], workers: int
) -> Generator[tuple[list[PrintableLabel], list[tuple[int, bytes]]], None, None]:
    """Each batch of labels with its QR image masks, in the order given.

    A job of fewer than :data:`PARALLEL_FROM` labels is computed here. A bigger
    one goes to ``workers`` processes, with up to ``2 * workers + 2`` batches in
    flight, taken back strictly in submission order.
    """
    batches = _batches(labels, BATCH)
    head = list(islice(batches, max(1, -(-PARALLEL_FROM // BATCH))))  # enough to tell a big job
    source = chain(head, batches)
    big = sum(len(batch) for batch in head) >= PARALLEL_FROM
    pool = _start_pool(workers) if workers >= 1 and big else None
    if pool is None:
        for batch in source:
            yield batch, label_mask_bits_batch([label.text for label in batch])
        return
    pending: deque[tuple[list[PrintableLabel], Future[list[tuple[int, bytes]]]]] = deque()
    try:
        for batch in source:
            pending.append((batch, pool.submit(label_mask_bits_batch, [label.text for label in batch])))
            if len(pending) >= 2 * workers + 2:
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _start_pool(workers: int) -> Executor | None:
    """Worker processes, or ``None`` where none can be started (a sandbox): slower, same result."""
    # spawn, not fork: safe when the caller has threads (a web server), the same on every platform.
    try:
        return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    except (OSError, NotImplementedError):
        return None


class _SheetWriter:
    """Draws labels into cells, page by page, on a reportlab canvas."""

    def __init__(self, canvas: Canvas, layout: SheetLayout, lang: str, font: str):
        self.canvas = canvas
        self.layout = layout
        self.lang = lang
        self.font = font
        self.count = 0
        self.slot = 0
        self.page = 1
        self.page_items: list[str] = []
        self.forms: dict[tuple[Op, ...], str] = {}
        self.text: PDFTextObject | None = None
        self._define_crop_marks()

    # --- per label ---------------------------------------------------------

    def add(self, batch: list[PrintableLabel], symbols: list[tuple[int, bytes]],
            progress: Callable[[int], None] | None) -> None:
        layout = self.layout
        for label, (width, bits) in zip(batch, symbols, strict=True):
            if self.slot == layout.per_page:
                self._end_page(progress)
            x, y = layout.cell_origin(self.slot)
            self._draw_label(label, width, bits, x, y)
            self.page_items.append(label.item_id)
            self.slot += 1
            self.count += 1

    def _draw_label(self, label: PrintableLabel, width: int, bits: bytes, x: float, y: float) -> None:
        layout, canvas = self.layout, self.canvas
        ops = label_ops(label, layout.cell_width, layout.cell_height, self.lang)
        page_h = layout.page_height
        static = tuple(op for op in ops if getattr(op, "static", False))
        if static:
            canvas.saveState()
            canvas.translate(x * mm, (page_h - y) * mm)
            canvas.doForm(self._form(static))
            canvas.restoreState()
        for op in ops:
            if isinstance(op, Symbol):
                size = op.size * mm
                left, bottom = (x + op.x) * mm, (page_h - y - op.y - op.size) * mm
                # One inline image mask: 1 = light, painted modules take the fill colour (black).
                canvas.addLiteral(
                    f"q 0 g {size:.3f} 0 0 {size:.3f} {left:.3f} {bottom:.3f} cm "
                    f"BI /W {width} /H {width} /BPC 1 /IM true /I false /F /AHx ID {bits.hex()}> EI Q"
                )
            elif isinstance(op, Text) and not op.static:
                self._text(op, x, y)

    def _text(self, op: Text, x: float, y: float) -> None:
        if self.text is None:
            self.text = self.canvas.beginText()
        self._put_text(self.text, op, x * mm, (self.layout.page_height - y) * mm)

    def _put_text(self, t: PDFTextObject, op: Text, left: float, top: float) -> None:
        """Add ``op`` to ``t`` for a cell whose top-left corner is at (``left``, ``top``) points."""
        shift = 0.0
        if op.align != "left":
            shift = self.canvas.stringWidth(op.text, self.font, op.size)
            shift = shift if op.align == "right" else shift / 2
        t.setFont(self.font, op.size)
        t.setFillGray(op.gray)
        if op.bold:  # the font has no bold face: fill and outline the glyphs (line width BOLD_STROKE)
            t.setTextRenderMode(2)
            t.setStrokeGray(op.gray)
        else:
            t.setTextRenderMode(0)
        t.setTextOrigin(left + op.x * mm - shift, top - op.y * mm)
        t.textOut(op.text)

    def _form(self, ops: tuple[Op, ...]) -> str:
        """A form XObject drawing ``ops`` relative to a cell's top-left corner; made once."""
        name = self.forms.get(ops)
        if name is not None:
            return name
        name = f"cell{len(self.forms)}"
        self.forms[ops] = name
        canvas, layout = self.canvas, self.layout
        canvas.beginForm(name, 0, -layout.cell_height * mm, layout.cell_width * mm, 0)
        for op in ops:
            if isinstance(op, Box):
                canvas.setFillGray(op.gray)
                canvas.rect(op.x * mm, -(op.y + op.height) * mm, op.width * mm, op.height * mm, stroke=0, fill=1)
        text = canvas.beginText()
        for op in ops:
            if isinstance(op, Text):
                self._put_text(text, op, 0.0, 0.0)
        canvas.setLineWidth(BOLD_STROKE)
        canvas.drawText(text)
        canvas.endForm()
        return name

    # --- per page ----------------------------------------------------------

    def _end_page(self, progress: Callable[[int], None] | None) -> None:
        canvas = self.canvas
        if self.text is not None:
            canvas.setLineWidth(BOLD_STROKE)
            canvas.drawText(self.text)
            self.text = None
        canvas.doForm("cropmarks")
        if self.page_items:
            footer = FIELD_NAMES[self.lang]["page"].format(page=self.page)
            footer += f"   {self.page_items[0]} … {self.page_items[-1]}   ({len(self.page_items)})"
            text = canvas.beginText((self.layout.margin_x + CROP_GAP + CROP_MARK + 2) * mm, 4.5 * mm)
            text.setTextRenderMode(0)  # the render mode outlives BT/ET: labels may have left it at bold
            text.setFont(self.font, 6.5)
            text.setFillGray(0.4)
            text.textOut(footer)
            canvas.drawText(text)
        canvas.showPage()
        self.page += 1
        self.slot = 0
        self.page_items = []
        if progress is not None:
            progress(self.count)

    def finish(self, progress: Callable[[int], None] | None) -> None:
        if self.slot:
            self._end_page(progress)

    def _define_crop_marks(self) -> None:
        """Crop marks in the margins at every grid line, small crosses where inner lines meet."""
        canvas, layout = self.canvas, self.layout
        w, h = layout.page_width, layout.page_height
        xs = [layout.margin_x + c * layout.cell_width for c in range(layout.columns + 1)]
        ys = [layout.margin_y + r * layout.cell_height for r in range(layout.rows + 1)]
        top, bottom = ys[0], ys[-1]
        left, right = xs[0], xs[-1]
        canvas.beginForm("cropmarks", 0, 0, w * mm, h * mm)
        canvas.setLineWidth(0.25)
        canvas.setStrokeGray(0)
        path = canvas.beginPath()
        near, far = CROP_GAP, CROP_GAP + CROP_MARK
        for x in xs:
            for y0, y1 in ((top - near, top - far), (bottom + near, bottom + far)):
                path.moveTo(x * mm, (h - y0) * mm)
                path.lineTo(x * mm, (h - y1) * mm)
        for y in ys:
            for x0, x1 in ((left - near, left - far), (right + near, right + far)):
                path.moveTo(x0 * mm, (h - y) * mm)
                path.lineTo(x1 * mm, (h - y) * mm)
        canvas.drawPath(path, stroke=1, fill=0)
        canvas.setStrokeGray(0.55)
        ticks = canvas.beginPath()
        for x in xs:
            for y in ys:
                if x in (left, right) and y in (top, bottom):
                    continue  # outer corners: the margin marks say it already
                ticks.moveTo((x - TICK) * mm, (h - y) * mm)
                ticks.lineTo((x + TICK) * mm, (h - y) * mm)
                ticks.moveTo(x * mm, (h - y - TICK) * mm)
                ticks.lineTo(x * mm, (h - y + TICK) * mm)
        canvas.drawPath(ticks, stroke=1, fill=0)
        canvas.endForm()
