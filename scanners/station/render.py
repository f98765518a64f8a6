"""Frame + overlay + side panel -> one RGB image: the station's picture, as a pure function.

:func:`render_frame` draws every reading's polygon in its colour (green,
amber, red, grey) with a tag, the "请保持稳定" (hold still) banner on a
blurred frame, and a side panel with the handover, the counts (应到 / 已扫 /
缺少 / 多出, 逐袋清点), both sides' people (双人), what still stops a
confirm, the latest messages, the key bundle's age and the unsent count.
Chinese text is drawn with Pillow and the CJK font of :mod:`printing.fonts`
(OpenCV's putText cannot draw it). No window, no state: the window shows what
this returns, and tests save it as a PNG and look at it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from custody.events import ACTION_ZH, Action
from scanners.station.messages import SIDES, status_message
from scanners.station.session import FrameView, HandoverSession

PANEL_WIDTH = 440
COLOURS: dict[str, tuple[int, int, int]] = {
    "green": (36, 186, 76), "amber": (245, 166, 0), "red": (226, 38, 38), "grey": (150, 150, 150),
    "white": (240, 240, 240), "dim": (160, 166, 176), "panel": (28, 31, 36), "box": (44, 48, 56),
}
#: The action's name on the panel: Chinese (custody.events.ACTION_ZH, as in the rules' messages), English.
ACTION_NAMES: dict[str, tuple[str, str]] = {
    action.value: (ACTION_ZH[action], action.value.replace("_", " ").capitalize()) for action in Action}
KEYS_HELP = ("Enter 确认 · D 封条破损 · M 登记缺少 · A 接收多出 · S 同步 · L 中/EN · Esc 取消",
             "Enter confirm · D seal damaged · M record missing · A accept extra · S sync · L 中/EN · Esc cancel")


@dataclass(frozen=True)
class Panel:
    """What the side panel shows; built from a session by :func:`panel_for`."""

    title: str
    subtitle: str
    counts: dict[str, int]
    people: list[tuple[str, int, int, str]]  # (side label, have, need, names)
    problems: list[str]
    messages: list[tuple[str, str]]  # (colour, text), newest first
    bundle: tuple[str, str]  # (colour, text)
    unsent: tuple[str, str]
    banner: tuple[str, str] | None = None  # (colour, text) across the picture's bottom
    keys: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    ready: str = ""  # shown instead of the problems when the session can be confirmed


def panel_for(session: HandoverSession, *, lang: str, bundle_status: dict[str, Any], unsent: int,
              messages: Sequence[tuple[str, str, str]] = (), banner: tuple[str, str, str] | None = None) -> Panel:
    """The panel of a session. ``messages`` and ``banner`` are (colour, Chinese, English)."""
    zh = lang == "zh"
    name = ACTION_NAMES.get(session.action.value, (session.action.value, session.action.value))[0 if zh else 1]
    route = f"{session.from_unit or '—'} → {session.to_unit or '—'}"
    source = {"server": ("服务器清单", "server list"), "manifest": ("交接单", "manifest"),
              "none": ("无清单", "no list")}.get(session.expected_source.split("+")[0], ("", ""))
    counts = session.counts()
    people = []
    needs = {side: (need, have) for side, need, have in session.people_needed()}
    _, _, handed, received = session.roles
    sides = ["together"] if handed == received else (["received"] if handed is None else ["handed", "received"])
    for side in sides:
        listed = session.side_people(side) + (session.side_people("together") if side != "together" else [])
        need = 2
        have = len(listed) if side not in needs else needs[side][1]
        label = SIDES[side][0 if zh else 1]
        people.append((label, have, need, "、".join(p.name or p.staff for p in listed) if zh else
                       ", ".join(p.name or p.staff for p in listed)))
    if not bundle_status.get("present"):
        bundle = ("red", status_message("bundle_missing", lang))
    elif bundle_status.get("clock_behind_hours") is not None:
        bundle = ("red", status_message("clock_behind", lang, hours=bundle_status["clock_behind_hours"]))
    elif bundle_status.get("stale"):
        bundle = ("amber", status_message("bundle_stale", lang, hours=bundle_status.get("age_hours")))
    else:
        age = bundle_status.get("age_hours")
        bundle = ("green", f"密钥包 {age} 小时前更新" if zh else f"key bundle {age} h old")
    unsent_line = (("amber", status_message("unsent", lang, n=unsent)) if unsent
                   else ("green", status_message("all_sent", lang)))
    labels = ({"expected": "应到", "scanned": "已扫", "missing": "缺少", "unexpected": "多出", "bundles": "袋数",
               "refused": "拒收"} if zh else
              {"expected": "expected", "scanned": "scanned", "missing": "missing", "unexpected": "extra",
               "bundles": "bundles", "refused": "refused"})
    return Panel(
        title=f"{name} · {route}",
        subtitle=f"{session.id} · {source[0 if zh else 1]}"
                 + (f" · {session.counterpart}" if session.counterpart else ""),
        counts=counts, people=people, problems=[m for _, m in session.problems(lang)],
        messages=[(c, z if zh else e) for c, z, e in messages],
        bundle=bundle, unsent=unsent_line,
        banner=(banner[0], banner[1] if zh else banner[2]) if banner else None,
        keys=KEYS_HELP[0 if zh else 1], labels=labels, ready=status_message("ready", lang))


_FONT_CACHE: dict[int, Any] = {}


def font(size: int) -> Any:
    """The CJK font at ``size`` px (Pillow's default bitmap font if none is installed)."""
    if size not in _FONT_CACHE:
        try:
            from printing.fonts import pillow_font

            _FONT_CACHE[size] = pillow_font(size)
        except Exception:  # FontMissing: draw Latin text at least
            _FONT_CACHE[size] = ImageFont.load_default()
    return _FONT_CACHE[size]


def missing_glyphs(text: str, size: int = 18) -> set[str]:
    """The characters of ``text`` that the station's font cannot draw (they would show as empty boxes)."""
    f = font(size)
    if not hasattr(f, "getmask"):
        return set()
    notdef = bytes(f.getmask("\U0010fffd"))
    return {ch for ch in set(text) if not ch.isspace() and bytes(f.getmask(ch)) == notdef}


def _text_box(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, size: int,
              fill: tuple[int, int, int], background: tuple[int, int, int], max_width: int | None = None) -> None:
    f = font(size)
    if max_width is not None:
        while text and draw.textlength(text, font=f) > max_width:
            text = text[:-2] + "…"
        # keep the whole tag on the picture: a label near the right edge gets its tag shifted left
        x = max(4.0, min(xy[0], max_width - draw.textlength(text, font=f)))
        xy = (x, xy[1])
    x, y = xy
    left, top, right, bottom = draw.textbbox((x, y), text, font=f)
    draw.rectangle((left - 4, top - 3, right + 4, bottom + 3), fill=background)
    draw.text((x, y), text, font=f, fill=fill)


def _wrap(draw: ImageDraw.ImageDraw, text: str, size: int, width: int) -> list[str]:
    f = font(size)
    lines, line = [], ""
    for ch in text:
        if draw.textlength(line + ch, font=f) > width and line:
            lines.append(line)
            line = ch.lstrip()
        else:
            line += ch
    return lines + ([line] if line else [])


def render_frame(image: np.ndarray, view: FrameView, panel: Panel, *, hold_still: str = "请保持稳定",
                 max_height: int = 720) -> np.ndarray:
    """The station's picture: the frame (BGR, scaled to at most ``max_height``) with its overlay, and the
    panel on the right; returns an RGB uint8 array of height max(frame, 720) and width frame + 440."""
    h, w = image.shape[:2]
    scale = min(1.0, max_height / h)
    frame = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA) \
        if scale < 1.0 else image
    fh, fw = frame.shape[:2]
    height = max(fh, 720)
    canvas = Image.new("RGB", (fw + PANEL_WIDTH, height), COLOURS["panel"])
    canvas.paste(Image.fromarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)), (0, 0))
    draw = ImageDraw.Draw(canvas)
    for mark in view.marks:
        colour = COLOURS.get(mark.colour, COLOURS["grey"])
        points = [(x * scale, y * scale) for x, y in mark.polygon]
        draw.line(points + points[:1], fill=colour, width=5 if mark.colour != "grey" else 2, joint="curve")
        top = min(points, key=lambda p: p[1])
        tag = mark.tag if panel.labels.get("expected") == "应到" else mark.tag_en
        if tag:
            _text_box(draw, (max(2, top[0] - 40), max(2, top[1] - 30)), tag, 18, (255, 255, 255), colour,
                      max_width=fw - 10)
    if view.blurred:
        f = font(48)
        width = draw.textlength(hold_still, font=f)
        x, y = (fw - width) / 2, 24
        draw.rectangle((x - 24, y - 12, x + width + 24, y + 66), fill=(250, 200, 0))
        draw.text((x, y), hold_still, font=f, fill=(20, 20, 20))
    if panel.banner:
        banner_colour, text = panel.banner
        fill = COLOURS.get(banner_colour, COLOURS["grey"])
        draw.rectangle((0, fh - 64, fw, fh), fill=fill)
        _text_box(draw, (16, fh - 52), text, 30, (255, 255, 255), fill, max_width=fw - 32)
    _draw_panel(draw, fw, height, panel)
    return np.asarray(canvas)


def _draw_panel(draw: ImageDraw.ImageDraw, x0: int, height: int, panel: Panel) -> None:
    x, width = x0 + 20, PANEL_WIDTH - 40
    y = 16
    draw.text((x, y), panel.title, font=font(28), fill=COLOURS["white"])
    y += 40
    draw.text((x, y), panel.subtitle, font=font(16), fill=COLOURS["dim"])
    y += 32
    c, L = panel.counts, panel.labels
    cells = [("expected", c["expected"], "white"), ("scanned", c["scanned"], "green"),
             ("missing", c["missing"], "red" if c["missing"] else "dim"),
             ("unexpected", c["unexpected"], "amber" if c["unexpected"] else "dim")]
    cell_w = (width - 3 * 8) // 4
    for n, (key, value, colour) in enumerate(cells):
        cx = x + n * (cell_w + 8)
        draw.rectangle((cx, y, cx + cell_w, y + 92), fill=COLOURS["box"])
        draw.text((cx + 8, y + 6), L[key], font=font(18), fill=COLOURS["dim"])
        draw.text((cx + 8, y + 34), str(value), font=font(44), fill=COLOURS[colour])
    y += 104
    bundles = f"{L['bundles']} {c['bundles_scanned']} / {c['bundles_expected']}"
    if c.get("refused"):
        bundles += f"    {L['refused']} {c['refused']}"
    draw.text((x, y), bundles, font=font(22), fill=COLOURS["white"])
    y += 38
    for label, have, need, names in panel.people:
        ok = have >= need
        draw.text((x, y), f"{label} {have}/{need}", font=font(22), fill=COLOURS["green" if ok else "amber"])
        draw.text((x + 150, y + 3), names, font=font(18), fill=COLOURS["white"])
        y += 32
    y += 6
    for problem in panel.problems[:3]:
        for line in _wrap(draw, "· " + problem, 18, width)[:2]:
            draw.text((x, y), line, font=font(18), fill=COLOURS["amber"])
            y += 24
    if not panel.problems:
        draw.text((x, y), panel.ready, font=font(22), fill=COLOURS["green"])
        y += 30
    y += 8
    draw.line((x, y, x + width, y), fill=COLOURS["box"], width=2)
    y += 10
    footer_top = height - 118
    for colour, text in panel.messages:
        lines = _wrap(draw, text, 18, width - 20)[:2]
        if y + 24 * len(lines) > footer_top:
            break
        draw.ellipse((x, y + 6, x + 12, y + 18), fill=COLOURS.get(colour, COLOURS["grey"]))
        for line in lines:
            draw.text((x + 20, y), line, font=font(18), fill=COLOURS["white"])
            y += 24
        y += 4
    y = footer_top
    draw.line((x, y, x + width, y), fill=COLOURS["box"], width=2)
    draw.text((x, y + 10), panel.bundle[1], font=font(18), fill=COLOURS[panel.bundle[0]])
    draw.text((x, y + 36), panel.unsent[1], font=font(18), fill=COLOURS[panel.unsent[0]])
    for n, line in enumerate(_wrap(draw, panel.keys, 15, width)[:2]):
        draw.text((x, y + 64 + n * 20), line, font=font(15), fill=COLOURS["dim"])


def save_png(rgb: np.ndarray, path: str) -> None:
    Image.fromarray(rgb).save(path)


__all__ = ["Action", "Panel", "panel_for", "render_frame", "save_png", "PANEL_WIDTH"]
