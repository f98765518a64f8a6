"""QR symbols for label texts (INTERFACES §1).

The prefix ``CUS1:`` is encoded as an alphanumeric segment and the digits as a
numeric segment, at error correction level M. Numeric mode is as dense as raw
bytes and survives decoders that mangle byte mode (zbar's charset guessing,
OpenCV's truncation at 0x00).
"""

from __future__ import annotations

from typing import Any

import segno
from PIL import Image
from segno import consts

from custody.labels import QR_PREFIX


def qr_code(text: str, prefix: str = QR_PREFIX) -> segno.QRCode:
    """The QR symbol of a label text (or a station manifest's, with its ``prefix``; any other text for tests)."""
    if text.startswith(prefix) and text[len(prefix):].isdigit():
        # segno takes a list of (text, mode) segments as well, which its annotations do not say
        content: Any = [
            (prefix, consts.MODE_ALPHANUMERIC),
            (text[len(prefix):], consts.MODE_NUMERIC),
        ]
    else:
        content = text
    return segno.make(content, error="m", boost_error=False, micro=False)


def qr_image(text: str, module_px: int = 4, border: int = 4, prefix: str = QR_PREFIX) -> Image.Image:
    """A black-on-white greyscale image of the symbol, ``module_px`` pixels a module."""
    code = qr_code(text, prefix)
    size = int(code.symbol_size(scale=1, border=border)[0])  # whole modules at scale 1
    img = Image.new("L", (size, size), 255)
    pixels = img.load()
    assert pixels is not None  # an image made in memory always loads
    for y, row in enumerate(code.matrix):
        for x, dark in enumerate(row):
            if dark:
                pixels[x + border, y + border] = 0
    if module_px != 1:
        img = img.resize((size * module_px, size * module_px), Image.Resampling.NEAREST)
    return img
