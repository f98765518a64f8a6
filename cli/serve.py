"""``custody serve`` (the web application and API on waitress) and ``custody users`` (accounts).

``serve_instance`` is also what ``custody demo`` ends with: it prints the
address and, for a demo, a one-time administrator login.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import signal
import sys
import threading
from typing import Any

import click

from cli.context import Context, now, pass_ctx, table
from custody.errors import NotFound

DEFAULT_THREADS = 16
DEMO_ADMIN = "demo-admin"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_app(instance: Any, *, secure_cookies: bool, extra: dict[str, Any] | None = None) -> Any:
    from web import create_app

    return create_app({"INSTANCE": instance, "SESSION_COOKIE_SECURE": secure_cookies, **(extra or {})})


def default_verify_workers() -> int:
    """Signature-checking processes beside the server: one per core but the one the log writer needs."""
    return max(0, (os.cpu_count() or 1) - 1)


def unlock_keys(instance: Any) -> None:
    """Ask for the key passphrase now (not in a request thread) and fail early if it is wrong."""
    from custody.keyring import Role

    instance.keys.private_key(Role.LOG_SIGNER, instance.institute, now())


def serve_instance(instance: Any, host: str = "127.0.0.1", port: int = 8000, demo: bool = False, *,
                   threads: int = DEFAULT_THREADS, secure_cookies: bool | None = None,
                   trusted_proxy: str | None = None, verify_workers: int | None = None,
                   writer_process: bool = True) -> None:
    """Serve the web application and API with waitress until interrupted.

    Prints the address; with ``demo``, creates (or resets) the ``demo-admin``
    institute administrator with a random password printed once. Station
    signatures are checked in ``verify_workers`` processes (default: one per
    core but one; 0: in the request threads). With ``writer_process`` the log writer runs in a
    process of its own (see store.writer_process), else in a thread of the server.
    """
    from waitress import serve

    from store.ledger import settle_collector
    from web.settings import max_request_body

    unlock_keys(instance)
    if secure_cookies is None:
        secure_cookies = not _is_loopback(host)
    workers = default_verify_workers() if verify_workers is None else verify_workers
    app = build_app(instance, secure_cookies=secure_cookies, extra={"VERIFY_WORKERS": workers,
                                                                        "WRITER_PROCESS": writer_process})
    app.extensions["custody"].ledger.start()
    settle_collector()
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"custody web application: http://{shown}:{port}/")
    click.echo(f"  API: http://{shown}:{port}/api/v1/openapi.json   checkpoint: http://{shown}:{port}/checkpoint")
    if demo:
        password = demo_login(instance)
        click.echo(f"  demo login: {DEMO_ADMIN} / {password}   (institute administrator; shown only now)")
    if not secure_cookies:
        click.echo("  note: session cookies are not marked Secure (plain HTTP on this machine only)")
    click.echo("press Ctrl+C to stop")
    sys.stdout.flush()
    options: dict[str, Any] = {}
    if trusted_proxy:
        options.update(trusted_proxy=trusted_proxy, trusted_proxy_headers="x-forwarded-for x-forwarded-proto",
                       clear_untrusted_proxy_headers=True)
    _stop_on_sigterm()
    try:
        serve(app, host=host, port=port, threads=threads, ident="custody",
              max_request_body_size=max_request_body(app.config), connection_limit=500, channel_timeout=60,
              **options)
    finally:
        app.extensions["custody"].ledger.close()  # stops the workers, stores the custody states


def _stop_on_sigterm() -> None:
    """SIGTERM (a service manager stopping the server) stops it as Ctrl+C does: waitress ends its loop and
    the ledger appends what was queued, stops the workers and the writer process and stores the custody
    states. Without this the process died where it stood (nothing acknowledged was lost, but the
    states were rebuilt by a replay at the next start and queued batches got no answer)."""
    if threading.current_thread() is not threading.main_thread():
        return  # only the main thread may set handlers (a test may serve from another)

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


def demo_login(instance: Any) -> str:
    from web.accounts import AccountError, create_account, set_password

    password = secrets.token_urlsafe(12)
    try:
        create_account(instance, DEMO_ADMIN, password, "admin", None, now(), display_name="演示管理员")
    except AccountError:
        set_password(instance, DEMO_ADMIN, password, now())
    return password


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, envvar="CUSTODY_HOST",
              help="Address to listen on. Env: CUSTODY_HOST.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), envvar="CUSTODY_PORT",
              help="Port. Env: CUSTODY_PORT.")
@click.option("--threads", default=DEFAULT_THREADS, show_default=True, type=click.IntRange(1, 256),
              envvar="CUSTODY_THREADS", help="Worker threads. Env: CUSTODY_THREADS.")
@click.option("--secure-cookies/--no-secure-cookies", default=None, envvar="CUSTODY_SECURE_COOKIES",
              help="Mark session cookies Secure (HTTPS only). Default: on, except when listening on "
                   "127.0.0.1/localhost. Env: CUSTODY_SECURE_COOKIES.")
@click.option("--trusted-proxy", envvar="CUSTODY_TRUSTED_PROXY",
              help="Address of a reverse proxy whose X-Forwarded-For/-Proto to trust. Env: CUSTODY_TRUSTED_PROXY.")
@click.option("--verify-workers", type=click.IntRange(0, 64), envvar="CUSTODY_VERIFY_WORKERS",
              help="Processes that check station signatures beside the server (default: one per core but one; "
                   "0: in the request threads). Env: CUSTODY_VERIFY_WORKERS.")
@click.option("--writer-process/--writer-thread", default=True, show_default=True, envvar="CUSTODY_WRITER_PROCESS",
              help="Run the log writer in a process of its own (it then has a core to itself, not a share of "
                   "the request threads' interpreter) or in a thread of the server. Env: CUSTODY_WRITER_PROCESS.")
@pass_ctx
def serve(ctx: Context, host: str, port: int, threads: int, secure_cookies: bool | None,
          trusted_proxy: str | None, verify_workers: int | None, writer_process: bool) -> None:
    """Serve the web application and the HTTP API (waitress).

    The key passphrase (CUSTODY_PASSPHRASE or a prompt) is needed to sign
    checkpoints. Create accounts first with `custody users add`.
    """
    serve_instance(ctx.instance(), host, port, threads=threads, secure_cookies=secure_cookies,
                   trusted_proxy=trusted_proxy, verify_workers=verify_workers, writer_process=writer_process)


# --- accounts ---------------------------------------------------------------------------------

@click.group()
def users() -> None:
    """Accounts of the web application (roles: admin, officer, investigator, auditor)."""


def _new_password(username: str) -> str:
    value = os.environ.get("CUSTODY_NEW_PASSWORD")
    if value is not None:
        return value
    if not sys.stdin.isatty():
        raise click.UsageError("set CUSTODY_NEW_PASSWORD or run at a terminal to be asked for the password")
    return str(click.prompt(f"Password for {username}", hide_input=True, confirmation_prompt=True))


@users.command("add")
@click.argument("username")
@click.option("--role", required=True, type=click.Choice(["admin", "officer", "investigator", "auditor"]))
@click.option("--unit", help="The unit whose subtree the account sees (required except for admin).")
@click.option("--name", "display_name", default="", help="Display name, e.g. 张伟.")
@pass_ctx
def users_add(ctx: Context, username: str, role: str, unit: str | None, display_name: str) -> None:
    """Create an account. The password comes from CUSTODY_NEW_PASSWORD or a prompt, never an argument."""
    from web.accounts import create_account

    account = create_account(ctx.instance(), username, _new_password(username), role, unit, now(),
                             display_name=display_name)
    click.echo(f"account {account.username} created: {role}" + (f" of {unit}" if unit else ""))


@users.command("passwd")
@click.argument("username")
@pass_ctx
def users_passwd(ctx: Context, username: str) -> None:
    """Set a new password (CUSTODY_NEW_PASSWORD or a prompt); ends the account's sessions."""
    from web.accounts import set_password

    set_password(ctx.instance(), username, _new_password(username), now())
    click.echo(f"password of {username} changed; its sessions are ended")


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
@pass_ctx
def users_list(ctx: Context, as_json: bool) -> None:
    """Every account with role, unit and state."""
    from web.accounts import list_accounts

    rows = [{"username": a.username, "name": a.display_name, "role": a.role, "unit": a.unit,
             "disabled": a.disabled, "last_login_at": a.last_login_at.isoformat() if a.last_login_at else None}
            for a in list_accounts(ctx.instance())]
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False))
    else:
        table(["username", "name", "role", "unit", "disabled", "last login"],
              ([r["username"], r["name"], r["role"], r["unit"] or "(all)", "yes" if r["disabled"] else "",
                r["last_login_at"] or ""] for r in rows))


def _find(ctx: Context, username: str) -> int:
    from web.accounts import list_accounts

    for account in list_accounts(ctx.instance()):
        if account.username == username:
            return account.id
    raise NotFound(f"no account {username!r}")  # exit 2: a usage error, as for `users passwd`


@users.command("disable")
@click.argument("username")
@pass_ctx
def users_disable(ctx: Context, username: str) -> None:
    """Disable an account and end its sessions."""
    from web.accounts import set_disabled

    set_disabled(ctx.instance(), _find(ctx, username), True)
    click.echo(f"{username} disabled")


@users.command("enable")
@click.argument("username")
@pass_ctx
def users_enable(ctx: Context, username: str) -> None:
    """Enable a disabled account."""
    from web.accounts import set_disabled

    set_disabled(ctx.instance(), _find(ctx, username), False)
    click.echo(f"{username} enabled")


@users.command("unlock")
@click.argument("username", required=False)
@click.option("--address", metavar="ADDR", help="Also clear the lock of this client address (as `users locks` "
                                                 "shows it): an exam site's staff share one behind its NAT.")
@pass_ctx
def users_unlock(ctx: Context, username: str | None, address: str | None) -> None:
    """Clear the failed-login lock of an account, of a client address, or both."""
    from web.accounts import address_lock_key, user_lock_key

    if username is None and address is None:
        raise click.UsageError("name an account, or give --address (see `custody users locks`)")
    keys, named = [], []
    if username is not None:
        _find(ctx, username)  # a mistyped name is an error, not a silent "unlocked"
        keys.append(user_lock_key(username))
        named.append(username)
    if address is not None:
        keys.append(address_lock_key(address.strip()))
        named.append(f"address {address.strip()}")
    _throttle(ctx).clear(keys)
    click.echo(" and ".join(named) + " unlocked")


@users.command("locks")
@pass_ctx
def users_locks(ctx: Context) -> None:
    """The accounts and client addresses locked now by failed logins, and until when."""
    from web.accounts import ADDRESS_KEY

    locks = _throttle(ctx).locks(now())
    if not locks:
        click.echo("no account or address is locked")
        return
    table(["locked", "failures", "until"],
          ([f"address {key[len(ADDRESS_KEY):]}" if key.startswith(ADDRESS_KEY) else key.split(":", 1)[-1],
            str(failures), until.isoformat(timespec="seconds")] for key, failures, until in locks))


def _throttle(ctx: Context) -> Any:
    """The login throttle over the instance's database (clearing and listing need no limits)."""
    from datetime import timedelta

    from web.accounts import Throttle

    return Throttle(ctx.instance(), 5, timedelta(minutes=15))


def register(cli: click.Group) -> None:
    """Add ``serve`` and ``users`` to the ``custody`` group."""
    cli.add_command(serve)
    cli.add_command(users)
