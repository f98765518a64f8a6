"""``custody verify`` and ``custody witness`` on the command line: exit codes, reports, alert hooks."""

from __future__ import annotations

import http.server
import json
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli
from cli.verifycmd import register
from tests.factories import TEST_SECRET
from tests.verify import systemd_syntax, tampering
from tests.verify.conftest import handover_indexes

if "verify" not in cli.commands:  # until cli/main.py registers it
    register(cli)


def _run(sim, *args: str, env: dict[str, str] | None = None):
    environment = {"CUSTODY_DATABASE_URL": sim.instance.db.url, "CUSTODY_PASSPHRASE": TEST_SECRET.decode(),
                   **(env or {})}
    return CliRunner().invoke(cli, ["--home", str(sim.instance.home), *args], env=environment,
                              catch_exceptions=False)


class _Hook(http.server.BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_verify_exits_0_on_a_clean_log_and_1_naming_what_is_broken(simulated, tmp_path: Path) -> None:
    result = _run(simulated, "verify", "--json", "--workers", "0", "--report", str(tmp_path / "r.html"))
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ok"] and Path(report["report_path"]).exists() and report["signature"]["alg"] == "Ed25519"
    assert "核验通过" in (tmp_path / "r.html").read_text(encoding="utf-8")

    k = handover_indexes(simulated.instance)[5]
    tampering.modify_leaf(simulated.instance, k)
    script = tmp_path / "alert.py"
    script.write_text("import sys, pathlib\npathlib.Path(sys.argv[1]).write_text(sys.argv[2])\n", encoding="utf-8")
    server = http.server.HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = _run(simulated, "verify", "--full", "--workers", "0",
                      env={"CUSTODY_ALERT_COMMAND": f"{sys.executable} {script} {tmp_path / 'alerted'}",
                           "CUSTODY_ALERT_WEBHOOK": f"http://127.0.0.1:{server.server_port}/hook"})
    finally:
        server.shutdown()
    assert result.exit_code == 1
    assert f"leaf_hash_mismatch @ leaf {k}" in result.output
    assert "核验失败" in result.output
    alerted = Path((tmp_path / "alerted").read_text(encoding="utf-8"))
    assert json.loads(alerted.read_text(encoding="utf-8"))["ok"] is False
    assert _Hook.received and _Hook.received[-1]["finding_counts"]["leaf_hash_mismatch"] == 1
    assert f"alarm delivered: alert command {sys.executable} exited 0" in result.stderr
    assert f"alarm delivered: webhook http://127.0.0.1:{server.server_port} answered 204" in result.stderr
    assert "NOT delivered" not in result.stderr and "未送达" not in result.stderr


def test_an_alarm_not_delivered_is_said_last_and_the_verdict_stays(simulated, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import store.alert_hooks

    monkeypatch.setattr(store.alert_hooks, "RETRY_WAITS", (0.01, 0.01))
    tampering.modify_leaf(simulated.instance, handover_indexes(simulated.instance)[5])
    script = tmp_path / "alert.py"
    script.write_text("raise SystemExit(3)\n", encoding="utf-8")
    failing = type("_Failing", (_Hook,), {"do_POST": _answer_500})
    server = http.server.HTTPServer(("127.0.0.1", 0), failing)
    threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
    try:
        result = _run(simulated, "verify", "--full", "--workers", "0", "--json",
                      env={"CUSTODY_ALERT_COMMAND": f"{sys.executable} {script}",
                           "CUSTODY_ALERT_WEBHOOK": f"http://127.0.0.1:{server.server_port}/hook?token=s3cr3t"})
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 1 and json.loads(result.stdout)["ok"] is False  # stdout: the report alone
    lines = result.stderr.splitlines()
    assert f"alarm NOT delivered: alert command {sys.executable} exited 3" in result.stderr
    assert (f"告警未送达：webhook http://127.0.0.1:{server.server_port} 返回 500（共尝试 3 次） / alarm NOT "
            f"delivered: webhook http://127.0.0.1:{server.server_port} answered 500 (after 3 attempts)") in lines
    assert lines[-1].startswith("告警未送达：2 个告警通道中有 2 个失败") and "2 of 2 alert hook(s) failed" in lines[-1]
    assert "s3cr3t" not in result.output


def _answer_500(handler: http.server.BaseHTTPRequestHandler) -> None:
    handler.rfile.read(int(handler.headers["Content-Length"]))
    handler.send_response(500)
    handler.send_header("Content-Length", "0")
    handler.end_headers()


def test_print_systemd_uses_the_schedule(simulated) -> None:
    result = _run(simulated, "verify", "--print-systemd", env={"CUSTODY_VERIFY_SCHEDULE": "*-*-* 03:15:00"})
    assert result.exit_code == 0
    assert "OnCalendar=*-*-* 03:15:00" in result.output and "ExecStart=" in result.output
    assert "[Install]" in result.output and "Type=oneshot" in result.output
    # After= alone only orders the service after the network, it does not start it
    assert "Wants=network-online.target\nAfter=network-online.target " in result.output


def test_witness_cosigns_and_raises_the_alarm_on_a_rewritten_log(make_simulated, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    sim = make_simulated()
    monkeypatch.setenv("CUSTODY_PASSPHRASE", "province-passphrase")
    key = _run(sim, "log-key") if "log-key" in cli.commands else None
    from store.ledger import Ledger

    log_key = key.output.strip() if key is not None and key.exit_code == 0 else Ledger(sim.instance).log_key()
    province = tmp_path / "province"
    # --local reads the city's instance folder: give it the city's database through the environment.
    monkeypatch.setenv("CUSTODY_DATABASE_URL", sim.instance.db.url)
    runner = CliRunner()
    first = runner.invoke(cli, ["witness", "--local", str(sim.instance.home), "--home", str(province),
                                "--log-key", log_key, "--name", "province.witness", "--once", "--json"])
    # Cosigned and kept, but not handed back: the city has not registered the key the first run creates.
    assert first.exit_code == 3, first.output
    assert "cosignature NOT handed back: the local instance refused it: no witness key is registered" in first.stderr
    line = json.loads(first.stdout.strip().splitlines()[-1])
    assert line["size"] > 500 and line["cosignature"].startswith("— province.witness ")
    assert line["handed_back"] is False
    # The city registers the witness and keeps its cosignatures; the verifier checks them.
    vkey = (province / "witness.vkey").read_text(encoding="utf-8").strip()
    assert _run(sim, "witness-trust", vkey).exit_code == 0
    from store.verification import add_cosignature

    add_cosignature(sim.instance, (province / "checkpoint").read_bytes())
    assert "— province.witness" in Ledger(sim.instance).checkpoint(line["size"])
    assert sim.verify(full=True, witness_homes=[province]).ok

    tampering.rewrite_history(sim.instance, handover_indexes(sim.instance)[3])
    again = runner.invoke(cli, ["witness", "--local", str(sim.instance.home), "--home", str(province), "--once",
                                "--json"])
    assert again.exit_code == 1
    assert "WITNESS ALARM: FORK" in again.stderr and "见证告警：拒绝副署。日志分叉" in again.stderr
    alarm = json.loads(again.stdout.strip().splitlines()[-1])  # the refused round in the JSON lines too
    assert alarm["alarm"] == "fork" and alarm["message_zh"].startswith("日志分叉") and "FORK" in alarm["message"]


def test_a_witness_follows_a_log_key_rotation_the_old_key_vouched_for_and_another_only_on_purpose(
        make_simulated, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The city rotates its log key: the old key's rollover vouches for the new one, and the witness follows
    it, the new checkpoint still extending the one held (signed by the old key). A key replaced after a
    revocation has no rollover: the witness raises the alarm (it cannot tell it from a forgery), says how to
    go on, and follows only when told the new key on purpose. Before, every rotation was an alarm, and the
    advice (edit witness.json) left a held checkpoint that no longer opened: every round failed."""
    from custody.keyring import Role
    from store.ledger import Ledger

    sim = make_simulated()
    keys = [Ledger(sim.instance).log_key()]
    monkeypatch.setenv("CUSTODY_PASSPHRASE", "province-passphrase")
    monkeypatch.setenv("CUSTODY_DATABASE_URL", sim.instance.db.url)
    province = tmp_path / "province"

    def witness(*args: str):
        return CliRunner().invoke(cli, ["witness", "--local", str(sim.instance.home), "--home", str(province),
                                        "--once", "--json", "--no-post", *args])

    first = witness("--log-key", keys[0], "--name", "province.witness")
    assert first.exit_code == 0, first.output
    held = json.loads(first.stdout.strip().splitlines()[-1])["size"]
    rotated = _run(sim, "keys", "rotate", "--role", "log_signer")  # the new key signs a checkpoint at once
    assert rotated.exit_code == 0 and "entered in the custody log" in rotated.output, rotated.output
    keys.append(Ledger(sim.instance).log_key())
    followed = witness()
    assert followed.exit_code == 0, followed.output
    line = json.loads(followed.stdout.strip().splitlines()[-1])
    assert line["log_key_followed"] == keys[1] and line["previous_size"] == held and line["size"] > held
    config = json.loads((province / "witness.json").read_text())
    assert config["log_key"] == keys[1] and config["previous_log_keys"] == keys[:1]

    # the log key revoked, then replaced: nothing vouches for the new one
    now = datetime.now(UTC)
    sim.instance.keys.revoke(sim.instance.keys.current(Role.LOG_SIGNER, "3601", now).kid, now, "key file copied")
    assert _run(sim, "keys", "rotate", "--role", "log_signer").exit_code == 0
    keys.append(Ledger(sim.instance).log_key())
    alarm = witness()
    assert alarm.exit_code == 1 and "WITNESS ALARM" in alarm.stderr and "--log-key-rotated" in alarm.stderr
    assert json.loads(alarm.stdout.strip().splitlines()[-1])["alarm"] == "forged"
    not_on_purpose = witness("--log-key", keys[2])
    assert not_on_purpose.exit_code == 2 and "--log-key-rotated" in not_on_purpose.output, not_on_purpose.output
    assert json.loads((province / "witness.json").read_text())["log_key"] == keys[1]
    on_purpose = witness("--log-key", keys[2], "--log-key-rotated")
    assert on_purpose.exit_code == 0, on_purpose.output
    assert json.loads((province / "witness.json").read_text())["previous_log_keys"] == keys[:2]
    assert witness().exit_code == 0  # later rounds: the new key, nothing more to say


def test_no_passphrase_to_sign_the_report_is_a_usage_error(simulated) -> None:
    result = CliRunner().invoke(cli, ["--home", str(simulated.instance.home), "verify", "--workers", "0"],
                                env={"CUSTODY_DATABASE_URL": simulated.instance.db.url, "CUSTODY_PASSPHRASE": None})
    assert result.exit_code == 2 and "CUSTODY_PASSPHRASE" in result.output
    latest = simulated.instance.home / "reports" / "latest.json"
    assert _run(simulated, "verify", "--workers", "0").exit_code == 0
    signed = latest.read_bytes()
    unsigned = _run(simulated, "verify", "--workers", "0", "--unsafe-unsigned-report", "--json",
                    env={"CUSTODY_PASSPHRASE": ""})
    assert unsigned.exit_code == 0 and "signature" not in json.loads(unsigned.output)
    # the signed latest report, a checkpoint held outside the database, is not replaced by one that vouches
    # for nothing (the unsigned report is still written under its own name)
    assert latest.read_bytes() == signed and len(list(latest.parent.glob("verify-*.json"))) == 2


def test_a_folder_that_is_not_a_witness_is_refused(simulated, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = _run(simulated, "verify", "--workers", "0", "--witness-home", str(tmp_path / "empty"))
    assert result.exit_code == 2 and "not a witness folder" in result.output


def test_a_report_file_in_a_missing_folder_is_refused_before_the_run(simulated, tmp_path: Path) -> None:
    tampering.modify_leaf(simulated.instance, handover_indexes(simulated.instance)[5])
    result = _run(simulated, "verify", "--full", "--workers", "0", "--report", str(tmp_path / "missing" / "r.json"))
    assert result.exit_code == 2 and "missing does not exist" in result.output
    # refused before the work: no run was kept whose exit code 1 and alerts a late error would hide
    assert not (simulated.instance.home / "reports").exists()


def test_print_systemd_under_python_m_starts_the_interpreter(simulated, monkeypatch: pytest.MonkeyPatch) -> None:
    import custody.__main__

    monkeypatch.setattr(sys, "argv", [custody.__main__.__file__, "verify", "--print-systemd"])
    result = _run(simulated, "verify", "--print-systemd")
    exec_start = systemd_syntax.units(result.stdout)["custody-verify.service"]["Service"]["ExecStart"]
    assert [systemd_syntax.command_line(line) for line in exec_start] == \
        [[str(Path(sys.executable).absolute()), "-m", "custody", "verify"]]
