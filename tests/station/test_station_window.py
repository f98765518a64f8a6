"""The station window (pygame) off-screen: a generated handover video, the real decode loop, the confirm key,
and the composed picture with coloured label frames and the Chinese side panel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pygame
import pytest
from PIL import Image, ImageFont

from custody.events import Action
from scanners.station.render import COLOURS, PANEL_WIDTH, font
from tests.station.scenes import CITY_TO_COUNTY_PEOPLE, COUNTY_RECEIVES, PARCEL_QR, forged, handover_video, scene


@pytest.fixture
def headless_sdl(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    monkeypatch.setenv("SDL_AUDIODRIVER", "dummy")


def colour_pixels(image: np.ndarray, colour: str, tolerance: int = 12) -> int:
    return int((np.abs(image.astype(int) - COLOURS[colour]).max(axis=2) <= tolerance).sum())


def test_the_window_counts_confirms_and_draws_chinese(headless_sdl: None, make_station: Any, live_server: Any,
                                                      tmp_path: Path, label_of: Any, badge_of: Any) -> None:
    from scanners.station.window import WindowApp

    station = make_station("ST-360102", "360102")
    items = [label_of(i) for i in COUNTY_RECEIVES]
    people = [badge_of(p) for p in CITY_TO_COUNTY_PEOPLE]
    video = handover_video(tmp_path / "desk.avi", [
        scene(items[:6] + people[:2] + [PARCEL_QR, forged(items[0]), label_of("YW-X-K002")], seed=51, frames=8),
        scene(items[6:] + people[2:], seed=52, frames=14),
    ])
    session = station.new_session(Action.RECEIVE, "3601")
    app = WindowApp(station, session, [str(video)], sound=True, sync_every=3600)
    shots: dict[str, np.ndarray] = {}
    pressed: list[int] = []

    def script(turn: int) -> list[int]:
        assert app.last_image is not None
        if turn == 6:
            shots["scanning"] = app.last_image.copy()
        if pressed and turn == pressed[0] + 2:
            shots["after_confirm"] = app.last_image.copy()
        if not pressed and app.session.complete():  # the officer presses Enter when the panel says complete
            pressed.append(turn)
            shots["before_confirm"] = app.last_image.copy()
            return [pygame.K_RETURN]
        return []

    confirmed = app.run(max_frames=26, script=script, screenshot=tmp_path / "window.png")
    assert confirmed == 1 and len(app.confirmed[0]) == 12 and pressed[0] < 22  # confirmed while still in view
    said = [zh for _, zh, _ in app.messages]
    assert "已确认并安全保存，共 12 条记录" in said
    assert "接收方：宋明鹏（360102-S1）" in said  # a badge's message names the person once, not the id twice
    # the confirm started a sync in the background: the events reach the server with their receipts
    assert app._sync_lock.acquire(timeout=20)  # the sync thread is done
    assert station.outbox.counts() == {"pending": 0, "receipted": 12, "refused": 0, "conflict": 0,
                                       "refusals_unreported": 0, "refusals": 1}  # the forgery, as evidence
    assert len(live_server.handover_leaves("ST-360102")) == 12
    # the bags still on the desk after the confirm are grey in the next session: not counted, not "copies"
    after = app.session
    assert after.items == {} and after.refused == {}
    assert {v.reason for v in after._verdicts.values() if v.item in COUNTY_RECEIVES} == {"recorded_before"}

    for name, image in shots.items():
        Image.fromarray(image).save(tmp_path / f"{name}.png")
    scanning, before, next_session = shots["scanning"], shots["before_confirm"], shots["after_confirm"]
    width = before.shape[1] - PANEL_WIDTH
    assert before.shape == (720, 1280 + PANEL_WIDTH, 3)
    # label frames in their colours on the picture: green bags, an amber box of another county, a red forgery
    picture = scanning[:, :width]
    assert colour_pixels(picture, "green") > 2000
    assert colour_pixels(picture, "amber") > 300 and colour_pixels(picture, "red") > 300
    # the side panel is drawn, with text in a CJK font (Pillow's bitmap font cannot draw Chinese)
    panel = before[:, width:]
    assert isinstance(font(18), ImageFont.FreeTypeFont)
    assert (np.abs(panel.astype(int) - COLOURS["panel"]).max(axis=2) > 40).mean() > 0.05
    assert colour_pixels(panel[:60], "white", 30) > 200  # the title 接收 · 3601 → 360102
    # the title region matches the same title drawn with the CJK font
    expected = Image.new("RGB", (PANEL_WIDTH, 60), COLOURS["panel"])
    from PIL import ImageDraw

    ImageDraw.Draw(expected).text((20, 16), "接收 · 3601 → 360102", font=font(28), fill=COLOURS["white"])
    assert np.abs(panel[:60].astype(int) - np.asarray(expected).astype(int)).mean() < 1.0
    assert colour_pixels(panel[280:330], "green", 2) > 150  # 清点完毕：按 Enter 确认
    assert colour_pixels(panel[280:330], "amber", 2) == 0  # no problem left
    # after the confirm: the green banner, and the bags still in view framed grey, not red
    assert colour_pixels(next_session[720 - 64:720, :width], "green", 2) > 0.5 * 64 * width
    assert colour_pixels(next_session[:, :width], "grey", 2) > 1000
    assert colour_pixels(next_session[:720 - 64, :width], "red", 2) < 100


def test_every_character_the_station_draws_is_in_the_font() -> None:
    from scanners.station.messages import PROBLEMS, REASONS, SIDES, STATUS
    from scanners.station.render import ACTION_NAMES, KEYS_HELP, missing_glyphs

    texts = [m for _, zh, en in REASONS.values() for m in (zh, en)] + [m for pair in STATUS.values() for m in pair]
    texts += [m for pair in (*PROBLEMS.values(), *SIDES.values(), *ACTION_NAMES.values()) for m in pair]
    texts += [*KEYS_HELP, "√ × ? · → …", "请保持稳定"]
    assert {t: missing_glyphs(t) for t in texts if missing_glyphs(t)} == {}


def test_after_a_sync_the_window_says_what_the_server_did_with_the_records() -> None:
    """Refused records were said as 'the server's answer does not verify; the records stay here, unsent'
    (they were settled as refused, never sent again), and a server answering 500 or 403 was not said at all."""
    from scanners.station.sender import SendReport
    from scanners.station.station import SyncReport
    from scanners.station.window import sync_messages

    def said(send: SendReport | None = None, **report: Any) -> list[tuple[str, str]]:
        errors = list(send.errors) if send else []
        return [(colour, en) for colour, _, en in sync_messages(
            SyncReport(send=send, errors=errors + report.pop("errors", []), **report))]

    refused = SendReport(attempted=3, accepted=1, refused=2, errors=[
        "ST-K001-0000042 refused by the server: label_not_issued: YW-P-K001-01's label was not issued",
        "ST-K001-0000043 refused by the server: label_not_issued: YW-P-K001-02's label was not issued"])
    assert said(refused) == [("red", "The server refused 2 record(s) (it logged the refusal as evidence; they are "
                                     "not sent again): label_not_issued: YW-P-K001-01's label was not issued")]
    zh = sync_messages(SyncReport(send=refused, errors=list(refused.errors)))[0][1]
    assert zh.startswith("服务器拒收 2 条记录") and "无法验证" not in zh
    assert said(SendReport(attempted=4, errors=["server answered 500: internal error"])) == [
        ("amber", "The server could not take them now; the records stay here and are sent again later: "
                  "server answered 500: internal error")]
    bad = SendReport(attempted=1, bad_receipts=1, errors=["ST-K001-0000044: the receipt does not verify"])
    assert said(bad) == [("red", "The server's answer does not verify; the records stay here, unsent: "
                                 "ST-K001-0000044: the receipt does not verify")]
    conflict = SendReport(attempted=1, conflict=1, errors=[
        "ST-K001-0000045: the log already holds another event with id ST-K001-0000045 (leaf 9); this station's "
        "sequence was reused (restored from an old backup?)"])
    assert [c for c, _ in said(conflict)] == ["red"] and "old backup" in said(conflict)[0][1]
    assert said(SendReport(), errors=["offline: cannot reach http://127.0.0.1:9"]) == [
        ("amber", "Offline: cannot reach http://127.0.0.1:9")]
    assert said(SendReport(attempted=2, accepted=2)) == []
