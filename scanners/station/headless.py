"""Headless mode: a handover session driven by frame sources, reported as JSON lines.

For kiosks without a screen and for tests. Each line is one JSON object with a
``type``:

==============  ==============================================================
type            when
==============  ==============================================================
``session``     first: the session id, action, counterpart, expected list source and size, key bundle age
``scan``        a text seen for the first time: ``colour``, ``reason``, ``item``, messages in Chinese and English
``counts``      after a change: expected, scanned, missing, unexpected, refused, bundles, people per side
``hold_still``  the picture became blurred (``blurred: true``) or sharp again (``false``)
``source_error`` a source could not be opened or broke (corrupt file, camera lost); the session goes on
``warning``     the key bundle is stale or missing (``code``), or a file of a folder was skipped
``confirmed``   the events were signed and stored durably: ids and the session summary
``sync``        the result of sending after confirm (receipted, pending, errors)
``incomplete``  the sources ended and the session could not be confirmed: what is missing; the draft is kept
==============  ==============================================================

Exit codes: 0 confirmed; 3 not confirmed (the draft is kept: ``--resume``);
2 a usage error.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from custody.errors import SourceError, SourceLost
from scanners.station.messages import status_message
from scanners.station.session import HandoverSession
from scanners.station.station import SessionIncomplete, Station

Emit = Callable[[dict[str, Any]], None]


@dataclass
class RunOptions:
    sources: Sequence[str]
    decoder_name: str = "default"
    max_frames: int | None = None
    seconds: float | None = None
    resolution: tuple[int, int] | None = None
    confirm_when_complete: bool = False
    confirm_at_end: bool = False
    send: bool = True


def session_line(station: Station, session: HandoverSession) -> dict[str, Any]:
    return {"type": "session", "session": session.id, "station": station.config.code, "unit": station.config.unit,
            "action": session.action.value, "counterpart": session.counterpart, "from_unit": session.from_unit,
            "to_unit": session.to_unit, "expected_source": session.expected_source,
            "expected_fetched_at": session.expected_fetched_at, "expected": session.counts()["expected"],
            "bundle": station.bundle_status(), "unsent": station.outbox.counts()["pending"]}


def bundle_warning(station: Station) -> dict[str, Any] | None:
    """A ``warning`` line when the key bundle is stale (labels are still verified with it) or missing, or
    when it says the station's clock is behind."""
    status = station.bundle_status()
    if not status["present"]:
        code, details = "bundle_missing", {}
    elif status["clock_behind_hours"] is not None:
        code, details = "clock_behind", {"hours": status["clock_behind_hours"]}
    elif status["stale"]:
        code, details = "bundle_stale", {"hours": status["age_hours"]}
    else:
        return None
    return {"type": "warning", "code": code, "message": status_message(code, "zh", **details),
            "message_en": status_message(code, "en", **details)}


def source_error_line(src: str, exc: SourceError) -> dict[str, Any]:
    code = "source_lost" if isinstance(exc, SourceLost) else "source_error"
    return {"type": "source_error", "source": src, "lost": isinstance(exc, SourceLost),
            "message": status_message(code, "zh", detail=str(exc)), "message_en": status_message(code, "en",
                                                                                                detail=str(exc))}


def confirm_and_send(station: Station, session: HandoverSession, emit: Emit, send: bool) -> int:
    try:
        ids = station.confirm(session)
    except SessionIncomplete as exc:
        emit({"type": "incomplete", "session": session.id, "problems": [m for _, m in session.problems("zh")],
              "problems_en": [m for _, m in exc.problems], "counts": session.counts(),
              "missing": [e.item for e in session.missing()], "resume": f"--resume {session.id}"})
        return 3
    emit({"type": "confirmed", "session": session.id, "events": ids,
          "message": status_message("confirmed", "zh", n=len(ids)), "message_en": status_message("confirmed", "en",
                                                                                                  n=len(ids)),
          "summary": session.summary()})
    if send:
        report = station.sync([session.action.value])
        emit({"type": "sync", **report.as_json(), "unsent": station.outbox.counts()["pending"]})
    return 0


def run_headless(station: Station, session: HandoverSession, options: RunOptions, emit: Emit, *,
                 clock: Callable[[], float] = time.monotonic) -> int:
    from scanners.capture import open_source
    from scanners.decode import make_decoder

    emit(session_line(station, session))
    warning = bundle_warning(station)
    if warning:
        emit(warning)
    decoder = make_decoder(options.decoder_name)
    frames = 0
    blurred = False
    last_counts: dict[str, Any] | None = None
    started = clock()
    done = False
    for src in options.sources:
        if done:
            break
        try:
            source = open_source(src, resolution=options.resolution)
        except SourceError as exc:
            emit(source_error_line(src, exc))
            continue
        try:
            with source:
                for frame in source:
                    frames += 1
                    result = decoder.decode(frame.image)
                    view = session.observe(frame.ref, result.readings, result.blurred)
                    for outcome in view.outcomes:
                        emit({**outcome.as_json(), "source": src})
                    if result.blurred != blurred:
                        blurred = result.blurred
                        emit({"type": "hold_still", "frame": str(frame.ref), "blurred": blurred,
                              "message": status_message("hold_still", "zh") if blurred else "",
                              "message_en": status_message("hold_still", "en") if blurred else ""})
                    counts = session.counts()
                    if counts != last_counts:
                        last_counts = counts
                        emit({"type": "counts", "frame": str(frame.ref), **counts})
                    station.checkpoint_session(session)
                    if options.confirm_when_complete and session.complete():
                        return confirm_and_send(station, session, emit, options.send)
                    if (options.max_frames is not None and frames >= options.max_frames) or \
                            (options.seconds is not None and clock() - started >= options.seconds):
                        done = True
                        break
        except SourceError as exc:  # a corrupt file or a lost camera: the session goes on with the next source
            emit(source_error_line(src, exc))
        for name, reason in source.skipped:
            emit({"type": "warning", "source": src, "message": f"skipped {name}: {reason}"})
    station.checkpoint_session(session)
    if options.confirm_when_complete or options.confirm_at_end:
        return confirm_and_send(station, session, emit, options.send)
    emit({"type": "incomplete", "session": session.id, "problems": [m for _, m in session.problems("zh")],
          "problems_en": [m for _, m in session.problems("en")], "counts": session.counts(),
          "missing": [e.item for e in session.missing()], "resume": f"--resume {session.id}"})
    return 3
