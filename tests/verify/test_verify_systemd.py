"""``custody verify --print-systemd``: units that systemd reads back to exactly this instance and program, and
refuse a home or schedule that would inject a directive. Read with tests/verify/systemd_syntax.py (systemd's
quoting rules); ``systemd-analyze verify`` is not assumed to be installed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli.main import cli
from cli.verifycmd import register
from tests.verify import systemd_syntax

if "verify" not in cli.commands:  # until cli/main.py registers it
    register(cli)

#: Each character systemd treats specially in a quoted item: spaces, quotes, backslash, specifier, variable.
AWKWARD = 'exam papers "2017" it\'s a\\b 100%d $HOME ${X} ; é'


def _print(home: Path | str, *args: str, env: dict[str, str | None] | None = None) -> Result:
    environment = {"CUSTODY_VERIFY_SCHEDULE": None, "CUSTODY_HOME": None, **(env or {})}
    return CliRunner().invoke(cli, ["--home", str(home), "verify", "--print-systemd", *args], env=environment)


def _service(result: Result) -> dict[str, dict[str, list[str]]]:
    assert result.exit_code == 0, result.output
    return systemd_syntax.units(result.stdout)["custody-verify.service"]


def test_a_home_with_spaces_and_quotes_reads_back_as_the_exact_path(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / AWKWARD / "home"
    program = tmp_path / f"venv {AWKWARD}" / "bin" / "custody"
    monkeypatch.setattr(sys, "argv", [str(program), "verify", "--print-systemd"])
    service = _service(_print(home))["Service"]
    assert systemd_syntax.environment(service["Environment"][0]) == {"CUSTODY_HOME": str(home)}
    assert systemd_syntax.command_line(service["ExecStart"][0]) == [str(program), "verify"]


def test_an_ordinary_home_reads_back_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["/opt/custody/.venv/bin/custody", "verify", "--print-systemd"])
    result = _print(tmp_path / "custody-home")
    service = _service(result)["Service"]
    assert service["Environment"] == [f'"CUSTODY_HOME={tmp_path / "custody-home"}"']
    assert service["ExecStart"] == ['"/opt/custody/.venv/bin/custody" "verify"']
    assert systemd_syntax.units(result.stdout)["custody-verify.timer"]["Timer"]["OnCalendar"] == ["*-*-* 02:30:00"]


def test_the_service_pulls_in_the_network_it_waits_for(tmp_path: Path) -> None:
    unit = _service(_print(tmp_path))["Unit"]
    assert "network-online.target" in unit["After"][0].split()
    assert "network-online.target" in unit["Wants"][0].split()  # After= alone only orders, it does not start it


@pytest.mark.parametrize("bad", ["\n", "\r", "\x1b", "\t", "\x7f", "\x85"])
def test_a_home_with_a_control_character_is_refused(tmp_path: Path, bad: str) -> None:
    result = _print(f"{tmp_path}/a{bad}ExecStartPre=/bin/touch /tmp/owned")
    assert result.exit_code == 2 and result.stdout == ""
    assert f"U+{ord(bad):04X}" in result.stderr and "--home" in result.stderr and "控制字符" in result.stderr


@pytest.mark.parametrize("how", ["option", "environment"])
def test_a_schedule_with_a_newline_is_refused(tmp_path: Path, how: str) -> None:
    schedule = "*-*-* 02:30:00\n[Service]\nExecStartPre=/bin/touch /tmp/owned"
    result = _print(tmp_path, "--schedule", schedule) if how == "option" else \
        _print(tmp_path, env={"CUSTODY_VERIFY_SCHEDULE": schedule})
    assert result.exit_code == 2 and result.stdout == ""
    assert "U+000A" in result.stderr and "--schedule" in result.stderr


def test_a_program_path_with_a_newline_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", [f"{tmp_path}/bin\nExecStartPre=/bin/sh/custody", "verify"])
    result = _print(tmp_path)
    assert result.exit_code == 2 and result.stdout == "" and "U+000A" in result.stderr
