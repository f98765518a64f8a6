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
