"""The station process killed at each step of confirm and send (faults.STEPS), then restarted: nothing lost,
nothing duplicated, nothing half-recorded.

Each test runs the real command line (``python -m custody scan`` / ``custody station sync``) as a process
of its own against the real server on waitress, stops it at a step with ``CUSTODY_STATION_UNSAFE_PAUSE_AT``,
SIGKILLs it there (no cleanup, no ``finally``, no atexit), and starts it again normally.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from custody.events import Action
from scanners.station.faults import ENV as PAUSE_ENV
from scanners.station.faults import STEPS
from tests.station.checks import assert_sent_once
from tests.station.conftest import PASSPHRASE
from tests.station.scenes import CITY_TO_COUNTY_PEOPLE, COUNTY_RECEIVES, readings

ROOT = Path(__file__).resolve().parents[2]
SEND_STEPS = [s for s in STEPS if s != "confirm_before_commit"]
PAUSE_TIMEOUT = 60.0


def custody(home: Path, *args: str, pause: str | None = None) -> subprocess.Popen[str]:
    """``python -m custody ARGS`` for the station in ``home``, as a process of its own."""
    env = {k: v for k, v in os.environ.items() if k != PAUSE_ENV}
    env.update(CUSTODY_PASSPHRASE=PASSPHRASE, CUSTODY_STATION_HOME=str(home), PYTHONPATH=str(ROOT))
    if pause:
        env[PAUSE_ENV] = pause
    return subprocess.Popen([sys.executable, "-m", "custody", *args], cwd=ROOT, env=env, text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def kill_at(proc: subprocess.Popen[str], step: str) -> str:
    """Wait for ``paused at STEP`` on the process's stderr, then SIGKILL it; returns what it printed."""
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + PAUSE_TIMEOUT
    try:
        while True:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            if line is None:
                raise AssertionError(f"the station exited ({proc.wait()}) before pausing at {step}: {''.join(seen)}")
            seen.append(line)
            if line.strip() == f"paused at {step}":
                break
    except queue.Empty:
        raise AssertionError(f"the station did not pause at {step} in {PAUSE_TIMEOUT} s: {''.join(seen)}") from None
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    return "".join(seen)


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def prepare_session(station: Any, label_of: Any, badge_of: Any) -> Any:
    """A complete county receive, scanned and saved as a draft, not confirmed yet."""
    session = station.new_session(Action.RECEIVE, "3601")
    session.observe(0, readings([label_of(i) for i in COUNTY_RECEIVES[:6]] + [badge_of(p) for p in
                                                                              CITY_TO_COUNTY_PEOPLE[:2]]))
    session.observe(1, readings([label_of(i) for i in COUNTY_RECEIVES[6:]] + [badge_of(p) for p in
                                                                              CITY_TO_COUNTY_PEOPLE[2:]]))
    assert session.complete(), session.problems("en")
    station.checkpoint_session(session)
    return session


def test_the_outbox_is_durable_on_commit(make_station: Any) -> None:
    station = make_station("ST-360102", "360102", sync=False)
    assert station.outbox.pragma("journal_mode") == "wal"
    assert station.outbox.pragma("synchronous") == 2  # FULL: the WAL is fsynced at every commit


def test_killed_inside_the_confirm_transaction_nothing_is_half_recorded(make_station: Any, live_server: Any,
                                                                          label_of: Any, badge_of: Any,
                                                                          tmp_path: Path) -> None:
    station = make_station("ST-360102", "360102")
    session = prepare_session(station, label_of, badge_of)
    blank = tmp_path / "desk.png"
    import cv2
    import numpy as np

    cv2.imwrite(str(blank), np.full((120, 160, 3), 90, np.uint8))
    home = station.home.path
    confirm = ("scan", "--source", str(blank), "--headless", "--resume", "--no-sync", "--no-send",
               "--confirm-at-end")
    kill_at(custody(home, *confirm, pause="confirm_before_commit"), "confirm_before_commit")

    # nothing of the confirm is on disk: no event, no session, the sequence not advanced; the draft is whole
    assert station.outbox.events() == [] and not station.outbox.session_confirmed(session.id)
    assert station.outbox.conn.execute("SELECT value FROM meta WHERE name = 'next_seq'").fetchone()[0] == "1"
    assert station.status()["drafts"][0]["session"] == session.id
    assert len(live_server.handover_leaves("ST-360102")) == 0

    # restarted: the same draft is confirmed, numbered from 1 as if nothing had happened, then sent
    code, out, err = finish(custody(home, *confirm))
    assert code == 0, err
    confirmed = next(json.loads(line) for line in out.splitlines() if '"confirmed"' in line)
    assert confirmed["session"] == session.id
    ids = [f"ST-360102-{n:07d}" for n in range(1, 13)]
    assert confirmed["events"] == ids and station.status()["drafts"] == []
    assert station.sync().errors == []
    assert_sent_once(station, live_server, ids)


@pytest.mark.parametrize("step", SEND_STEPS)
def test_killed_while_sending_nothing_is_lost_or_duplicated(step: str, make_station: Any, live_server: Any,
                                                             label_of: Any, badge_of: Any) -> None:
    station = make_station("ST-360102", "360102")
    ids = station.confirm(prepare_session(station, label_of, badge_of))
    assert len(ids) == 12
    home = station.home.path

    kill_at(custody(home, "station", "sync", pause=step), step)
    stored = len(live_server.handover_leaves("ST-360102"))
    # before_send: the server has nothing; after the response the server has the batch, the station does not
    # know yet (the response was never read, or its receipts never committed)
    assert stored == (0 if step == "before_send" else 12)
    assert station.outbox.counts()["pending"] == 12 and station.outbox.counts()["receipted"] == 0

    proc = custody(home, "station", "sync", "--json")
    code, out, err = finish(proc)
    assert code == 0, err
    report = json.loads(out)
    assert report["send"]["attempted"] == 12 and report["outbox"]["pending"] == 0
    # what the server already stored comes back as a duplicate with the original leaf, never a second leaf
    assert (report["send"]["accepted"], report["send"]["duplicate"]) == ((12, 0) if step == "before_send" else
                                                                        (0, 12))
    assert_sent_once(station, live_server, ids)
    # and another sync sends nothing again
    report = station.sync()
    assert report.errors == [] and report.send is not None and report.send.attempted == 0
    assert len(live_server.handover_leaves("ST-360102")) == 12
