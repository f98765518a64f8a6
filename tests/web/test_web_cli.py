"""`custody users ...` and `custody serve`: accounts from the command line, passwords never as arguments."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from tests.web.conftest import CHEAP


@pytest.fixture
def custody(tiny_exam, db_url):
    from cli.main import cli
    from cli.serve import register

    register(cli)  # cli.main adds `serve` itself; `users` comes with it here

    def run(*args: str, password: str | None = None):
        env = {"CUSTODY_DATABASE_URL": db_url, "CUSTODY_HOME": str(tiny_exam.home)}
        if password is not None:
            env["CUSTODY_NEW_PASSWORD"] = password
        return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)

    return run


def test_users_add_list_and_refusals(custody) -> None:
    added = custody("users", "add", "zhang", "--role", "officer", "--unit", "360102", "--name", "张伟",
                    password="a-long-enough-password")
    assert added.exit_code == 0, added.output
    listed = custody("users", "list", "--json")
    rows = [json.loads(line) for line in listed.output.splitlines()]
    assert {"username": "zhang", "name": "张伟", "role": "officer", "unit": "360102", "disabled": False,
            "last_login_at": None} in rows
    again = custody("users", "add", "zhang", "--role", "auditor", "--unit", "3601", password="another-password-1")
    assert again.exit_code == 2 and "taken" in again.output
    weak = custody("users", "add", "li", "--role", "admin", password="short")
    assert weak.exit_code == 2 and "at least 10" in weak.output
    no_unit = custody("users", "add", "wang", "--role", "officer", password="a-long-enough-password")
    assert no_unit.exit_code == 2 and "needs a unit" in no_unit.output
    station = custody("users", "add", "st", "--role", "station", "--unit", "K001", password="a-long-enough-password")
    assert station.exit_code == 2
    unknown_unit = custody("users", "add", "zhao", "--role", "auditor", "--unit", "NOPE", password="a-long-enough-pw")
    assert unknown_unit.exit_code == 2 and "no unit" in unknown_unit.output
    # 张 is a letter to its reader: the refusal says usernames are ASCII and where the Chinese name goes
    chinese = custody("users", "add", "张三", "--role", "officer", "--unit", "K001", password="a-long-enough-pw")
    assert chinese.exit_code == 2
    assert "2 to 64 ASCII characters: letters a-z and A-Z" in chinese.output
    assert "a Chinese name goes in the display name" in chinese.output


def test_users_passwd_disable_enable_and_unlock(custody, tiny_exam) -> None:
    from datetime import timedelta

    from web.accounts import LoginLocked, LoginRefused, Throttle, authenticate

    throttle = Throttle(tiny_exam, 5, timedelta(minutes=15))
    now = datetime.now(UTC)

    def login(password: str, address: str = "10.0.0.1"):
        return authenticate(tiny_exam, "zhang", password, address, now, hasher=CHEAP, throttle=throttle)

    assert custody("users", "add", "zhang", "--role", "officer", "--unit", "360102",
                   password="a-long-enough-password").exit_code == 0
    for n in range(5):  # from five addresses: only the account's own counter locks
        with pytest.raises((LoginRefused, LoginLocked)):
            login("not-the-password", f"10.0.1.{n}")
    with pytest.raises(LoginLocked):
        login("a-long-enough-password")
    unlocked = custody("users", "unlock", "zhang")
    assert unlocked.exit_code == 0 and "zhang unlocked" in unlocked.output
    assert login("a-long-enough-password").username == "zhang"

    assert custody("users", "passwd", "zhang", password="a-new-long-password").exit_code == 0
    with pytest.raises(LoginRefused):
        login("a-long-enough-password")
    assert login("a-new-long-password").username == "zhang"

    assert custody("users", "disable", "zhang").exit_code == 0
    assert json.loads(custody("users", "list", "--json").output.splitlines()[0])["disabled"] is True
    with pytest.raises(LoginRefused):
        login("a-new-long-password")
    assert custody("users", "enable", "zhang").exit_code == 0
    assert login("a-new-long-password").username == "zhang"

    for command in ("passwd", "disable", "enable", "unlock"):
        result = custody("users", command, "zhnag", password="a-third-long-password")
        assert result.exit_code == 2 and "no account 'zhnag'" in result.output, (command, result.output)


def test_users_locks_lists_locked_addresses_and_unlock_clears_one(custody, tiny_exam) -> None:
    """An exam site's staff share one address: one person's typos there locked everyone out for 15 minutes,
    and `users unlock NAME` cleared only the account's counter."""
    from datetime import timedelta

    from web.accounts import LoginLocked, LoginRefused, Throttle, authenticate

    throttle = Throttle(tiny_exam, 5, timedelta(minutes=15), address_failures=3)
    now = datetime.now(UTC)
    for name in ("zhang", "li"):
        assert custody("users", "add", name, "--role", "officer", "--unit", "360102",
                       password="a-long-enough-password").exit_code == 0

    def login(name: str, password: str = "a-long-enough-password"):
        return authenticate(tiny_exam, name, password, "10.0.0.9", now, hasher=CHEAP, throttle=throttle)

    assert custody("users", "locks").output.strip() == "no account or address is locked"
    for _ in range(3):  # zhang's typos lock the site's address
        with pytest.raises((LoginRefused, LoginLocked)):
            login("zhang", "not-the-password")
    with pytest.raises(LoginLocked):
        login("li")
    listed = custody("users", "locks")
    assert listed.exit_code == 0 and "address 10.0.0.9" in listed.output and "zhang" not in listed.output
    assert custody("users", "unlock", "li").exit_code == 0
    with pytest.raises(LoginLocked):  # the account was not what was locked
        login("li")
    unlocked = custody("users", "unlock", "--address", "10.0.0.9")
    assert unlocked.exit_code == 0 and "address 10.0.0.9 unlocked" in unlocked.output
    assert login("li").username == "li"
    assert custody("users", "locks").output.strip() == "no account or address is locked"
    neither = custody("users", "unlock")
    assert neither.exit_code == 2 and "--address" in neither.output


def test_the_password_is_never_an_option(custody) -> None:
    result = custody("users", "add", "zhou", "--role", "admin", "--password", "a-long-enough-password")
    assert result.exit_code == 2 and "No such option" in result.output


def test_serve_help_names_its_options() -> None:
    from cli.main import cli

    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--threads", "--secure-cookies", "CUSTODY_PORT"):
        assert option in result.output


def test_the_demo_login_is_an_institute_administrator_with_a_fresh_password(tiny_exam) -> None:
    from cli.serve import DEMO_ADMIN, demo_login
    from web.accounts import Throttle, authenticate

    first, second = demo_login(tiny_exam), demo_login(tiny_exam)
    assert first != second and len(second) >= 16
    from datetime import timedelta

    throttle = Throttle(tiny_exam, 5, timedelta(minutes=15))
    account = authenticate(tiny_exam, DEMO_ADMIN, second, "127.0.0.1", datetime.now(UTC),
                           hasher=CHEAP, throttle=throttle)
    assert account.role == "admin" and account.unit is None


@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM"])
def test_serve_takes_signed_batches_through_its_signature_workers_and_stores_the_states_on_exit(
        tiny_exam, db_url, stop: str) -> None:
    """`custody serve` as an operator runs it: a worker process checks the signatures, every accepted
    event has a receipt that verifies, and Ctrl+C, or SIGTERM as a service manager stops it, stops the
    workers and the writer process and stores the custody states."""
    import http.client
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    from datetime import timedelta

    from custody.log.note import parse_verifier_key
    from custody.log.proofs import verify_tlog_proof
    from store.ledger import Ledger
    from store.models import Setting
    from tests.factories import TEST_SECRET
    from tests.store.ledger_helpers import Desk
    from web.station_auth import sign_request

    ledger = Ledger(tiny_exam)
    ledger.record_labels("zk2017")
    t = datetime(2017, 6, 12, 2, 0, tzinfo=UTC)
    desk = Desk(tiny_exam, "3601", t - timedelta(days=10))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "CUSTODY_DATABASE_URL": db_url, "CUSTODY_PASSPHRASE": TEST_SECRET.decode()}
    server = subprocess.Popen([sys.executable, "-m", "custody", "--home", str(tiny_exam.home), "serve", "--port",
                               str(port), "--verify-workers", "1"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/checkpoint")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, server.stdout.read()
            time.sleep(0.2)
        events = desk.receive_events(6, t)
        body = json.dumps({"events": events}).encode()
        signer = desk.signers[desk.code]
        headers = sign_request("POST", "/api/v1/events", body, station=desk.code, kid=signer.kid, sign=signer.sign,
                               now=datetime.now(UTC))
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("POST", "/api/v1/events", body=body, headers={**headers, "Content-Type": "application/json"})
        response = connection.getresponse()
        results = json.loads(response.read())["results"]
        assert response.status == 200 and [r["status"] for r in results] == ["accepted"] * 6
        log_key = parse_verifier_key(ledger.log_key())
        for r in results:
            verify_tlog_proof(r["receipt"], bytes.fromhex(r["leaf_hash"]), log_key)
    finally:
        server.send_signal(getattr(signal, stop))
        output = server.communicate(timeout=60)[0]
    assert server.returncode in (0, -signal.SIGINT), output
    assert "Traceback" not in output, output
    with tiny_exam.db.session() as s:  # stored on the way out: the next start replays nothing
        assert int(s.get(Setting, "rules_state_size").value) == ledger.size()
