"""The Chinese font labels are printed in.

reportlab embeds only TrueType-outline fonts (``glyf``); the CFF-outline Noto
CJK fonts that many systems carry are refused. :func:`find_cjk_font` looks, in
order, at

1. the environment variable ``CUSTODY_FONT``: a path, optionally followed by
   ``,INDEX`` to choose a face in a TrueType collection (``.ttc``); when it is
   set, it is the only candidate, so a typo is reported rather than silently
   replaced by another font;
2. the fonts Debian packages install: WenQuanYi Zen Hei (``fonts-wqy-zenhei``),
   WenQuanYi Micro Hei (``fonts-wqy-microhei``), AR PL UMing / UKai
   (``fonts-arphic-uming``, ``fonts-arphic-ukai``), Droid Sans Fallback
   (``fonts-droid-fallback``);

and raises :class:`custody.errors.FontMissing` naming what it tried and what to
install. A candidate counts only if reportlab can embed it and it has glyphs
for the characters a label prints (科目, 考点, ...).

:func:`reportlab_font_name` registers the font with reportlab once per process;
:func:`pillow_font` opens the same face for PNG labels, so both look alike.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from PIL import ImageFont
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFError, TTFont

from custody.errors import FontMissing

ENV_VAR = "CUSTODY_FONT"

#: (path, face index, Debian package): tried in this order when CUSTODY_FONT is unset.
KNOWN_FONTS: tuple[tuple[str, int, str], ...] = (
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0, "fonts-wqy-zenhei"),
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0, "fonts-wqy-microhei"),
    ("/usr/share/fonts/truetype/arphic/uming.ttc", 0, "fonts-arphic-uming"),
    ("/usr/share/fonts/truetype/arphic/ukai.ttc", 0, "fonts-arphic-ukai"),
    ("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf", 0, "fonts-droid-fallback"),
)

#: Characters every label prints; a font lacking any of them would show boxes.
PROBE_TEXT = "科目考点考场份数封条号编号试卷袋答题卡听力光盘副题箱工作证语文0123456789ABCXYZ-"

INSTALL_HINT = (
    "install a Chinese TrueType font, e.g. `sudo apt-get install fonts-wqy-zenhei`, "
    f"or point {ENV_VAR} at a TrueType (.ttf/.ttc, not CFF/OpenType .otf) Chinese font, "
    f"as `{ENV_VAR}=/path/font.ttc,0`"
)


@dataclass(frozen=True)
class FontFile:
    """One face of a font file that reportlab can embed and that covers Chinese."""

    path: str
    index: int
    family: str

    @property
    def reportlab_name(self) -> str:
        # One name per file and face, so two fonts in one process never clash.
        digest = hashlib.sha256(f"{self.path},{self.index}".encode()).hexdigest()[:8]
        return f"CustodyCJK-{digest}"


def _parse_env(value: str) -> tuple[str, int]:
    path, sep, index = value.strip().rpartition(",")
    if sep and index.strip().isdigit():
        return path.strip(), int(index)
    return value.strip(), 0


def _problem_with(path: str, index: int) -> str | FontFile:
    """The reason ``path`` cannot be used, or the usable :class:`FontFile`."""
    if not os.path.isfile(path):
        return "no such file"
    try:
        font = TTFont(f"probe-{index}", path, subfontIndex=index)
    except TTFError as exc:
        return str(exc)
    except Exception as exc:  # a truncated or foreign file can fail anywhere in the parser
        return f"not a readable font ({type(exc).__name__}: {exc})"
    missing = [c for c in PROBE_TEXT if ord(c) not in font.face.charToGlyph]
    if missing:
        return f"has no glyphs for {''.join(missing[:12])!r}"
    family = font.face.name.decode("latin-1") if isinstance(font.face.name, bytes) else str(font.face.name)
    return FontFile(path, index, family)


@lru_cache(maxsize=8)
def _find(env_value: str | None) -> FontFile:
    if env_value:
        path, index = _parse_env(env_value)
        found = _problem_with(path, index)
        if isinstance(found, FontFile):
            return found
        raise FontMissing(f"the label font {ENV_VAR}={env_value!r} cannot be used: {found}; {INSTALL_HINT}")
    tried = []
    for path, index, package in KNOWN_FONTS:
        found = _problem_with(path, index)
        if isinstance(found, FontFile):
            return found
        tried.append(f"{path} ({package}): {found}")
    raise FontMissing(
        "no Chinese font that can be embedded in a PDF was found; tried:\n  " + "\n  ".join(tried)
        + f"\n{INSTALL_HINT}"
    )


def find_cjk_font(environ: Mapping[str, str] | None = None) -> FontFile:
    """The font labels are printed in, or raise :class:`FontMissing` saying what to install."""
    env = os.environ if environ is None else environ
    return _find(env.get(ENV_VAR) or None)


_register_lock = threading.Lock()


def reportlab_font_name(font: FontFile | None = None) -> str:
    """Register ``font`` (default: :func:`find_cjk_font`) with reportlab, once; return its name."""
    font = font or find_cjk_font()
    name = font.reportlab_name
    with _register_lock:
        if name not in pdfmetrics.getRegisteredFontNames():
            pdfmetrics.registerFont(TTFont(name, font.path, subfontIndex=font.index))
    return name


@lru_cache(maxsize=64)
def _pillow_font(path: str, index: int, size_px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size_px, index=index)


def pillow_font(size_px: float, font: FontFile | None = None) -> ImageFont.FreeTypeFont:
    """The same face for Pillow, at ``size_px`` pixels (cached)."""
    font = font or find_cjk_font()
    return _pillow_font(font.path, font.index, max(1, int(round(size_px))))
