"""The station window: live picture, overlay, side panel, keys and sound, with pygame (SDL).

Why pygame (the ``pygame-ce`` distribution, imported as ``pygame``): OpenCV's
highgui is not in opencv-python-headless; the pygame wheel brings its own SDL
(window, keyboard, audio) with no system packages, runs full-screen on a
kiosk, and runs off-screen under ``SDL_VIDEODRIVER=dummy``
(and ``SDL_AUDIODRIVER=dummy``) so the real window loop is tested without a
display. What is drawn is :func:`scanners.station.render.render_frame`'s image.

Keys: Enter (or F12) confirm · D seal damaged (the last item scanned) · M
record the missing items (reason "清点短少 count short") · A accept unexpected
items · S sync now · L 中文/English · Esc twice cancel the session · Q quit
(the session draft is kept; ``--resume`` continues it).

The loop reads a frame, decodes it, lets the session judge it, saves the draft
when something changed, plays a cue for each new scan, and draws. When a
source ends it keeps the last picture; when a camera is lost it says so,
keeps the session and reopens the camera after 5 s; if it is still unplugged
then, it turns to the next source, or with none left tries every 5 s until the
camera is back.
A background thread syncs (sends the outbox, refreshes the caches) every
``sync_every`` seconds with its own outbox connection; events that failed wait
for their backoff there, while a confirm or S sends everything at once.

After a confirm the next session starts at once. The labels it recorded are
still on the desk: in the next session they are framed grey ("上一次交接已登记")
and neither counted nor kept as refusal evidence (they would otherwise be red
"already handed over", and each would be reported to the server as a copy).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from custody.errors import SourceError
from scanners.station.messages import status_message
from scanners.station.render import panel_for, render_frame
from scanners.station.sender import CONFLICT, REFUSED
from scanners.station.session import HandoverSession
from scanners.station.sound import SoundPlayer
from scanners.station.station import SessionIncomplete, Station, SyncReport

MISSING_REASON = "清点短少 count short"
SEAL_REASON = "封条破损 seal damaged"
REOPEN_EVERY = 5.0


def sync_messages(report: SyncReport) -> list[tuple[str, str, str]]:
    """What the window says after a sync, most serious first: (colour, Chinese, English).

    Records the server refused (it logged the refusal: they are settled, not sent again) and id
    conflicts are said as such, not as an answer that does not verify; an answer that does not verify
    (a receipt, the key bundle) keeps the records unsent; a server that answered with an error (a 500,
    a 403) or could not be reached leaves them to the next sync. Nothing to say: an empty list."""
    out: list[tuple[str, str, str]] = []
    send = report.send

    def add(colour: str, code: str, **details: object) -> None:
        out.append((colour, status_message(code, "zh", **details), status_message(code, "en", **details)))

    refusals = [e.split(REFUSED, 1)[1] for e in report.errors if REFUSED in e]
    if send is not None and send.refused:
        add("red", "server_refused", n=send.refused, detail=(refusals[0] if refusals else "")[:120])
    if send is not None and send.conflict:
        add("red", "id_conflict", n=send.conflict)
    offline = [e for e in report.errors if e.startswith("offline")]
    # the rest: receipts or a bundle that do not verify, or the server's own error answers
    others = [e for e in report.errors if REFUSED not in e and CONFLICT not in e and not e.startswith("offline")]
    untrusted = report.bundle_refused or report.bad_refusal_receipts or (send is not None and send.bad_receipts)
    if untrusted and others:
        add("red", "sync_untrusted", detail=others[0][:120])
    elif others:
        add("amber", "server_error", detail=others[0][:120])
    if offline:
        add("amber", "sync_failed", detail=offline[0].removeprefix("offline: ")[:80])
    return out


class WindowApp:
    def __init__(self, station: Station, session: HandoverSession, sources: Sequence[str], *,
                 decoder_name: str = "default", lang: str = "zh", fullscreen: bool = False, sound: bool = True,
                 sync_every: float = 30.0, resolution: tuple[int, int] | None = None):
        self.station = station
        self.session = session
        self.sources = list(sources)
        self.decoder_name = decoder_name
        self.lang = lang
        self.fullscreen = fullscreen
        self.sound_enabled = sound
        self.sync_every = sync_every
        self.resolution = resolution
        self.messages: deque[tuple[str, str, str]] = deque(maxlen=8)
        self.banner: tuple[str, str, str] | None = None
        self.banner_until = 0.0
        self.confirmed: list[list[str]] = []
        self.cancel_armed_until = 0.0
        self.unsent = station.outbox.counts()["pending"]
        self._sync_lock = threading.Lock()
        self._stop = threading.Event()
        self.last_image: np.ndarray | None = None

    # --- messages -------------------------------------------------------------------------

    def say(self, colour: str, zh: str, en: str, banner: bool = False) -> None:
        self.messages.appendleft((colour, zh, en))
        if banner:
            self.banner = (colour, zh, en)
            self.banner_until = time.monotonic() + 4.0

    # --- frames -----------------------------------------------------------------------------

    def _frames(self) -> Iterator[tuple[str, Any]]:
        """(reference, image) from each source in turn; errors become messages, the session goes on."""
        from scanners.capture import open_source

        for n, src in enumerate(self.sources):
            lost = False  # a camera that delivered frames, then stopped: reopened every REOPEN_EVERY seconds
            while not self._stop.is_set():
                try:
                    source = open_source(src, resolution=self.resolution)
                except SourceError as exc:
                    if lost and n + 1 == len(self.sources):
                        # still unplugged, and no other source to turn to: the message asked them to
                        # reconnect it; try again until they have
                        yield from self._wait_to_reopen()
                        continue
                    self.say("red", status_message("source_error", "zh", detail=exc),
                             status_message("source_error", "en", detail=exc), banner=True)
                    yield ("", None)
                    break
                lost = False
                try:
                    with source:
                        for frame in source:
                            yield (str(frame.ref), frame.image)
                except SourceError as exc:
                    code = "source_lost" if getattr(source, "live", False) else "source_error"
                    self.say("red", status_message(code, "zh", detail=exc), status_message(code, "en", detail=exc),
                             banner=True)
                    if getattr(source, "live", False):
                        lost = True
                        yield from self._wait_to_reopen()
                        continue
                break

    def _wait_to_reopen(self) -> Iterator[tuple[str, Any]]:
        deadline = time.monotonic() + REOPEN_EVERY
        while time.monotonic() < deadline and not self._stop.is_set():
            yield ("", None)  # keep the window alive while waiting to reopen

    # --- actions --------------------------------------------------------------------------

    def confirm(self) -> None:
        try:
            ids = self.station.confirm(self.session)
        except SessionIncomplete:
            problems = self.session.problems("zh")
            problems_en = self.session.problems("en")
            self.say("amber", status_message("not_complete", "zh", problems="；".join(m for _, m in problems)),
                     status_message("not_complete", "en", problems="; ".join(m for _, m in problems_en)), banner=True)
            return
        self.confirmed.append(ids)
        self.say("green", status_message("confirmed", "zh", n=len(ids)), status_message("confirmed", "en", n=len(ids)),
                 banner=True)
        self.unsent = self.station.outbox.counts()["pending"]
        done = self.session
        self.session = self.station.new_session(done.action, done.counterpart)
        # the bags just recorded are still on the desk: shown grey in the next session, not as copies
        self.session.carried_over = done.recorded_texts()
        self.station.save_draft(self.session)
        self.sync_in_background()

    def seal_damaged(self) -> None:
        last = next((s for s in sorted(self.session.items.values(), key=lambda s: s.last_frame, reverse=True)), None)
        if last is None:
            return
        self.session.mark_seal_damaged(last.item, SEAL_REASON)
        self.say("amber", status_message("seal_damaged", "zh", item=last.item),
                 status_message("seal_damaged", "en", item=last.item))

    def mark_missing(self) -> None:
        missing = self.session.missing()
        self.session.mark_missing(MISSING_REASON)
        self.say("amber", status_message("missing_marked", "zh", n=len(missing), reason=MISSING_REASON),
                 status_message("missing_marked", "en", n=len(missing), reason=MISSING_REASON))

    def cancel(self) -> None:
        now = time.monotonic()
        if now > self.cancel_armed_until:
            self.cancel_armed_until = now + 3.0
            self.say("amber", "再按一次 Esc 取消本次交接", "Press Esc again to cancel this handover", banner=True)
            return
        self.station.cancel(self.session)
        self.say("amber", status_message("cancelled", "zh"), status_message("cancelled", "en"), banner=True)
        self.session = self.station.new_session(self.session.action, self.session.counterpart)

    def sync_in_background(self, *, force: bool = True) -> None:
        """Sync in a thread of its own (one at a time). ``force`` sends every unsent event now (after a
        confirm, or S); without it, events that failed wait for their backoff (the periodic sync)."""
        if not self._sync_lock.acquire(blocking=False):
            return

        def run() -> None:
            try:
                worker = Station(self.station.home, secret=self.station._secret, clock=self.station.clock,
                                 transport=self.station._transport)
                worker._signer = self.station._signer
                try:
                    report = worker.sync([self.session.action.value], force=force)
                    self.unsent = worker.outbox.counts()["pending"]
                    for n, (colour, zh, en) in enumerate(reversed(sync_messages(report))):
                        self.say(colour, zh, en, banner=colour == "red" and n == 0)
                finally:
                    worker.outbox.close()
            finally:
                self._sync_lock.release()

        threading.Thread(target=run, name="station-sync", daemon=True).start()

    def handle_key(self, key: int, pygame: Any) -> bool:
        """Act on a key; False to quit."""
        if key in (pygame.K_RETURN, pygame.K_KP_ENTER, pygame.K_F12):
            self.confirm()
        elif key == pygame.K_d:
            self.seal_damaged()
        elif key == pygame.K_m:
            self.mark_missing()
        elif key == pygame.K_a:
            self.session.set_accept_unexpected(not self.session.accept_unexpected)
            if self.session.accept_unexpected:
                self.say("amber", status_message("accept_unexpected", "zh"), status_message("accept_unexpected", "en"))
        elif key == pygame.K_s:
            self.sync_in_background()
        elif key == pygame.K_l:
            self.lang = "en" if self.lang == "zh" else "zh"
        elif key == pygame.K_ESCAPE:
            self.cancel()
        elif key == pygame.K_q:
            return False
        self.station.checkpoint_session(self.session)
        return True

    # --- the loop ---------------------------------------------------------------------------

    def compose(self, image: np.ndarray, view: Any) -> np.ndarray:
        if self.banner and time.monotonic() > self.banner_until:
            self.banner = None
        panel = panel_for(self.session, lang=self.lang, bundle_status=self.station.bundle_status(),
                          unsent=self.unsent, messages=list(self.messages), banner=self.banner)
        return render_frame(image, view, panel, hold_still="请保持稳定" if self.lang == "zh" else "Hold still")

    def run(self, *, max_frames: int | None = None, script: Callable[[int], Sequence[int]] | None = None,
            screenshot: Path | None = None, idle_frames: int = 0) -> int:
        """Run until Q, window close, or ``max_frames`` loop turns; ``script(n)`` gives keys to press at
        turn ``n`` (tests). Returns the number of sessions confirmed."""
        import pygame

        from scanners.decode import make_decoder
        from scanners.station.session import FrameView

        pygame.init()
        sound = SoundPlayer(self.sound_enabled, pygame_module=pygame)
        decoder = make_decoder(self.decoder_name)
        screen = None
        frames = self._frames()
        image: np.ndarray | None = None
        view = FrameView([], False, [])
        view_session = self.session.id
        turn = 0
        running = True
        last_sync = time.monotonic()
        ended = False
        try:
            while running and (max_frames is None or turn < max_frames):
                ref, new_image = ("", None) if ended else next(frames, ("end", None))
                if ref == "end":
                    ended = True
                if new_image is not None:
                    image = new_image
                    result = decoder.decode(image)
                    view = self.session.observe(ref, result.readings, result.blurred)
                    view_session = self.session.id
                    for outcome in view.outcomes:
                        if outcome.verdict.reason == "recorded_before":
                            continue  # the bags just confirmed, still on the desk: the grey frame says enough
                        sound.play(outcome.verdict.colour)
                        self.say(outcome.verdict.colour, _with_item(outcome.verdict.message("zh"),
                                                                    outcome.verdict.item, "："),
                                 _with_item(outcome.verdict.message("en"), outcome.verdict.item, ": "))
                    self.station.checkpoint_session(self.session)
                if view_session != self.session.id:
                    view = FrameView([], False, [])  # confirmed or cancelled: the old session's frames are gone
                if image is None:
                    image = np.full((720, 1280, 3), 40, np.uint8)
                rendered = self.compose(image, view)
                self.last_image = rendered
                if screen is None or screen.get_size() != (rendered.shape[1], rendered.shape[0]):
                    flags = pygame.FULLSCREEN if self.fullscreen else 0
                    screen = pygame.display.set_mode((rendered.shape[1], rendered.shape[0]), flags)
                    pygame.display.set_caption(f"custody 交接台 {self.station.config.code}")
                surface = pygame.image.frombuffer(np.ascontiguousarray(rendered).tobytes(),
                                                  (rendered.shape[1], rendered.shape[0]), "RGB")
                screen.blit(surface, (0, 0))
                pygame.display.flip()
                for key in (script(turn) if script else ()):
                    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key, mod=0, unicode=""))
                for event in pygame.event.get():
                    if event.type == pygame.QUIT:
                        running = False
                    elif event.type == pygame.KEYDOWN:
                        running = self.handle_key(event.key, pygame) and running
                if time.monotonic() - last_sync > self.sync_every:
                    last_sync = time.monotonic()
                    self.sync_in_background(force=False)  # a server that keeps failing is retried with backoff
                if ended and idle_frames == 0 and max_frames is None:
                    time.sleep(0.03)  # nothing new to decode: keep the window responsive, not busy
                turn += 1
            if screenshot is not None and screen is not None:
                pygame.image.save(screen, str(screenshot))
        finally:
            self._stop.set()
            self.station.checkpoint_session(self.session)
            pygame.quit()
        return len(self.confirmed)


def _with_item(message: str, item: str | None, sep: str) -> str:
    """The message, followed by the item id unless the message names it already (badges do)."""
    return message if not item or item in message else f"{message}{sep}{item}"
