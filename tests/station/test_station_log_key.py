"""The institute rotates its log key: a station follows the rollover the old key signed, and sends on;
a key no rollover leads to is refused and changes nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from click.testing import CliRunner

from cli.station import station as station_cli
from custody.events import Action
from custody.keyring import Role
from scanners.station.home import StationHome
from scanners.station.station import Station
from tests.station.checks import assert_sent_once
from tests.station.conftest import PASSPHRASE
from tests.station.scenes import CITY_TO_COUNTY_PEOPLE, COUNTY_RECEIVES, readings


def _confirm(station: Any, texts: list[str]) -> list[str]:
    session = station.new_session(Action.RECEIVE, "3601")
    session.observe(0, readings(texts))
    station.checkpoint_session(session)
    return station.confirm(session)  # type: ignore[no-any-return]


def test_a_station_follows_a_log_key_rotation_and_its_receipts_verify(make_station: Any, live_server: Any,
                                                                      label_of: Any, badge_of: Any) -> None:
    station = make_station("ST-360102", "360102")
    old_key = station.config.log_key
    ids = _confirm(station, [label_of(i) for i in COUNTY_RECEIVES] + [badge_of(p) for p in CITY_TO_COUNTY_PEOPLE])
    live_server.instance.keys.rotate(Role.LOG_SIGNER, "3601", datetime.now(UTC))  # `custody keys rotate`
    new_key = live_server.ledger.log_key()
    assert new_key != old_key

    report = station.sync(["receive"])
    assert not report.errors and not report.integrity_failure, report.errors
    assert report.log_key_followed == new_key and report.send is not None and report.send.accepted == len(ids)
    assert_sent_once(station, live_server, ids)  # receipts signed by the new key
    saved = json.loads(station.home.config_path.read_text())
    assert saved["log_key"] == new_key and saved["previous_log_keys"] == [old_key]
    assert station.bundle() is not None and station.bundle_status()["stale"] is False
    station.close()

    # reopened: the new key is pinned; the next sync has nothing to follow and says so in the command too
    again = Station(StationHome(station.home.path), secret=PASSPHRASE.encode())
    try:
        assert again.config.log_key == new_key and again.sync(["receive"]).log_key_followed is None
    finally:
        again.close()
    result = CliRunner().invoke(station_cli, ["--station-home", str(station.home.path), "sync"],
                                env={"CUSTODY_PASSPHRASE": PASSPHRASE})
    assert result.exit_code == 0 and "rotated its log key" not in result.stdout, result.output


def test_a_log_key_no_rollover_leads_to_is_refused_until_pinned_on_purpose(make_station: Any,
                                                                           live_server: Any) -> None:
    """The old key revoked, then a new one made: the revoked key vouches for nothing, so the station refuses
    the server's new key (it cannot tell it from a forger's) and keeps the one it pinned, until an operator
    pins the new one on purpose."""
    station = make_station("ST-360102", "360102")
    old_key = station.config.log_key
    now = datetime.now(UTC)
    keys = live_server.instance.keys
    keys.revoke(keys.current(Role.LOG_SIGNER, "3601", now).kid, now, "log key file copied")
    keys.rotate(Role.LOG_SIGNER, "3601", now)
    report = station.sync(["receive"])
    assert report.bundle_refused and report.integrity_failure and report.log_key_followed is None
    assert any("no rollover signed by the pinned key" in e for e in report.errors), report.errors
    assert json.loads(station.home.config_path.read_text())["log_key"] == old_key
    assert station.bundle() is not None  # the bundle cached before is kept, still verified by the pinned key
    station.close()

    # told the new key on purpose (confirmed with the institute), the station goes on
    new_key = live_server.ledger.log_key()

    def command(*args: str) -> Any:
        return CliRunner().invoke(station_cli, ["--station-home", str(station.home.path), *args],
                                  env={"CUSTODY_PASSPHRASE": PASSPHRASE})

    assert command("pin-log-key", "not-a-key").exit_code == 2
    pinned = command("pin-log-key", new_key)
    assert pinned.exit_code == 0 and f"pinned log key {new_key}" in pinned.output, pinned.output
    saved = json.loads(station.home.config_path.read_text())
    assert saved["log_key"] == new_key and saved["previous_log_keys"] == [old_key]
    synced = command("sync")
    assert synced.exit_code == 0, synced.output
