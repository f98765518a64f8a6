"""A station offline for a day, and a server that fails: events wait in the outbox, retried with backoff,
sent once when the server answers again, each with a verified receipt."""

from __future__ import annotations

import random
import socket
import threading
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from cli.station import station as station_cli
from custody.events import Action
from scanners.station.client import HttpTransport, Response, TransportError
from scanners.station.headless import RunOptions, bundle_warning, run_headless
from scanners.station.outbox import Backoff
from scanners.station.render import panel_for
from tests.station.checks import assert_sent_once
from tests.station.conftest import PASSPHRASE, MovableClock
from tests.station.scenes import CITY_TO_COUNTY_PEOPLE, COUNTY_RECEIVES, readings


def station_command(station: Any, *args: str) -> Any:
    return CliRunner().invoke(station_cli, ["--station-home", str(station.home.path), *args],
                              env={"CUSTODY_PASSPHRASE": PASSPHRASE})


def confirm(station: Any, action: Action, counterpart: str, texts: list[str], *, accept: bool = False) -> list[str]:
    session = station.new_session(action, counterpart)
    session.observe(0, readings(texts))
    if accept:
        session.set_accept_unexpected(True)
    station.checkpoint_session(session)
    return station.confirm(session)  # type: ignore[no-any-return]


def test_a_day_offline_then_one_sync_sends_everything_once(make_station: Any, live_server: Any, label_of: Any,
                                                           badge_of: Any, tmp_path: Path) -> None:
    desk = tmp_path / "desk.png"
    cv2.imwrite(str(desk), np.full((120, 160, 3), 90, np.uint8))
    clock = MovableClock()
    station = make_station("ST-360102", "360102", clock=clock)
    assert station.bundle_status()["stale"] is False
    live_server.stop()  # the county's line goes down for the day

    # 08:00 the city's boxes arrive
    clock.offset = timedelta(hours=1)
    ids = confirm(station, Action.RECEIVE, "3601", [label_of(i) for i in COUNTY_RECEIVES]
                  + [badge_of(p) for p in CITY_TO_COUNTY_PEOPLE])
    report = station.sync(["receive"])
    assert not report.online and report.send is not None and report.send.pending == 12
    assert any(e.startswith("offline: cannot reach") for e in report.errors)
    assert {(e.state, e.attempts) for e in station.outbox.events()} == {("pending", 1)}

    # the desk sees what is unsent; a sync job says so with exit code 3
    result = station_command(station, "status")
    assert result.exit_code == 0 and "outbox: 12 unsent, 0 receipted" in result.stdout
    assert "oldest unsent: ST-360102-0000001" in result.stdout and "cannot reach" in result.stdout
    result = station_command(station, "sync")
    assert result.exit_code == 3 and "12 still unsent" in result.stdout and "offline" in result.stderr

    # 13 hours later the key bundle is stale: a warning on the screen, labels still verified offline
    clock.offset = timedelta(hours=13)
    status = station.bundle_status()
    assert status["stale"] is True and status["age_hours"] >= 12.9
    session = station.new_session(Action.STORE, "360102-BMS")
    lines: list[dict[str, Any]] = []
    assert run_headless(station, session, RunOptions([str(desk)]), lines.append) == 3  # not confirmed yet
    assert lines[0]["type"] == "session" and lines[0]["bundle"]["stale"] is True and lines[0]["unsent"] == 12
    assert lines[1]["type"] == "warning" and lines[1]["code"] == "bundle_stale"
    assert lines[1]["message"].startswith("密钥包已过期 13") and lines[1]["message"].endswith("请联网同步")
    panel = panel_for(session, lang="zh", bundle_status=station.bundle_status(), unsent=12)
    assert panel.bundle[0] == "amber" and panel.bundle[1].startswith("密钥包已过期 13") and "同步" in panel.bundle[1]
    assert panel.unsent == ("amber", "待发送 12 条")
    view = session.observe(0, readings([label_of(i) for i in COUNTY_RECEIVES]
                                       + [badge_of("360102-S1"), badge_of("360102-S2")]))
    assert {o.verdict.colour for o in view.outcomes if o.kind == "item"} == {"amber"}  # not on the (empty) list
    assert not any(o.verdict.refused for o in view.outcomes)  # stale is a warning, not a refusal
    session.set_accept_unexpected(True)
    station.checkpoint_session(session)
    ids += station.confirm(session)  # into the secure room

    # a clock set back (30 hours before the bundle was issued): said loudly, not a bundle "-17 h old" and fresh
    clock.offset = timedelta(hours=-30)
    status = station.bundle_status()
    assert status["clock_behind_hours"] >= 29.9 and status["stale"] is False
    assert bundle_warning(station)["code"] == "clock_behind"
    assert "请校准时钟" in bundle_warning(station)["message"]
    assert panel_for(session, lang="zh", bundle_status=status, unsent=0).bundle[0] == "red"
    # (the command reads the real clock: give it what this station's status is at this clock)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(type(station), "bundle_status", lambda self: status)
        result = station_command(station, "status")
    assert result.exit_code == 0 and "SET THE CLOCK" in result.stdout and "h old" not in result.stdout
    clock.offset = timedelta(hours=13)
    assert station.bundle_status()["clock_behind_hours"] is None and bundle_warning(station)["code"] == "bundle_stale"

    # 20 hours later the site's six boxes go out
    clock.offset = timedelta(hours=20)
    ids += confirm(station, Action.DISTRIBUTE, "K001", [label_of(i) for i in COUNTY_RECEIVES[::2]]
                   + [badge_of(p) for p in ("360102-S1", "360102-S2", "K001-S1", "K001-S2")], accept=True)
    assert len(ids) == 30 and station.outbox.counts()["pending"] == 30
    assert len(live_server.handover_leaves("ST-360102")) == 0

    # the next morning the line is back (a day has passed on the server too): one sync sends all, once
    clock.offset = live_server.clock.offset = timedelta(hours=24)
    live_server.start()
    report = station.sync(["receive"])
    assert report.errors == [] and report.bundle == "updated"
    assert report.send is not None and (report.send.attempted, report.send.accepted, report.send.pending) == (30, 30, 0)
    assert station.bundle_status()["stale"] is False
    assert_sent_once(station, live_server, ids)
    result = station_command(station, "sync")
    assert result.exit_code == 0 and "sent 0:" in result.stdout


class DroppingServer:
    """A TCP server that reads the request and closes the connection without answering."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.recv(65536)
            conn.close()

    def close(self) -> None:
        self.sock.close()


class FlakyTransport:
    """The real HTTP transport, except that event posts follow ``script``: ``500`` (the server fails and
    stores nothing), ``drop`` (the connection is dropped before an answer), ``lost`` (the server stores the
    batch but the answer is lost), ``ok``."""

    def __init__(self, real: HttpTransport, dropping: DroppingServer, script: list[str]):
        self.real, self.script = real, script
        self.dropping = HttpTransport(dropping.url)

    def request(self, method: str, path: str, body: bytes, headers: Mapping[str, str]) -> Response:
        if path != "/api/v1/events":
            return self.real.request(method, path, body, headers)
        what = self.script.pop(0)
        if what == "500":
            return Response(500, b'{"error": "internal", "message": "database is locked"}')
        if what == "drop":
            return self.dropping.request(method, path, body, headers)
        response = self.real.request(method, path, body, headers)
        if what == "lost":
            raise TransportError("cannot reach the server: ConnectionResetError: the answer was lost")
        return response


@pytest.fixture
def dropping() -> Iterator[DroppingServer]:
    server = DroppingServer()
    yield server
    server.close()


def test_a_failing_server_keeps_the_batch_and_retries_with_backoff(make_station: Any, live_server: Any,
                                                                   dropping: DroppingServer, label_of: Any,
                                                                   badge_of: Any) -> None:
    clock = MovableClock()
    station = make_station("ST-360102", "360102", clock=clock, backoff=Backoff(rng=random.Random(7)))
    ids = confirm(station, Action.RECEIVE, "3601", [label_of(i) for i in COUNTY_RECEIVES]
                  + [badge_of(p) for p in CITY_TO_COUNTY_PEOPLE])
    flaky = FlakyTransport(HttpTransport(live_server.url), dropping, ["500", "drop", "lost", "ok"])
    station._transport = flaky
    sender = station.sender()

    def attempt(expect_error: str, attempts: int, window: tuple[float, float]) -> float:
        report = sender.send_due()
        assert report.attempted == 12 and report.pending == 12 and report.receipted == 0
        assert expect_error in report.errors[0]
        assert report.retry_in is not None and window[0] <= report.retry_in <= window[1]
        events = station.outbox.events()
        assert {(e.state, e.attempts) for e in events} == {("pending", attempts)}
        assert all(expect_error in (e.last_error or "") for e in events)
        # not due yet: a sync now sends nothing
        assert sender.send_due().attempted == 0
        return report.retry_in

    # base 2 s, doubling, each delay drawn from [d/2, d] (jitter)
    wait = attempt("server answered 500: internal: database is locked", 1, (1.0, 2.0))
    clock.offset += timedelta(seconds=wait + 0.01)
    wait = attempt("cannot reach", 2, (2.0, 4.0))
    assert "ConnectionError" in station.outbox.events()[0].last_error  # a real dropped connection
    clock.offset += timedelta(seconds=wait + 0.01)
    wait = attempt("the answer was lost", 3, (4.0, 8.0))
    assert len(live_server.handover_leaves("ST-360102")) == 12  # the server did store that one
    clock.offset += timedelta(seconds=wait + 0.01)
    report = sender.send_due()
    assert (report.attempted, report.duplicate, report.accepted, report.pending) == (12, 12, 0, 0)
    assert report.errors == [] and flaky.script == []
    assert_sent_once(station, live_server, ids)
    assert max(Backoff().delay(n) for n in range(1, 40)) <= 300.0  # capped at five minutes
