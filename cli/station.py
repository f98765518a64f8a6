"""``custody station``: set up a scanning station, see what it holds, sync it with the server.

    custody station init --server URL --code ST-K001 --unit K001 [--log-key KEY]
    custody station status [--json]
    custody station sync [--action receive ...] [--json]
    custody station manifest SESSION

Every command takes ``--station-home DIR`` (env ``CUSTODY_STATION_HOME``,
default ``./custody-station``). The key passphrase comes from
``CUSTODY_PASSPHRASE`` or a prompt. The handover sessions themselves run with
``custody scan --action ...`` (docs/station.md).

Exit codes: 0 ok; 1 a key bundle or receipt that does not verify, an event the
server refused, or an id conflict; 2 a usage error (no station here, bad
options); 3 events still unsent (server unreachable: they stay in the outbox).
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import click

from custody.errors import CustodyError


class StationGroup(click.Group):
    """Custody errors become a message and an exit code here, once (also when run on its own)."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except CustodyError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)


def _now() -> datetime:
    return datetime.now(UTC)


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=1))


@click.group("station", cls=StationGroup)
@click.option("--station-home", type=click.Path(file_okay=False), envvar="CUSTODY_STATION_HOME",
              help="Station folder (key, caches, outbox). Env: CUSTODY_STATION_HOME. Default: ./custody-station")
@click.pass_context
def station(ctx: click.Context, station_home: str | None) -> None:
    """The scanning station: its key, its caches for offline work, and its outbox."""
    from scanners.station.home import resolve_station_home

    ctx.obj = resolve_station_home(station_home)


def _open(ctx: click.Context) -> Any:
    from scanners.station.home import StationHome
    from scanners.station.station import Station

    return Station(StationHome(ctx.obj))


@station.command()
@click.option("--server", required=True, envvar="CUSTODY_STATION_SERVER", help="The custody server, e.g. "
              "https://custody.example.org")
@click.option("--code", required=True, help="The station code, e.g. ST-K001.")
@click.option("--unit", required=True, help="The unit the station works for, e.g. K001.")
@click.option("--log-key", envvar="CUSTODY_STATION_LOG_KEY", metavar="KEY",
              help="The log's verifier key to pin (`custody log-key` on the server). Without it, it is fetched "
                   "from the server once and printed: compare it with the institute's published key.")
@click.option("--stale-after-hours", type=click.FloatRange(min=0, min_open=True), default=12.0, show_default=True,
              help="A cached key bundle older than this is shown as stale.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def init(ctx: click.Context, server: str, code: str, unit: str, log_key: str | None, stale_after_hours: float,
         as_json: bool) -> None:
    """Create the station's key and configuration; print the public key for the administrator to register."""
    from custody.log.note import parse_verifier_key
    from keys.files import passphrase
    from scanners.station.client import HttpTransport, TransportError
    from scanners.station.errors import StationError
    from scanners.station.home import StationHome

    fetched = False
    if log_key is None:
        transport = HttpTransport(server)
        try:
            response = transport.request("GET", "/api/v1/log-key", b"", {})
        except TransportError as exc:
            raise StationError(f"cannot fetch the log key: {exc}; pass --log-key") from None
        finally:
            transport.close()
        if response.status != 200:
            raise StationError(f"cannot fetch the log key: server answered {response.status}; pass --log-key")
        log_key = response.body.decode("utf-8").strip()
        fetched = True
    try:
        parse_verifier_key(log_key)
    except CustodyError as exc:
        raise StationError(f"--log-key: {exc}") from None
    home, config = StationHome.create(ctx.obj, server=server, code=code, unit=unit, log_key=log_key,
                                      secret=passphrase(new=True), now=_now(),
                                      stale_after_hours=stale_after_hours)
    raw = base64.b64decode(config.public_key)
    if as_json:
        _echo_json({"station": code, "unit": unit, "home": str(home.path), "kid": config.kid,
                    "public_key": config.public_key, "public_key_hex": raw.hex(), "log_key": log_key,
                    "log_key_fetched": fetched})
        return
    click.echo(f"station {code} (unit {unit}) set up in {home.path}")
    click.echo(f"public key (base64): {config.public_key}")
    click.echo(f"public key (hex):    {raw.hex()}")
    click.echo(f"key id:              {config.kid}")
    click.echo("Ask an administrator to register this station and key on the Stations page (站点登记).")
    click.echo(f"pinned log key: {log_key}")
    if fetched:
        click.echo("warning: the log key was fetched from the server; check that it is the institute's published "
                   "key (`custody log-key` on the server) before trusting this station", err=True)
    click.echo("then run `custody station sync` to fetch the key bundle and the expected lists")


@station.command("pin-log-key")
@click.argument("log_key", metavar="KEY")
@click.pass_context
def pin_log_key(ctx: click.Context, log_key: str) -> None:
    """Pin another log key on purpose: after the institute revoked its log key and made another, which no
    rollover vouches for. Confirm KEY with the institute first (`custody log-key` on the server). The key
    pinned before is kept, for the key bundle cached until the next sync."""
    from dataclasses import replace

    from custody.log.note import parse_verifier_key
    from scanners.station.errors import StationError
    from scanners.station.home import StationHome

    try:
        log = parse_verifier_key(log_key).name
    except CustodyError as exc:
        raise StationError(f"KEY: {exc}") from None
    home = StationHome(ctx.obj)
    config = home.config()
    pinned_log = parse_verifier_key(config.log_key).name
    if log != pinned_log:
        raise StationError(f"KEY is a key of log {log!r}, this station's log is {pinned_log!r}")
    if log_key == config.log_key:
        click.echo(f"log key {log_key} is already pinned")
        return
    home.save_config(replace(config, log_key=log_key, previous_log_keys=(*config.previous_log_keys, config.log_key)))
    click.echo(f"pinned log key {log_key} (was {config.log_key}); run `custody station sync`")


@station.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Key bundle age (stale?), cached expected lists, unsent events, refusals and unfinished sessions."""
    st = _open(ctx)
    try:
        info = st.status()
    finally:
        st.close()
    if as_json:
        _echo_json(info)
        return
    b, o = info["bundle"], info["outbox"]
    click.echo(f"station {info['station']} (unit {info['unit']}), server {info['server']}, key {info['kid']}")
    if not b["present"]:
        click.echo("key bundle: none yet (run `custody station sync`)")
    else:
        if b["clock_behind_hours"] is not None:
            click.echo(f"key bundle: issued {b['issued_at']}, after this station's clock: the clock is about "
                       f"{b['clock_behind_hours']} h behind — SET THE CLOCK (events carry its time)")
        else:
            click.echo(f"key bundle: issued {b['issued_at']}, {b['age_hours']} h old"
                       + (f" — STALE (older than {b['stale_after_hours']} h): sync when online" if b["stale"] else ""))
    for action, fetched in info["expected"].items():
        click.echo(f"expected list {action}: fetched {fetched}")
    click.echo(f"outbox: {o['pending']} unsent, {o['receipted']} receipted, {o['refused']} refused by the server, "
               f"{o['conflict']} id conflicts; {o['refusals']} refused scans kept ({o['refusals_unreported']} not "
               "reported)")
    if info["oldest_pending"]:
        p = info["oldest_pending"]
        click.echo(f"oldest unsent: {p['id']} of {p['station_time']}" + (f" (last error: {p['last_error']})"
                                                                          if p["last_error"] else ""))
    for draft in info["drafts"]:
        click.echo(f"unfinished session {draft['session']} (saved {draft['updated_at']}): "
                   f"`custody scan --resume --session {draft['session']} ...`")


@station.command()
@click.option("--action", "actions", multiple=True, help="Also fetch the expected list for this action "
              "(repeatable; default: receive).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def sync(ctx: click.Context, actions: tuple[str, ...], as_json: bool) -> None:
    """Fetch the key bundle and expected lists, send every unsent event, store the verified receipts."""
    st = _open(ctx)
    try:
        report = st.sync(actions or ("receive",))
        counts = st.outbox.counts()
    finally:
        st.close()
    if as_json:
        _echo_json({**report.as_json(), "outbox": counts})
    else:
        send = report.send
        if send is not None:
            click.echo(f"sent {send.attempted}: {send.accepted} accepted, {send.duplicate} already in the log, "
                       f"{send.refused} refused, {send.conflict} id conflicts; {counts['pending']} still unsent")
        if report.log_key_followed:
            click.echo(f"the institute rotated its log key: now pinned {report.log_key_followed} (vouched for by "
                       "the key pinned before)")
        click.echo(f"key bundle: {report.bundle or 'not updated'}; expected lists: "
                   + (", ".join(f"{a} ({n})" for a, n in report.expected.items()) or "not updated"))
        if report.refusals_note:
            click.echo(f"refused scans: {report.refusals_note}")
        for error in report.errors:
            click.echo(f"warning: {error}", err=True)
    if report.integrity_failure:
        ctx.exit(1)
    if counts["pending"]:
        ctx.exit(3)


@station.command()
@click.argument("session")
@click.pass_context
def manifest(ctx: click.Context, session: str) -> None:
    """Print the manifest QR texts of a confirmed outgoing session (the PNG files' paths go to stderr)."""
    from scanners.station.errors import StationError

    st = _open(ctx)
    try:
        texts = st.manifest(session)
        folder = st.home.manifests_dir
    finally:
        st.close()
    if not texts:
        raise StationError(f"no manifest for session {session} (manifests are made when an outgoing session — "
                           "distribute, depart, issue — is confirmed)")
    for n, text in enumerate(texts, 1):
        click.echo(text)
        click.echo(f"# {folder / f'{session}-{n}.png'}", err=True)


def register(group: click.Group) -> None:
    """Add ``custody station`` to the command group."""
    group.add_command(station)


if __name__ == "__main__":  # `python -m cli.station ...` (the crash tests run it as a process of its own)
    station(prog_name="custody station")
