"""Bad input at the desk: a label of an item already opened, a camera unplugged mid-session, a wrong
passphrase, a server answer whose receipts do not verify. Each gives a clear message; the session goes on;
nothing is recorded that should not be."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from cli.scan import scan
from cli.station import station as station_cli
from custody.events import Action
from scanners.station.client import HttpTransport, Response
from tests.station.checks import assert_sent_once
from tests.station.conftest import PASSPHRASE
from tests.station.scenes import CITY_TO_COUNTY_PEOPLE, COUNTY_RECEIVES, handover_video, readings, scene


def json_lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


# --- a label of an item already opened ----------------------------------------------------------------------

def test_a_bag_already_opened_is_red_with_a_clear_message(make_station: Any, label_of: Any, badge_of: Any) -> None:
    room = make_station("ST-K001-01", "K001-01", actions=("open",))
    bag, room_staff = label_of("YW-P-K001-01"), [badge_of("K001-01-S1"), badge_of("K001-01-S2")]
    first = room.new_session(Action.OPEN, None)
    first.observe(0, readings([bag, *room_staff]))
    first.set_accept_unexpected(True)
    assert room.confirm(first) == ["ST-K001-01-0000001"]
    assert room.sync(["open"]).errors == []

    # the same bag shown again for opening at this desk (its own record says it was opened)
    second = room.new_session(Action.OPEN, None)
    [outcome] = second.observe(0, readings([bag])).outcomes
    verdict = outcome.verdict
    assert (verdict.colour, verdict.reason, verdict.item) == ("red", "already_opened", "YW-P-K001-01")
    assert verdict.message("zh") == "已启封（K001-01）：不能再次启封或交接，请核查"
    assert "already opened" in verdict.message("en")
    # the session goes on: the bag is not counted, its scan is kept as refusal evidence, not as an event
    second.observe(1, readings(room_staff))
    assert second.items == {} and second.counts()["refused"] == 1
    room.checkpoint_session(second)
    assert room.outbox.counts()["refusals"] == 1 and room.outbox.counts()["pending"] == 0

    # another desk in the same room knows it from the server's list of what is held there
    other = make_station("ST-K001-01B", "K001-01", actions=("open",))
    session = other.new_session(Action.OPEN, None)
    [outcome] = session.observe(0, readings([bag])).outcomes
    assert (outcome.verdict.colour, outcome.verdict.reason) == ("red", "already_opened")
    assert outcome.verdict.message("zh").startswith("已启封（K001-01）")


# --- a camera unplugged mid-session ---------------------------------------------------------------------------

class UnpluggedCamera:
    """A capture device that delivers ``images`` and is then unplugged: every read and reopen fails."""

    def __init__(self, images: Sequence[np.ndarray]):
        self.images = list(images)
        self.opened = 0

    def __call__(self, target: str | int) -> Any:
        self.opened += 1
        return self if self.opened == 1 else _Dead()

    def isOpened(self) -> bool:  # noqa: N802
        return True

    def read(self) -> tuple[bool, np.ndarray | None]:
        return (True, self.images.pop(0)) if self.images else (False, None)

    def set(self, prop: int, value: float) -> bool:
        return True

    def get(self, prop: int) -> float:
        return 0.0

    def release(self) -> None:
        pass


class _Dead(UnpluggedCamera):
    def __init__(self) -> None:
        super().__init__([])

    def isOpened(self) -> bool:  # noqa: N802
        return False


def test_a_camera_unplugged_mid_session_gives_a_message_and_the_session_goes_on(
        make_station: Any, tmp_path: Path, label_of: Any, badge_of: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import scanners.capture as capture

    station = make_station("ST-360102", "360102")
    items = [label_of(i) for i in COUNTY_RECEIVES]
    people = [badge_of(p) for p in CITY_TO_COUNTY_PEOPLE]
    camera = UnpluggedCamera([f.image for f in scene(items[:6] + people[:2], seed=41, frames=6)])
    real_open = capture.open_source

    def open_source(src: str, **kwargs: Any) -> Any:
        if src == "0":  # the desk's webcam
            return capture.LiveSource(0, open_capture=camera, reconnects=2, sleep=lambda s: None)
        return real_open(src, **kwargs)

    monkeypatch.setattr(capture, "open_source", open_source)
    # the officers plug in the spare camera (here: its recording) and go on
    spare = handover_video(tmp_path / "spare.avi", [scene(items[6:] + people[2:], seed=42, frames=6)])
    result = CliRunner().invoke(scan, ["--station-home", str(station.home.path), "--source", "0", "--next-source",
                                       str(spare), "--headless", "--action", "receive", "--counterpart", "3601",
                                       "--confirm-at-end", "--no-send"],
                                env={"CUSTODY_PASSPHRASE": PASSPHRASE}, catch_exceptions=False)
    lines = json_lines(result.stdout)
    [lost] = [line for line in lines if line["type"] == "source_error"]
    assert lost["lost"] is True and lost["source"] == "0"
    assert lost["message"].startswith("摄像头断开：") and lost["message"].endswith("交接继续，请重新连接")
    assert "camera 0 stopped delivering frames after frame 5" in lost["message_en"] and camera.opened == 3
    before = lines.index(lost)
    assert {line["item"] for line in lines[:before] if line["type"] == "scan" and line["what"] == "item"} == \
        set(COUNTY_RECEIVES[:6])
    confirmed = next(line for line in lines if line["type"] == "confirmed")
    assert result.exit_code == 0 and confirmed["summary"]["recorded"] == sorted(COUNTY_RECEIVES)
    assert len(confirmed["events"]) == 12


class ReplugCamera(UnpluggedCamera):
    """A camera that delivers ``first``, is unplugged (its own reconnects fail too), and once the officers
    plug it in again delivers ``second``."""

    def __init__(self, first: Sequence[np.ndarray], second: Sequence[np.ndarray], dead_opens: int):
        super().__init__(first)
        self.second, self.dead_opens = list(second), dead_opens

    def __call__(self, target: str | int) -> Any:
        self.opened += 1
        if self.opened == 1:
            return self
        if self.opened <= 1 + self.dead_opens:
            return _Dead()
        self.images = self.second
        return self


def test_the_station_window_reopens_a_lost_camera_until_it_is_back(make_station: Any,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import scanners.capture as capture
    import scanners.station.window as window

    first = [np.full((48, 64, 3), n, np.uint8) for n in (1, 2, 3)]
    second = [np.full((48, 64, 3), n, np.uint8) for n in (7, 8)]
    # unplugged for the source's own 2 reconnects and the window's first two tries to reopen it
    camera = ReplugCamera(first, second, dead_opens=2 + 2)
    opened: list[float] = []

    def open_source(src: str, **kwargs: Any) -> Any:
        opened.append(time.monotonic())
        return capture.LiveSource(int(src), open_capture=camera, reconnects=2, sleep=lambda s: None)

    monkeypatch.setattr(capture, "open_source", open_source)
    monkeypatch.setattr(window, "REOPEN_EVERY", 0.05)
    station = make_station("ST-360102", "360102")
    app = window.WindowApp(station, station.new_session(Action.RECEIVE, "3601"), ["0"], sound=False)
    frames = app._frames()
    seen: list[int] = []
    waits, give_up = 0, time.monotonic() + 20
    for _ref, image in frames:  # the window's loop: it draws a waiting frame when there is no image
        if image is None:
            waits += 1
            assert time.monotonic() < give_up, "the camera was never reopened"
            continue
        seen.append(int(image[0, 0, 0]))
        if len(seen) == len(first) + len(second):
            break
    frames.close()
    assert seen == [1, 2, 3, 7, 8]  # nothing lost or repeated across the reopen
    # the first open, two tries while it was unplugged (no other source to turn to), the one that found it
    assert len(opened) == 4
    gaps = [b - a for a, b in zip(opened[1:], opened[2:], strict=False)]
    assert all(gap >= 0.05 for gap in gaps) and waits > 0  # it waits between tries, drawing meanwhile
    red = [(zh, en) for colour, zh, en in app.messages if colour == "red"]
    assert len(red) == 1 and red[0][0].startswith("摄像头断开：") and red[0][1].startswith("Camera lost:")


# --- a wrong passphrase -------------------------------------------------------------------------------------

def snapshot(station: Any) -> dict[str, Any]:
    o = station.outbox
    files = {p.relative_to(station.home.path).as_posix(): p.read_bytes() for p in sorted(station.home.path.rglob("*"))
             if p.is_file() and not p.name.startswith("outbox.sqlite")}
    return {"files": files, "meta": o.conn.execute("SELECT * FROM meta ORDER BY name").fetchall(),
            "drafts": o.drafts(), "events": [(e.id, e.state, e.attempts) for e in o.events()], "counts": o.counts()}


def test_a_wrong_passphrase_is_a_clear_error_and_changes_nothing(make_station: Any, live_server: Any,
                                                                label_of: Any, badge_of: Any) -> None:
    station = make_station("ST-360102", "360102")
    session = station.new_session(Action.RECEIVE, "3601")
    session.observe(0, readings([label_of(i) for i in COUNTY_RECEIVES] + [badge_of(p) for p in CITY_TO_COUNTY_PEOPLE]))
    station.confirm(session)  # twelve events waiting to be sent
    before = snapshot(station)
    home = ["--station-home", str(station.home.path)]
    wrong = {"CUSTODY_PASSPHRASE": "not-the-station-passphrase"}

    result = CliRunner().invoke(station_cli, [*home, "sync"], env=wrong)
    assert result.exit_code == 1
    assert "the passphrase does not open station-key.pem" in result.stderr
    result = CliRunner().invoke(scan, [*home, "--source", "0", "--headless", "--action", "receive",
                                       "--counterpart", "3601"], env=wrong)
    assert result.exit_code == 1 and "the passphrase does not open station-key.pem" in result.stderr
    assert result.stdout == ""  # no session was started, no camera opened

    assert snapshot(station) == before  # no session, no draft, no event, nothing sent, no cache rewritten
    assert live_server.handover_leaves("ST-360102") == []
    # the right passphrase still works
    result = CliRunner().invoke(station_cli, [*home, "sync"], env={"CUSTODY_PASSPHRASE": PASSPHRASE})
    assert result.exit_code == 0 and "12 accepted" in result.stdout


# --- receipts that do not verify ------------------------------------------------------------------------------

def _flip(text: str) -> str:
    return ("B" if text[0] == "A" else "A") + text[1:]


def _tamper_bit_flip_in_receipt(results: list[dict[str, Any]]) -> None:
    # the first result's checkpoint root hash changed: the proof no longer reaches a signed root
    head, note = results[0]["receipt"].split("\n\n", 1)
    lines = note.split("\n")
    lines[2] = _flip(lines[2])
    results[0]["receipt"] = head + "\n\n" + "\n".join(lines)


def _tamper_swapped_leaves(results: list[dict[str, Any]]) -> None:
    # two valid receipts, each answered for the other event
    results[0], results[1] = results[1], results[0]
    for r in results[:2]:
        r.pop("event_id")


def _edit_leaf_in_receipt(result: dict[str, Any], old: bytes, new: bytes) -> None:
    """Change the leaf bytes a receipt carries (its extra data), leaving its proof and checkpoint alone."""
    head, note = result["receipt"].split("\n\n", 1)
    lines = head.split("\n")
    extra = base64.b64decode(lines[1].removeprefix("extra "))
    lines[1] = "extra " + base64.b64encode(extra.replace(old, new)).decode()
    result["receipt"] = "\n".join(lines) + "\n\n" + note


def _tamper_other_leaf_bytes(results: list[dict[str, Any]]) -> None:
    # the leaf carried in the proof is not the one the announced hash is of
    _edit_leaf_in_receipt(results[0], b'"count":', b'"count":1')


def _rewritten(endpoint: str, change: Any) -> Any:
    """``HttpTransport.request`` with the server's results for ``endpoint`` passed through ``change`` first."""
    real_request = HttpTransport.request

    def request(self: HttpTransport, method: str, path: str, body: bytes, headers: Mapping[str, str]) -> Response:
        response = real_request(self, method, path, body, headers)
        if path != endpoint:
            return response
        document = json.loads(response.body)
        change(document["results"])
        return Response(response.status, json.dumps(document).encode(), response.headers)

    return request


TAMPER = {"bit-flip-in-receipt": (_tamper_bit_flip_in_receipt, "does not verify against the pinned log key"),
          "swapped-leaves": (_tamper_swapped_leaves, "proves a leaf that does not hold our event"),
          "other-leaf-bytes": (_tamper_other_leaf_bytes, "leaf bytes do not hash to the announced leaf hash")}


@pytest.mark.parametrize("case", sorted(TAMPER))
def test_a_receipt_that_does_not_verify_keeps_the_event_unsent(case: str, make_station: Any, live_server: Any,
                                                               label_of: Any, badge_of: Any,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    station = make_station("ST-360102", "360102")
    session = station.new_session(Action.RECEIVE, "3601")
    session.observe(0, readings([label_of(i) for i in COUNTY_RECEIVES] + [badge_of(p) for p in CITY_TO_COUNTY_PEOPLE]))
    ids = station.confirm(session)
    tamper, message = TAMPER[case]
    real_request = HttpTransport.request
    monkeypatch.setattr(HttpTransport, "request", _rewritten("/api/v1/events", tamper))
    result = CliRunner().invoke(station_cli, ["--station-home", str(station.home.path), "sync"],
                                env={"CUSTODY_PASSPHRASE": PASSPHRASE})
    assert result.exit_code == 1  # a verification failure, not "offline"
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ST-360102-")]
    assert warnings and message in warnings[0]
    tampered_ids = {ids[0], ids[1]} if case == "swapped-leaves" else {ids[0]}
    assert {e.id for e in station.outbox.events("pending")} == tampered_ids
    assert all("receipt" in (e.last_error or "") for e in station.outbox.events("pending"))
    assert "still unsent" in result.stdout and f"{len(tampered_ids)} still unsent" in result.stdout

    # with an honest answer, the next sync settles them (the server already has them: duplicates)
    monkeypatch.setattr(HttpTransport, "request", real_request)
    report = station.sync(["receive"])
    assert report.errors == [] and report.send is not None and report.send.duplicate == len(tampered_ids)
    assert_sent_once(station, live_server, ids)


def test_refusal_evidence_counts_as_delivered_only_with_a_receipt_that_proves_it(
        make_station: Any, live_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib
    from datetime import UTC, datetime

    from tests.station.scenes import PARCEL_QR

    station = make_station("ST-360102", "360102")
    text = PARCEL_QR + "-photocopy"
    assert station.outbox.record_refusal(session=None, seen_at=datetime.now(UTC), reason="not_ours",
                                         message="不是保密标签", text=text,
                                         text_sha256=hashlib.sha256(text.encode()).hexdigest(), frame=None, item=None)
    real_request = HttpTransport.request

    monkeypatch.setattr(HttpTransport, "request", _rewritten(
        "/api/v1/refusals", lambda results: _edit_leaf_in_receipt(results[0], b'"not_ours"', b'"accepted"')))
    report = station.sync(["receive"])
    assert report.refusals_reported == 0 and any("refusal" in e or "leaf" in e for e in report.errors)
    assert len(station.outbox.unreported_refusals()) == 1  # kept, sent again next time

    monkeypatch.setattr(HttpTransport, "request", real_request)
    report = station.sync(["receive"])  # the server answers "duplicate" with the same leaf: now proven
    assert report.refusals_reported == 1 and station.outbox.unreported_refusals() == []


def test_a_refusal_receipt_that_does_not_verify_makes_sync_exit_1(make_station: Any, live_server: Any,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/station.md: `station sync` exits 1 for a receipt that does not verify, as for an event's receipt."""
    import hashlib
    from datetime import UTC, datetime

    from tests.station.scenes import PARCEL_QR

    station = make_station("ST-360102", "360102")
    text = PARCEL_QR + "-photocopy"
    station.outbox.record_refusal(session=None, seen_at=datetime.now(UTC), reason="not_ours", message="不是保密标签",
                                  text=text, text_sha256=hashlib.sha256(text.encode()).hexdigest(), frame=None,
                                  item=None)
    real_request = HttpTransport.request
    monkeypatch.setattr(HttpTransport, "request", _rewritten(
        "/api/v1/refusals", lambda results: _edit_leaf_in_receipt(results[0], b'"not_ours"', b'"accepted"')))
    args = ["--station-home", str(station.home.path), "sync", "--json"]
    result = CliRunner().invoke(station_cli, args, env={"CUSTODY_PASSPHRASE": PASSPHRASE})
    assert result.exit_code == 1, result.output  # a verification failure, not "everything sent"
    report = json.loads(result.stdout)
    assert report["bad_refusal_receipts"] == 1 and report["outbox"]["refusals_unreported"] == 1

    monkeypatch.setattr(HttpTransport, "request", real_request)
    result = CliRunner().invoke(station_cli, args, env={"CUSTODY_PASSPHRASE": PASSPHRASE})
    assert result.exit_code == 0 and json.loads(result.stdout)["outbox"]["refusals_unreported"] == 0
