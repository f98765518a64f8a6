"""``custody verify`` (the nightly integrity check) and ``custody witness`` (the province's cosigner).

Exit codes: 0 everything holds; 1 anything is wrong (each broken leaf, item or
checkpoint is named) or the witness refuses a checkpoint; 2 a usage error;
3 (``custody witness --once``) the checkpoint was verified, cosigned and kept,
but the city did not take the cosignature, or the city could not be reached and
nothing was cosigned (docs/verification.md).
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cli.context import Context, emit_json, pass_ctx

if TYPE_CHECKING:
    from collections.abc import Sequence

    from store.ledger import Ledger
    from store.witness_http import HandBack

DEFAULT_SCHEDULE = "*-*-* 02:30:00"
#: ``custody witness --once``: the checkpoint was verified, cosigned and kept, but the city did not take the
#: cosignature (not an alarm about the log: that is exit 1).
EXIT_NOT_HANDED_BACK = 3


def _systemd_units(schedule: str, home: Path) -> str:
    """The service and timer units, with the home folder and the program written so that systemd reads back
    exactly these paths (systemd.syntax(7) "Quoting"). Raises click.BadParameter (exit 2) for a home or
    schedule that holds a control character: a newline would end the setting and start a directive of its
    own in the unit."""
    argv0 = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else Path("custody")
    if str(argv0).endswith(".py"):  # `python -m custody`: argv[0] is custody/__main__.py, not a program
        program = [str(Path(sys.executable).absolute()), "-m", "custody"]  # not resolved: a venv python is a symlink
    else:
        program = [str(argv0)]
    _refuse_control_characters(str(home), "the home folder", "主目录", "'--home' / CUSTODY_HOME")
    _refuse_control_characters(schedule, "the schedule", "计划时间", "'--schedule' / CUSTODY_VERIFY_SCHEDULE")
    for word in program:
        _refuse_control_characters(word, "the path of the custody program", "custody 程序的路径", None)
    exec_start = " ".join(_unit_word(word, command_line=True) for word in [*program, "verify"])
    return f"""# /etc/systemd/system/custody-verify.service
[Unit]
Description=custody nightly log verification
Wants=network-online.target
After=network-online.target postgresql.service

[Service]
Type=oneshot
User=custody
Environment={_unit_word(f"CUSTODY_HOME={home}", command_line=False)}
EnvironmentFile=/etc/custody/verify.env
ExecStart={exec_start}
Nice=10
IOSchedulingClass=idle

# /etc/systemd/system/custody-verify.timer
[Unit]
Description=Run custody verify on schedule ({schedule})

[Timer]
OnCalendar={schedule}
Persistent=true
RandomizedDelaySec=5min

[Install]
WantedBy=timers.target
"""


def _unit_word(value: str, *, command_line: bool) -> str:
    """``value`` as one double-quoted item of a unit setting: backslash and double quote escaped (systemd
    unquotes with C escapes), ``%`` doubled (specifiers are expanded before unquoting, quoted or not) and,
    on a command line, ``$`` doubled (variables are expanded after unquoting, quoted or not)."""
    text = value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    if command_line:
        text = text.replace("$", "$$")
    return f'"{text}"'


def _refuse_control_characters(value: str, what: str, what_zh: str, param_hint: str | None) -> None:
    import unicodedata

    bad = next((c for c in value if unicodedata.category(c) in ("Cc", "Cs")), None)
    if bad is None:
        return
    if unicodedata.category(bad) == "Cs":  # a path's bytes that are not UTF-8
        message = (f"{what_zh}含非 UTF-8 字节，systemd 单元文件只收 UTF-8 / {what} {value!r} holds bytes that "
                   "are not UTF-8, which a systemd unit file must be")
    else:
        message = (f"{what_zh}含控制字符 U+{ord(bad):04X}，不能写进 systemd 单元（换行会结束该设置、另起一条指令） / "
                   f"{what} {value!r} contains the control character U+{ord(bad):04X}, which a systemd unit must "
                   "not hold (a line break would end the setting and start a directive of its own)")
    if param_hint is None:
        raise click.UsageError(message)
    raise click.BadParameter(message, param_hint=param_hint)


@click.command()
@click.option("--full", is_flag=True, help="Verify every leaf from the start, not just what came since the last "
                                          "successful run.")
@click.option("--json", "as_json", is_flag=True, help="Print the signed report as JSON.")
@click.option("--receipts", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A folder of station receipts (tlog-proof texts, one file per event) that must be in the log.")
@click.option("--report", "report_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the report to FILE (HTML if it ends in .html, else JSON).")
@click.option("--witness-home", "witness_homes", multiple=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A witness folder (custody witness --home) whose checkpoints the log must extend. Repeatable.")
@click.option("--workers", type=click.IntRange(min=0), envvar="CUSTODY_VERIFY_WORKERS",
              help="Processes for signature checks (default: one per core; 0: none).")
@click.option("--alert-command", envvar="CUSTODY_ALERT_COMMAND",
              help="On failure run this program with the report path as last argument (no shell); "
                   "delivered if it exits 0. Env: CUSTODY_ALERT_COMMAND.")
@click.option("--alert-webhook", envvar="CUSTODY_ALERT_WEBHOOK",
              help="On failure POST the JSON report to this URL; delivered on a 2xx answer, tried 3 times "
                   "(after 2 s and 8 s) on a connection error, timeout or 5xx/429. Env: CUSTODY_ALERT_WEBHOOK.")
@click.option("--unsafe-unsigned-report", is_flag=True,
              help="Do not sign the report (no key passphrase at hand). Such a run never becomes the base of an "
                   "incremental run.")
@click.option("--print-systemd", is_flag=True, help="Print a systemd service and timer for this instance and exit.")
@click.option("--schedule", envvar="CUSTODY_VERIFY_SCHEDULE", default=DEFAULT_SCHEDULE, show_default=True,
              help="systemd OnCalendar schedule used by --print-systemd. Env: CUSTODY_VERIFY_SCHEDULE.")
@pass_ctx
def verify(ctx: Context, full: bool, as_json: bool, receipts: Path | None, report_file: Path | None,
           witness_homes: tuple[Path, ...], workers: int | None, alert_command: str | None,
           alert_webhook: str | None, unsafe_unsigned_report: bool, print_systemd: bool, schedule: str) -> None:
    """Verify the whole custody log: exit 0 only if everything holds, 1 naming what is broken.

    Recomputes leaf hashes and the tree from the stored bytes, checks every
    signed checkpoint and its consistency with the next, each item's hash chain,
    every station signature with the key valid at that time, every label, the
    custody rules (re-run), and the checkpoints held outside the database. The
    signed report is kept in the database and in <home>/reports/.
    """
    if print_systemd:
        click.echo(_systemd_units(schedule, ctx.home), nl=False)
        return
    from custody.errors import KeyStoreError
    from store.alert_hooks import notify_failure, undelivered_line
    from store.verification import VerifyOptions, verify_instance

    if report_file is not None and not report_file.parent.is_dir():  # before the work, not after it
        raise click.BadParameter(f"the folder {report_file.parent} does not exist", param_hint="--report")
    for witness_home in witness_homes:  # an empty or wrong folder would pass as a witness with nothing to say
        if not (witness_home / "checkpoint").is_file() and not any((witness_home / "checkpoints").glob("*")):
            raise click.BadParameter(f"{witness_home} holds no witnessed checkpoint (no checkpoint file, no "
                                     "checkpoints/): not a witness folder (custody witness --home)",
                                     param_hint="--witness-home")
    instance = ctx.instance()
    bar = _progress_bar()
    try:
        outcome = verify_instance(instance, VerifyOptions(
            full=full, receipts=receipts, witness_homes=witness_homes, workers=workers,
            sign=not unsafe_unsigned_report, progress=bar.update if bar else None))
    except KeyStoreError as exc:  # configuration, not evidence: exit 2
        raise click.UsageError(f"cannot sign the report with the log key: {exc} "
                               "(set CUSTODY_PASSPHRASE, or --unsafe-unsigned-report)") from None
    finally:
        if bar:
            bar.close()
    report = outcome.report
    if report_file is not None:
        from custody.verify.report import render_html

        text = render_html(report) if report_file.suffix.lower() in (".html", ".htm") else \
            json.dumps(report, ensure_ascii=False, indent=1) + "\n"
        report_file.write_text(text, encoding="utf-8")
    if as_json:
        emit_json({**report, "report_path": str(outcome.json_path), "html_path": str(outcome.html_path)})
    else:
        from custody.verify.report import render_text

        click.echo(render_text(report), nl=False)
        click.echo(f"report: {outcome.json_path} ({outcome.html_path.name if outcome.html_path else ''})")
    if not outcome.ok:
        deliveries = []
        if alert_command or alert_webhook:
            assert outcome.json_path is not None
            deliveries = notify_failure(outcome.json_path, report, command=alert_command, webhook=alert_webhook)
            for delivery in deliveries:
                click.echo(delivery.line(), err=True)
        for f in report["findings"][:20]:
            click.echo(f"FAIL {f['code']} @ {f['where']}: {f['message']}", err=True)
        undelivered = undelivered_line(deliveries)
        if undelivered:  # last, where the eye of whoever reads the job's log lands
            click.echo(undelivered, err=True)
        raise SystemExit(1)


class _Bar:
    def __init__(self) -> None:
        from tqdm import tqdm

        self.bar = tqdm(unit="leaf", unit_scale=True, file=sys.stderr, desc="verify")
        self.done = 0

    def update(self, done: int, total: int) -> None:
        if self.bar.total != total:
            self.bar.total = total
        self.bar.update(done - self.done)
        self.done = done

    def close(self) -> None:
        self.bar.close()


def _progress_bar() -> _Bar | None:
    return _Bar() if sys.stderr.isatty() else None


# --- the witness ----------------------------------------------------------------------------

class _Source:
    """Where the witness reads the log: the city's URL, or a local instance (``--local``, for cron and tests)."""

    def __init__(self, url: str | None, local: Path | None, instance: Any = None, *,
                 retry_waits: Sequence[float] | None = None):
        """``retry_waits``: seconds before each further attempt to hand a cosignature back to ``url``
        (default ``store.witness_http.RETRY_WAITS``)."""
        self.url = url.rstrip("/") if url else None
        self.retry_waits = retry_waits
        self.local = local if local is not None or instance is None else instance.home
        self.instance = instance

    def _ledger(self) -> Ledger:
        from store.instance import open_instance
        from store.ledger import Ledger

        assert self.local is not None
        if self.instance is not None:
            class _Kept:  # the caller's instance: not closed here
                def __init__(self, inner: Any) -> None:
                    self.inner = inner

                def __getattr__(self, name: str) -> Any:
                    return getattr(self.inner, name)

                def close(self) -> None:
                    pass

            return Ledger(_Kept(self.instance))  # type: ignore[arg-type]
        return Ledger(open_instance(self.local))

    def checkpoint(self) -> bytes:
        if self.local is not None:
            ledger = self._ledger()
            try:
                return ledger.latest_checkpoint().encode()
            finally:
                ledger.instance.close()
        from store.witness_http import get_text

        assert self.url is not None
        return get_text(self.url, "/checkpoint").encode()

    def consistency(self, old: int, new: int) -> list[bytes]:
        from custody.log.proofs import parse_consistency_proof

        if old == 0 or old == new:
            return []
        if self.local is not None:
            ledger = self._ledger()
            try:
                return parse_consistency_proof(ledger.consistency_proof(old, new))
            finally:
                ledger.instance.close()
        from store.witness_http import get_text

        assert self.url is not None
        return parse_consistency_proof(get_text(self.url, "/api/v1/proofs/consistency", f"old={old}&new={new}"))

    def rollovers(self) -> list[str]:
        """The city's log key rollovers, oldest first (none from a city that does not serve them)."""
        if self.local is not None:
            ledger = self._ledger()
            try:
                return ledger.log_key_rollovers()
            finally:
                ledger.instance.close()
        from custody.log.rollover import rollovers_of
        from store.witness_http import CityUnreachable, get_text

        assert self.url is not None
        try:
            return rollovers_of(json.loads(get_text(self.url, "/api/v1/log-key/rollovers")))
        except (CityUnreachable, ValueError):
            return []

    def post(self, note: bytes) -> HandBack:
        """Hand the cosigned checkpoint back: POST it to the city (retried, see store.witness_http.hand_back),
        or store it in the local instance. Says whether it was taken; raises only on the unexpected."""
        from store.witness_http import HandBack, hand_back

        if self.local is None:
            assert self.url is not None
            return hand_back(self.url, note, retry_waits=self.retry_waits)
        from custody.errors import CustodyError
        from store.verification import add_cosignature

        ledger = self._ledger()
        try:
            add_cosignature(ledger.instance, note)
        except CustodyError as exc:  # not a cosignature the city accepts: no registered witness, not its checkpoint
            return HandBack(False, 1, None, False, f"cosignature NOT handed back: the local instance refused it: {exc}",
                            f"见证签名未交回：本地实例拒收：{exc}")
        finally:
            ledger.instance.close()
        return HandBack(True, 1, None, True, "cosignature handed back: stored in the local instance",
                        "见证签名已交回：已存入本地实例")


def _witness_config(home: Path, log_key: str | None, name: str | None, *, rotated: bool = False) -> dict[str, Any]:
    """``witness.json``: the log key trusted now, those trusted before (``previous_log_keys``, which
    open only checkpoints held from before a rotation) and the witness's name."""
    from custody.log.note import parse_verifier_key

    path = home / "witness.json"
    config: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    if rotated and not log_key:
        raise click.UsageError("--log-key-rotated needs --log-key: the city's new log key, confirmed with the city")
    if log_key:
        if log_key.startswith("@"):
            log_key = Path(log_key[1:]).read_text(encoding="utf-8").strip()
        parse_verifier_key(log_key)
        trusted = config.get("log_key")
        if trusted and trusted != log_key:
            if not rotated:
                raise click.UsageError(
                    f"{path} already trusts the log key {trusted}; refusing to replace it. If the city rotated "
                    "its log key (`custody keys rotate --role log_signer`), confirm the new key with the city and "
                    "run once with --log-key NEW --log-key-rotated: later checkpoints must be signed by the new "
                    "key and still extend the one held")
            config["previous_log_keys"] = [*config.get("previous_log_keys", []), trusted]
        config["log_key"] = log_key
    if not config.get("log_key"):
        raise click.UsageError("the first run needs --log-key (the city's `custody log-key` output, or @FILE)")
    config["name"] = name or config.get("name") or "witness"
    home.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")
    return config


def _follow_rollovers(home: Path, config: dict[str, Any], new_note: bytes, source: _Source) -> str | None:
    """A checkpoint not signed by the trusted log key: if the city's rollovers, each signed by the key
    before, lead from it to the key that signed the checkpoint, trust that key from now on (the old ones
    kept to open the held checkpoint) and return it. Else None: the checkpoint is judged as it is (the
    alarm, if nothing vouches for its key)."""
    from custody.errors import LogError
    from custody.log.checkpoint import open_checkpoint
    from custody.log.note import parse_verifier_key
    from custody.log.rollover import follow_rollovers
    from keys.durable import write_atomically

    trusted = config["log_key"]
    try:
        open_checkpoint(new_note, parse_verifier_key(trusted))
        return None
    except LogError:
        pass
    try:
        chain = follow_rollovers(trusted, source.rollovers())
    except LogError:
        return None
    for n, candidate in enumerate(chain[1:], start=1):
        try:
            open_checkpoint(new_note, parse_verifier_key(candidate))
        except LogError:
            continue
        config["previous_log_keys"] = [*config.get("previous_log_keys", []), *chain[:n]]
        config["log_key"] = candidate
        write_atomically(home / "witness.json", (json.dumps(config, indent=1) + "\n").encode())
        return candidate
    return None


def _witness_key(home: Path, name: str, secret: bytes | None = None) -> Any:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from custody.log.note import cosigner_key
    from keys.files import passphrase, public_raw, read_private_key, write_private_key

    path = home / "witness-key.pem"
    if path.exists():
        return read_private_key(path, secret or passphrase())
    key = Ed25519PrivateKey.generate()
    write_private_key(path, key, secret or passphrase(new=True))
    (home / "witness.vkey").write_text(cosigner_key(name, public_raw(key)) + "\n", encoding="utf-8")
    click.echo(f"created the witness key; give the city this cosigner key: {cosigner_key(name, public_raw(key))}",
               err=True)
    return key


def witness_once(home: Path, source: _Source, *, log_key: str | None = None, name: str | None = None,
                 post: bool = True, now: datetime | None = None, secret: bytes | None = None,
                 rotated: bool = False) -> dict[str, Any]:
    """One round: fetch, verify against the held checkpoint, cosign, keep, hand back. Raises WitnessRefusal.

    The cosigned checkpoint is written to ``home`` (``checkpoint``, ``checkpoints/<size>``) before it is
    handed back, so it is kept whatever becomes of the hand-back. The result says how that went:
    ``handed_back`` (None with ``post=False``), ``posted`` / ``posted_zh``, and when it was not handed
    back, ``next_step`` / ``next_step_zh`` for the operator.
    """
    from custody.log.note import parse_verifier_key
    from custody.verify.witness import open_held, witness_checkpoint
    from keys.files import public_raw

    config = _witness_config(home, log_key, name, rotated=rotated)
    key = _witness_key(home, config["name"], secret)
    held_path = home / "checkpoint"
    held = held_path.read_bytes() if held_path.exists() else None
    new_note = source.checkpoint()
    followed = _follow_rollovers(home, config, new_note, source)
    verifier = parse_verifier_key(config["log_key"])
    previous_keys = [parse_verifier_key(k) for k in config.get("previous_log_keys", [])]
    old_size = open_held(held, [verifier, *previous_keys]).size if held else 0
    from custody.errors import LogError
    from custody.log.checkpoint import parse_checkpoint
    from custody.log.note import parse_unverified_note

    try:
        new_size = parse_checkpoint(parse_unverified_note(new_note).body).size
    except LogError:
        new_size = old_size
    proof = source.consistency(old_size, new_size) if held and new_size > old_size else []
    when = now or datetime.now(UTC)
    result = witness_checkpoint(new_note, held, proof, verifier, name=config["name"], signer=key,
                                timestamp=int(when.timestamp()), public_raw=public_raw(key),
                                previous_keys=previous_keys)
    size = result.checkpoint.size
    # each whole or not at all, on disk before the hand-back: a half-written held checkpoint after a crash
    # or a power cut would stop every later round (it could not be read)
    from keys.durable import write_atomically

    write_atomically(home / "checkpoints" / str(size), result.note)
    write_atomically(held_path, result.note)
    outcome: dict[str, Any] = {"size": size, "root": result.checkpoint.root_hash.hex(),
                               "previous_size": result.previous_size, "cosignature": result.line.strip(),
                               "handed_back": None, "posted": "not posted (--no-post)",
                               "posted_zh": "未交回（--no-post）", "log_key_followed": followed}
    if not post:
        return outcome
    from store.witness_http import HandBack

    try:
        handed = source.post(result.note)
    except Exception as exc:  # noqa: BLE001 - the witness has done its part; only the delivery failed
        handed = HandBack(False, 1, None, False, f"cosignature NOT handed back: {type(exc).__name__}: {exc}",
                          f"见证签名未交回：{type(exc).__name__}：{exc}")
    outcome.update(handed_back=handed.handed_back, attempts=handed.attempts, posted=handed.message,
                   posted_zh=handed.message_zh)
    if not handed.handed_back:
        outcome["next_step"], outcome["next_step_zh"] = _after_a_failed_hand_back(home, size, handed)
    return outcome


def _after_a_failed_hand_back(home: Path, size: int, handed: HandBack) -> tuple[str, str]:
    """What the operator is told when the city did not take the cosignature (English, Chinese)."""
    kept = home / "checkpoints" / str(size)
    message = (f"the cosigned checkpoint is kept ({kept}, and {home / 'checkpoint'}); the next run cosigns the "
               "city's latest checkpoint again and hands that back (handing back twice is harmless: the city "
               "keeps one line per witness key)")
    message_zh = (f"已副署的检查点已保存（{kept}，及 {home / 'checkpoint'}）；下次运行会重新副署城市的最新检查点并交回"
                  "（重复交回无害：城市对每个见证密钥只保留一行）")
    if not handed.may_pass:
        vkey = home / "witness.vkey"
        message += (f", but it will fail again until the city or the operator acts on the reason above (a witness "
                    f"key the city has not registered: the city runs custody witness-trust \"$(cat {vkey})\")")
        message_zh += (f"，但在城市或运维处理上述原因之前仍会失败（若城市未登记见证密钥：城市运行 "
                       f"custody witness-trust \"$(cat {vkey})\"）")
    return message, message_zh


@click.command()
@click.option("--url", envvar="CUSTODY_WITNESS_URL", help="The city's base URL (GET /checkpoint, "
                                                          "/api/v1/proofs/consistency; POST /api/v1/cosignatures).")
@click.option("--local", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Read a local instance folder instead of a URL (cron on the same host, tests).")
@click.option("--home", "witness_home", required=True, type=click.Path(file_okay=False, path_type=Path),
              envvar="CUSTODY_WITNESS_HOME", help="The witness's own folder: key, trusted log key, held checkpoints.")
@click.option("--log-key", help="The city's log verifier key (or @FILE); needed on the first run only.")
@click.option("--log-key-rotated", "rotated", is_flag=True,
              help="With --log-key: the city rotated its log key; trust the new one from now on (the held checkpoint, "
                   "signed by the old key, must still be extended).")
@click.option("--name", help="The witness's key name (first run; default 'witness').")
@click.option("--once", is_flag=True, help="One round, then exit (for cron).")
@click.option("--interval", type=click.IntRange(min=5), default=300, show_default=True,
              help="Seconds between rounds without --once.")
@click.option("--no-post", is_flag=True, help="Do not hand the cosignature back to the city.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per round.")
def witness(url: str | None, local: Path | None, witness_home: Path, log_key: str | None, rotated: bool,
            name: str | None, once: bool, interval: int, no_post: bool, as_json: bool) -> None:
    """Witness the city's log: verify each new checkpoint extends the one held, cosign it, keep it, hand it back.

    Refuses (exit 1, loudly) a checkpoint that is forged, smaller than the one
    held (a rollback) or not consistent with it (a fork). With --once, exits 3
    when the checkpoint was cosigned and kept but the city did not take the
    cosignature (not answered 2xx after the retries), or when the city could
    not be reached or did not serve its checkpoint or a consistency proof
    (nothing cosigned); the next run tries again. Without --once, neither ends
    the loop.
    """
    from custody.verify.witness import WitnessRefusal
    from store.witness_http import CityUnreachable

    if (url is None) == (local is None):
        raise click.UsageError("give exactly one of --url or --local")
    source = _Source(url, local)
    while True:
        try:
            result = witness_once(witness_home, source, log_key=log_key, name=name, post=not no_post,
                                  rotated=rotated)
        except CityUnreachable as exc:  # a network or server outage, not a finding: the loop goes on
            again, again_zh = ("the next run", "下次运行") if once else ("the next round", "下一轮")
            click.echo(f"见证本轮未完成：无法从城市获取检查点或一致性证明，本轮未副署；{again_zh}将重试 / "
                       f"this round did not happen: {exc}; nothing was cosigned, {again} tries again", err=True)
            if as_json:
                click.echo(json.dumps({"unreachable": str(exc)}, ensure_ascii=False))
            if once:
                raise SystemExit(EXIT_NOT_HANDED_BACK) from None
            time.sleep(interval)
            continue
        except WitnessRefusal as exc:
            click.echo(f"WITNESS ALARM: {exc}", err=True)
            click.echo(f"见证告警：拒绝副署。{exc.message_zh}", err=True)
            if as_json:  # a job reading the rounds sees the refused one too
                click.echo(json.dumps({"alarm": exc.kind, "message": str(exc), "message_zh": exc.message_zh},
                                      ensure_ascii=False))
            raise SystemExit(1) from None
        not_handed_back = result["handed_back"] is False
        if result.get("log_key_followed") and not as_json:
            click.echo(f"the city rotated its log key: now trusting {result['log_key_followed']} (vouched for by "
                       "the key trusted before)")
        if as_json:
            click.echo(json.dumps(result, ensure_ascii=False))
        elif not_handed_back:
            click.echo(f"cosigned size {result['size']} (root {result['root']}); NOT handed back (see below)")
        else:
            click.echo(f"cosigned size {result['size']} (root {result['root']}); {result['posted']}")
        if not_handed_back:
            click.echo(f"{result['posted_zh']} / {result['posted']}", err=True)
            click.echo(f"{result['next_step_zh']} / {result['next_step']}", err=True)
            if once:
                raise SystemExit(EXIT_NOT_HANDED_BACK)
        if once:
            return
        log_key, rotated = None, False
        time.sleep(interval)


@click.command("witness-trust")
@click.argument("cosigner_key")
@pass_ctx
def witness_trust(ctx: Context, cosigner_key: str) -> None:
    """Register a witness's cosigner key (from `custody witness`) so its cosignatures are checked."""
    from custody.keyring import Role
    from custody.log.note import ALG_COSIGNATURE_V1, parse_verifier_key

    verifier = parse_verifier_key(cosigner_key.strip())
    if verifier.alg != ALG_COSIGNATURE_V1:
        raise click.UsageError("expected a cosigner key (signature type 0x04), as written in witness.vkey")
    instance = ctx.instance()
    key = instance.keys.register(verifier.public_raw, Role.WITNESS, verifier.name, datetime.now(UTC))
    click.echo(f"registered witness {verifier.name} key {key.kid_hex}")


def register(group: click.Group) -> None:
    for command in (verify, witness, witness_trust):
        group.add_command(command)
