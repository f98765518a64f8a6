"""Factories for the station tests: the real server on waitress, stations registered with it, label texts.

The station is a client of the HTTP API; the server's two database backends
are tested in tests/web and tests/store, so these tests run the server on
SQLite only (``db_url`` is overridden here), which keeps them fast.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

PASSPHRASE = "station-test-passphrase"


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'custody.db'}"


@dataclass
class MovableClock:
    """The real time moved by ``offset``: a test lets a day pass on the server or the station."""

    offset: timedelta = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class LiveServer:
    """The custody web app on waitress in a thread; ``stop()`` and ``start()`` keep the same port."""

    app: Any
    instance: Any
    ledger: Any
    clock: MovableClock = field(default_factory=MovableClock)
    port: int = 0
    _server: Any = None
    _thread: threading.Thread | None = None
    requests: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        from waitress.server import create_server

        # a short select() timeout: stop() returns within 0.1 s instead of waitress's default 1 s
        self._server = create_server(self.app, host="127.0.0.1", port=self.port, threads=4, ident="custody",
                                     asyncore_loop_timeout=0.1)
        self.port = self._server.effective_port

        def run() -> None:
            try:
                self._server.run()
            except OSError:  # the listening socket closed under select() at shutdown
                pass

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for channel in list(self._server._map.values()):  # keep-alive connections keep the loop running
                channel.close()
            assert self._thread is not None
            self._thread.join(timeout=5)
            self._server = None

    def handover_leaves(self, station: str) -> list[dict[str, Any]]:
        """Every handover leaf of ``station`` in the log, in order."""
        import json

        from store.models import LogLeaf

        with self.instance.db.session() as s:
            rows = s.scalars(select(LogLeaf).where(LogLeaf.station == station).order_by(LogLeaf.idx)).all()
            return [{"index": r.idx, **json.loads(r.data)} for r in rows if r.type == "handover"]


@pytest.fixture
def live_server(tiny_exam: Any) -> Iterator[LiveServer]:
    from store.ledger import Ledger
    from tests.web.conftest import make_app

    clock = MovableClock()
    ledger = Ledger(tiny_exam, clock=clock)
    ledger.record_labels("zk2017")
    server = LiveServer(make_app(tiny_exam, LEDGER=ledger, CLOCK=clock), tiny_exam, ledger, clock)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def register_station(instance: Any, code: str, unit: str, public_raw: bytes, now: datetime) -> None:
    """What an administrator does on the Stations page: the station's key and its unit."""
    from custody.keyring import Role
    from store.models import Station

    instance.keys.register(public_raw, Role.STATION, code, now.replace(microsecond=0))
    with instance.db.write_session() as s:
        if s.get(Station, code) is None:
            s.add(Station(code=code, unit=unit, name=f"{code} 交接台", kid=None, registered_at=now))


@pytest.fixture
def make_station(live_server: LiveServer, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """``make_station(code, unit, sync=True)``: a station home set up, registered and (by default) synced."""
    import base64

    from scanners.station.home import StationHome
    from scanners.station.station import Station

    made: list[Station] = []

    def make(code: str = "ST-360102", unit: str = "360102", *, sync: bool = True,
             actions: tuple[str, ...] = ("receive",), register: bool = True, **kwargs: Any) -> Station:
        now = datetime.now(UTC)
        home, config = StationHome.create(tmp_path / f"station-{code}", server=live_server.url, code=code, unit=unit,
                                          log_key=live_server.ledger.log_key(), secret=PASSPHRASE.encode(), now=now)
        if register:
            register_station(live_server.instance, code, unit, base64.b64decode(config.public_key),
                             now - timedelta(minutes=5))
        station = Station(home, secret=PASSPHRASE.encode(), **kwargs)
        made.append(station)
        if sync:
            report = station.sync(actions)
            assert not report.errors, report.errors
        return station

    yield make
    for station in made:
        station.close()


@pytest.fixture
def label_of(tiny_exam: Any) -> Callable[[str], str]:
    from store.models import Item

    with tiny_exam.db.session() as s:
        texts = dict(s.execute(select(Item.item_id, Item.label_text)).all())
    return lambda item: texts[item]


@pytest.fixture
def badge_of(tiny_exam: Any) -> Callable[[str], str]:
    from store.models import Person

    with tiny_exam.db.session() as s:
        texts = dict(s.execute(select(Person.staff_id, Person.badge_text)).all())
    return lambda staff: texts[staff]
