"""Sound cues: a short tone for each new good, doubtful or bad scan.

The tones are generated (:func:`tone_wav`, a pure function returning WAV
bytes) and played with pygame's mixer when the window has one, else with
``aplay`` when it and a sound device exist, else not at all: a station without
speakers works the same, silently.
"""

from __future__ import annotations

import io
import math
import os
import shutil
import subprocess
import wave
from collections.abc import Sequence
from typing import Any

RATE = 22050
#: colour -> (frequencies played one after the other, milliseconds each)
CUES: dict[str, tuple[tuple[float, ...], int]] = {
    "green": ((880.0, 1320.0), 80),
    "amber": ((660.0, 660.0), 110),
    "red": ((300.0, 200.0), 220),
}


def tone_wav(freqs: Sequence[float], ms: int, *, rate: int = RATE, volume: float = 0.35) -> bytes:
    """16-bit mono WAV bytes of the tones in turn, each ``ms`` long with 5 ms fades (no clicks)."""
    frames = bytearray()
    n = int(rate * ms / 1000)
    fade = max(1, int(rate * 0.005))
    for f in freqs:
        for i in range(n):
            envelope = min(1.0, i / fade, (n - 1 - i) / fade)
            value = int(32767 * volume * envelope * math.sin(2 * math.pi * f * i / rate))
            frames += value.to_bytes(2, "little", signed=True)
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))
    return out.getvalue()


class SoundPlayer:
    """Plays the cue of a colour; ``backend`` says how (``pygame``, ``aplay`` or ``none``)."""

    def __init__(self, enabled: bool = True, *, pygame_module: Any = None):
        self.backend = "none"
        self._sounds: dict[str, Any] = {}
        self._children: list[subprocess.Popen[bytes]] = []
        self._wavs = {colour: tone_wav(*cue) for colour, cue in CUES.items()}
        if not enabled:
            return
        if pygame_module is not None:
            try:
                if not pygame_module.mixer.get_init():
                    pygame_module.mixer.init(frequency=RATE, size=-16, channels=1)
                self._sounds = {c: pygame_module.mixer.Sound(file=io.BytesIO(w)) for c, w in self._wavs.items()}
                self.backend = "pygame"
                return
            except Exception:  # no audio device: try aplay, else stay silent
                self._sounds = {}
        if shutil.which("aplay") and os.path.exists("/dev/snd"):
            self.backend = "aplay"

    def play(self, colour: str) -> None:
        if colour not in self._wavs or self.backend == "none":
            return
        if self.backend == "pygame":
            self._sounds[colour].play()
            return
        self._children = [p for p in self._children if p.poll() is None]  # reap finished players
        try:
            process = subprocess.Popen(["aplay", "-q", "-"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
            assert process.stdin is not None
            process.stdin.write(self._wavs[colour])
            process.stdin.close()
            self._children.append(process)
        except OSError:
            self.backend = "none"
