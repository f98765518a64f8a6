"""``custody scan``: read custody labels from a camera, video, image or folder.

Two modes. ``--decode-only`` prints what was decoded, without verifying
signatures or recording anything. Without it, ``custody scan`` is the
scanning station (docs/station.md): a handover session (``--action``,
``--counterpart``) in a window, or with ``--headless`` as JSON lines; it
needs a station home (``--station-home``, env ``CUSTODY_STATION_HOME``, made by
``custody station init``).

``--decode-only``: with ``--json``, one JSON object a line per decoded label:

    {"text": "CUS1:...", "frame": "bag-03.jpg", "backend": "zxing-cpp",
     "polygon": [[x, y], [x, y], [x, y], [x, y]], "kind": "label",
     "unverified_item": "YW-P-K037-12"}

``frame`` is the image's file name for an image or a folder, the frame number
(from 0) for a video, a camera or a stream. Each distinct text is printed once
per source, when first seen, unless ``--all-frames``. A QR code that is not a
custody label is skipped unless ``--all-codes`` (then ``"kind": "other"``); a
text that claims to be a label but is broken is printed with an ``error``.
Lines are flushed as they are found, so a live source can be piped.

Exit codes (``--decode-only``): 0 the source was read; 2 a usage error or a
source that cannot be read (missing, corrupt or truncated, a camera that
cannot be opened or was lost), with the reason on stderr. The station: 0 the
session was confirmed (or the window was closed); 3 the session could not be
confirmed (its draft is kept for ``--resume``); 2 a usage error.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import click

from custody.errors import CustodyError, MalformedLabel
from custody.events import Action
from custody.labels import parse_unverified_label

SESSION_ACTIONS = [a for a in Action if not a.is_exception and a is not Action.PACK]

SESSION_NEEDS_ACTION = ("a handover session needs --action (receive, distribute, open, ...) or --resume; "
                        "use --decode-only to only decode")
#: The old name, kept for tests/scanners/test_scan_cli.py: the message shown without --decode-only or --action.
STATION_NOT_BUILT = SESSION_NEEDS_ACTION


def describe(text: str) -> dict[str, Any]:
    """``kind`` (label or other) and, for a label, its unverified item id or the error."""
    try:
        label = parse_unverified_label(text)
    except MalformedLabel as exc:
        return {"kind": "label", "error": str(exc)}
    if label is None:
        return {"kind": "other"}
    return {"kind": "label", "unverified_item": label.payload.item_id}


def _resolution(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    from scanners.capture import parse_resolution

    if value is None:
        return None
    try:
        return parse_resolution(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


@click.command("scan")
@click.option("--source", required=True, envvar="CUSTODY_SCAN_SOURCE", metavar="SRC",
              help="Camera index (0, 1), video file, image file, folder of images, or rtsp:// / http(s):// "
                   "stream URL. Env: CUSTODY_SCAN_SOURCE.")
@click.option("--decode-only", is_flag=True, envvar="CUSTODY_SCAN_DECODE_ONLY",
              help="Only decode and print the QR texts; verify and record nothing.")
@click.option("--json", "as_json", is_flag=True, envvar="CUSTODY_SCAN_JSON", help="One JSON object a line.")
@click.option("--all-frames", is_flag=True, envvar="CUSTODY_SCAN_ALL_FRAMES",
              help="Print every reading in every frame, not each distinct label once.")
@click.option("--all-codes", is_flag=True, envvar="CUSTODY_SCAN_ALL_CODES",
              help="Also print QR codes that are not custody labels.")
@click.option("--max-frames", type=click.IntRange(min=1), envvar="CUSTODY_SCAN_MAX_FRAMES",
              help="Stop after this many frames.")
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), envvar="CUSTODY_SCAN_SECONDS",
              help="Stop after this many seconds (for cameras and streams).")
@click.option("--resolution", callback=_resolution, envvar="CUSTODY_SCAN_RESOLUTION", metavar="WxH",
              help="Resolution to ask a camera or stream for, e.g. 1280x720.")
@click.option("--decoder", "decoder_name", type=click.Choice(["default", "zxing-cpp", "pyzbar"]),
              default="default", show_default=True, envvar="CUSTODY_SCAN_DECODER",
              help="QR decoder: the measured default cascade, or one library alone.")
@click.option("--station-home", type=click.Path(file_okay=False), envvar="CUSTODY_STATION_HOME",
              help="Station folder (key, caches, outbox), made by `custody station init`. "
                   "Env: CUSTODY_STATION_HOME. Default: ./custody-station")
@click.option("--action", type=click.Choice([a.value for a in SESSION_ACTIONS]), envvar="CUSTODY_SCAN_ACTION",
              help="The handover: receive, distribute, store, take_out, depart, arrive, open, seal, return, ...")
@click.option("--counterpart", envvar="CUSTODY_SCAN_COUNTERPART", metavar="UNIT",
              help="The other unit: who hands over (receive, return) or receives (distribute, depart), "
                   "or the secure room (store, take_out).")
@click.option("--headless", is_flag=True, envvar="CUSTODY_SCAN_HEADLESS",
              help="No window: JSON lines of scans, counts and the session result.")
@click.option("--confirm-when-complete", is_flag=True, envvar="CUSTODY_SCAN_CONFIRM_WHEN_COMPLETE",
              help="Headless: confirm as soon as everything expected and both sides' badges are scanned.")
@click.option("--confirm-at-end", is_flag=True, envvar="CUSTODY_SCAN_CONFIRM_AT_END",
              help="Headless: when the sources end, confirm what was scanned (with the exceptions given).")
@click.option("--accept-unexpected", is_flag=True, envvar="CUSTODY_SCAN_ACCEPT_UNEXPECTED",
              help="Record valid items that are not on the expected list too (noted as such).")
@click.option("--missing-reason", envvar="CUSTODY_SCAN_MISSING_REASON", metavar="TEXT",
              help="Record every expected item not scanned as missing, with this reason.")
@click.option("--seal-damaged", "seal_damaged", multiple=True, metavar="ITEM=REASON",
              help="Record a damaged seal on ITEM (repeatable).")
@click.option("--count", "recounts", multiple=True, metavar="ITEM=N:REASON",
              help="Record that ITEM holds N (not what its label says), with a reason (repeatable).")
@click.option("--manifest", "manifests", multiple=True, metavar="TEXT|FILE",
              help="A handover manifest (CUSM1:... text, or a file holding it) to use as the expected list.")
@click.option("--next-source", "next_sources", multiple=True, metavar="SRC",
              help="Further sources read after --source in the same session (repeatable).")
@click.option("--resume", is_flag=True, help="Continue the last unconfirmed session (or --session ID).")
@click.option("--session", "session_id", metavar="ID", help="With --resume: the session to continue.")
@click.option("--no-sync", is_flag=True, envvar="CUSTODY_SCAN_NO_SYNC",
              help="Do not contact the server at the start (work from the caches).")
@click.option("--no-send", is_flag=True, envvar="CUSTODY_SCAN_NO_SEND",
              help="Do not send after confirm (the events wait in the outbox).")
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True, envvar="CUSTODY_SCAN_LANG",
              help="Language of the window (L switches it).")
@click.option("--fullscreen", is_flag=True, envvar="CUSTODY_SCAN_FULLSCREEN", help="Window: full screen (kiosk).")
@click.option("--no-sound", is_flag=True, envvar="CUSTODY_SCAN_NO_SOUND", help="Window: no sound cues.")
@click.pass_context
def scan(ctx: click.Context, /, source: str, decode_only: bool, as_json: bool, all_frames: bool, all_codes: bool,
         max_frames: int | None, seconds: float | None, resolution: tuple[int, int] | None,
         decoder_name: str, **station_options: Any) -> None:
    """Decode every custody label seen in a camera, video, image or folder of images
    (--decode-only), or run a handover session at the scanning station."""
    if not decode_only:
        try:
            code = run_station(source, max_frames=max_frames, seconds=seconds, resolution=resolution,
                               decoder_name=decoder_name, **station_options)
        except CustodyError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except ValueError as exc:
            raise click.UsageError(str(exc), ctx) from None
        ctx.exit(code)
    try:
        summary = decode_source(source, emit=_printer(as_json), all_frames=all_frames, all_codes=all_codes,
                                max_frames=max_frames, seconds=seconds, resolution=resolution,
                                decoder_name=decoder_name)
    except CustodyError as exc:
        # the command is an edge of its own when run outside the custody group
        click.echo(f"error: {exc}", err=True)
        ctx.exit(exc.exit_code)
    for name, reason in summary["skipped"]:
        click.echo(f"warning: skipped {name}: {reason}", err=True)
    if not as_json:
        click.echo(f"{summary['frames']} frame(s), {summary['labels']} distinct label(s), "
                   f"{summary['blurred']} blurred frame(s)", err=True)


def _printer(as_json: bool) -> Callable[[dict[str, Any]], None]:
    def emit(row: dict[str, Any]) -> None:
        if as_json:
            click.echo(json.dumps(row, ensure_ascii=False))
            return
        what = (f"error: {row['error']}" if "error" in row else
                f"{row['unverified_item']} (not verified)" if row["kind"] == "label" else
                f"other code: {row['text'][:60]}")
        click.echo(f"{row['frame']}\t{row['backend']}\t{what}")

    return emit


def decode_source(
    source: str,
    *,
    emit: Callable[[dict[str, Any]], None],
    all_frames: bool = False,
    all_codes: bool = False,
    max_frames: int | None = None,
    seconds: float | None = None,
    resolution: tuple[int, int] | None = None,
    decoder_name: str = "default",
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Decode a source, calling ``emit`` with each row as it is found; return a summary.

    Raises :class:`~custody.errors.SourceError` (after the rows of the frames
    read before the failure were emitted).
    """
    from scanners.capture import open_source
    from scanners.decode import Deduplicator, make_decoder

    decoder = make_decoder(decoder_name)
    seen = Deduplicator()
    kinds: dict[str, dict[str, Any]] = {}
    frames = blurred = 0
    started = clock()
    with open_source(source, resolution=resolution) as frame_source:
        for frame in frame_source:
            result = decoder.decode(frame.image)
            frames += 1
            blurred += result.blurred
            new = {s.text for s in seen.add(frame.ref, result.readings)}
            for reading in result.readings:
                if not (all_frames or reading.text in new):
                    continue
                new.discard(reading.text)  # a text twice in the first frame: once
                info = kinds.setdefault(reading.text, describe(reading.text))
                if info["kind"] == "other" and not all_codes:
                    continue
                emit({"text": reading.text, "frame": frame.ref, "backend": reading.backend,
                      "polygon": [[round(x, 1), round(y, 1)] for x, y in reading.polygon], **info})
            if max_frames is not None and frames >= max_frames:
                break
            if seconds is not None and clock() - started >= seconds:
                break
        skipped = list(frame_source.skipped)
    labels = sum(1 for s in seen.sightings() if kinds.get(s.text, {}).get("kind") == "label")
    return {"frames": frames, "labels": labels, "blurred": blurred, "skipped": skipped}


def _pairs(values: tuple[str, ...], option: str) -> list[tuple[str, str]]:
    out = []
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key or not rest:
            raise ValueError(f"{option} takes ITEM=..., not {value!r}")
        out.append((key.strip(), rest.strip()))
    return out


def run_station(source: str, *, station_home: str | None, action: str | None, counterpart: str | None,
                headless: bool, confirm_when_complete: bool, confirm_at_end: bool, accept_unexpected: bool,
                missing_reason: str | None, seal_damaged: tuple[str, ...], recounts: tuple[str, ...],
                manifests: tuple[str, ...], next_sources: tuple[str, ...], resume: bool, session_id: str | None,
                no_sync: bool, no_send: bool, lang: str, fullscreen: bool, no_sound: bool, max_frames: int | None,
                seconds: float | None, resolution: tuple[int, int] | None, decoder_name: str) -> int:
    """The station: a handover session over the sources, in a window or headless. Returns the exit code."""
    from pathlib import Path

    from scanners.station.home import StationHome, resolve_station_home
    from scanners.station.station import Station

    if not action and not resume:
        raise ValueError(SESSION_NEEDS_ACTION)
    damaged = _pairs(seal_damaged, "--seal-damaged")
    counted = []
    for item, rest in _pairs(recounts, "--count"):
        number, sep, reason = rest.partition(":")
        if not (sep and number.strip().isdigit() and reason.strip()):
            raise ValueError(f"--count takes ITEM=N:REASON, not {item}={rest!r}")
        counted.append((item, int(number), reason.strip()))
    emit = _json_lines()
    station = Station(StationHome(resolve_station_home(station_home)))
    try:
        station.signer()  # the passphrase now, not at confirm
        session = station.resume_session(session_id) if resume else None
        if resume and session is None:
            raise ValueError("there is no unconfirmed session to resume" + (f" with id {session_id}" if session_id
                                                                             else ""))
        chosen = Action(action) if action else session.action  # type: ignore[union-attr]
        if not no_sync:
            report = station.sync([chosen.value], send=True, force=False)
            if headless:
                emit({"type": "sync", **report.as_json(), "unsent": station.outbox.counts()["pending"]})
        if session is None:
            session = station.new_session(chosen, counterpart)
        for item, reason in damaged:
            session.mark_seal_damaged(item, reason)
        for item, quantity, reason in counted:
            session.record_count(item, quantity, reason)
        if missing_reason:
            session.mark_missing(missing_reason)
        if accept_unexpected:
            session.set_accept_unexpected(True)
        for manifest in manifests:
            path = Path(manifest)
            text = path.read_text(encoding="ascii").strip() if path.is_file() else manifest
            outcome = session.scan_manifest(text, "--manifest")
            if headless:
                emit({**outcome.as_json(), "source": "--manifest"})
        station.checkpoint_session(session)
        sources = [source, *next_sources]
        if headless:
            from scanners.station.headless import RunOptions, run_headless

            options = RunOptions(sources, decoder_name, max_frames, seconds, resolution, confirm_when_complete,
                                 confirm_at_end, not no_send)
            return run_headless(station, session, options, emit)
        from scanners.station.window import WindowApp

        app = WindowApp(station, session, sources, decoder_name=decoder_name, lang=lang, fullscreen=fullscreen,
                        sound=not no_sound, resolution=resolution)
        app.run(max_frames=max_frames)
        return 0
    finally:
        station.close()


def _json_lines() -> Callable[[dict[str, Any]], None]:
    import sys

    def emit(row: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        sys.stdout.flush()

    return emit
