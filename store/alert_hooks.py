"""The alarm of a failed nightly verification: the operator's alert command and webhook.

Each hook is judged: the alarm counts as delivered only when the command exits
0 or the webhook answers 2xx. The webhook is tried again after a connection
error, a timeout, or a 5xx or 429 answer (another 4xx, a 3xx or a malformed URL
will not get better by waiting); the command is run once. Nothing here raises:
a hook that fails must not hide the verdict it was meant to carry.

A chat robot's webhook (DingTalk, WeCom, Feishu: :data:`ROBOTS`) gets a text
message in its own format, not the report, and its 2xx counts only with the
robot's own "ok" code in the answer: these robots answer 200 to a message they
refuse.

The webhook URL may carry a token (in its query string, its path or its
user:password part), so it is named only as ``scheme://host[:port]`` and error
texts are cleaned of it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from store import http_delivery
from store.http_delivery import RETRY_WAITS

_WHAT = "the webhook URL"  # how a webhook URL that cannot be read is named


@dataclass(frozen=True)
class AlarmDelivery:
    """How one alert hook went: ``delivered`` only if the command exited 0 or the webhook answered 2xx."""

    hook: str  # "command" or "webhook"
    delivered: bool
    attempts: int
    message: str
    message_zh: str

    def line(self) -> str:
        return f"{self.message_zh} / {self.message}"


def notify_failure(report_path: Path, report: dict[str, Any], *, command: str | None = None,
                   webhook: str | None = None, timeout: float = 20.0, retry_waits: Sequence[float] | None = None,
                   sleep: Callable[[float], None] = time.sleep) -> list[AlarmDelivery]:
    """Run the alert command (argv split with shlex, the report path appended; never a shell) and/or
    POST the report JSON to the webhook, each attempt within ``timeout`` seconds.

    The webhook gets ``len(retry_waits) + 1`` attempts (default ``RETRY_WAITS``:
    three, after 2 s and 8 s). Returns one ``AlarmDelivery`` per hook given;
    never raises.
    """
    done = []
    if command:
        done.append(run_alert_command(command, report_path, timeout=timeout))
    if webhook:
        waits = RETRY_WAITS if retry_waits is None else tuple(retry_waits)
        done.append(post_webhook(webhook, report, timeout=timeout, retry_waits=waits, sleep=sleep,
                                 report_path=report_path))
    return done


def undelivered_line(deliveries: Sequence[AlarmDelivery]) -> str | None:
    """The closing line when some alarm was not delivered (None when each was)."""
    failed = [d for d in deliveries if not d.delivered]
    if not failed:
        return None
    return (f"告警未送达：{len(deliveries)} 个告警通道中有 {len(failed)} 个失败（见上），核验失败可能无人知晓 / "
            f"alarm NOT delivered: {len(failed)} of {len(deliveries)} alert hook(s) failed (see above); "
            "nobody may know that verification failed")


# --- the command ----------------------------------------------------------------------------

def run_alert_command(command: str, report_path: Path, *, timeout: float) -> AlarmDelivery:
    """Run the command once; delivered if it exits 0. Only the program's name is shown (its arguments may
    carry a secret)."""
    import shlex
    import subprocess

    try:
        words = shlex.split(command)
    except ValueError as exc:
        return _command(False, f"the alert command cannot be split into words: {exc}",
                        f"告警命令无法解析（{exc}）")
    if not words:  # a blank command would run the report itself as the program
        return _command(False, "the alert command is blank", "告警命令为空")
    program = words[0]
    try:
        result = subprocess.run([*words, str(report_path)], shell=False, timeout=timeout, capture_output=True,
                                check=False)
    except FileNotFoundError:
        return _command(False, f"alert command {program} not found", f"找不到告警命令 {program}")
    except subprocess.TimeoutExpired:
        return _command(False, f"alert command {program} did not finish within {timeout:g} s (stopped)",
                        f"告警命令 {program} 在 {timeout:g} 秒内未结束（已终止）")
    except (OSError, subprocess.SubprocessError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        return _command(False, f"alert command {program} cannot be run: {reason}",
                        f"告警命令 {program} 无法运行：{reason}")
    if result.returncode == 0:
        return _command(True, f"alarm delivered: alert command {program} exited 0",
                        f"告警已送达：告警命令 {program} 退出码 0")
    said = _last_line(result.stderr) or _last_line(result.stdout)
    tail, tail_zh = (f" (it said: {said})", f"（其输出：{said}）") if said else ("", "")
    how = f"exited {result.returncode}" if result.returncode > 0 else f"was killed by signal {-result.returncode}"
    how_zh = f"退出码 {result.returncode}" if result.returncode > 0 else f"被信号 {-result.returncode} 终止"
    return _command(False, f"alert command {program} {how}{tail}", f"告警命令 {program} {how_zh}{tail_zh}")


def _command(delivered: bool, message: str, message_zh: str) -> AlarmDelivery:
    if not delivered:
        message, message_zh = f"alarm NOT delivered: {message}", f"告警未送达：{message_zh}"
    return AlarmDelivery("command", delivered, 1, message, message_zh)


def _last_line(output: bytes) -> str:
    lines = [line.strip() for line in output.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


# --- the webhook ----------------------------------------------------------------------------

def public_url(url: str) -> str:
    """``scheme://host[:port]`` of the webhook ``url`` (see :func:`store.http_delivery.public_url`)."""
    return http_delivery.public_url(url, what=_WHAT)


#: Chat robots by host: they take only a message of their own format, and answer 200 with an error code in
#: the body when they refuse one (a wrong token, a missing keyword, a signature required, a rate limit).
ROBOTS = {"oapi.dingtalk.com": "dingtalk", "qyapi.weixin.qq.com": "wecom",
          "open.feishu.cn": "feishu", "open.larksuite.com": "feishu"}
#: The most a robot's text may hold, in UTF-8 bytes (WeCom's limit for a text message is 2,048).
ROBOT_TEXT_BYTES = 2000


def robot_of(url: str) -> str | None:
    """``dingtalk``, ``wecom`` or ``feishu`` for a chat robot's webhook URL; None for any other."""
    from urllib.parse import urlsplit

    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    return ROBOTS.get(host or "")


def alarm_text(report: dict[str, Any], report_path: Path) -> str:
    """The alarm as a chat message, Chinese first: the verdict, the findings by code, the first findings,
    and where the report is. At most :data:`ROBOT_TEXT_BYTES` bytes: lines that do not fit are left out
    (the findings first; the report's path is kept), and a line too long alone is cut."""
    counts = report.get("finding_counts") or {}
    lines = [f"【custody】日志核验失败 / log verification FAILED: {report.get('origin', '')}",
             f"{report.get('summary_zh', '')} {report.get('summary', '')}".strip(),
             "问题 / findings: " + ", ".join(f"{code} ×{n}" for code, n in list(counts.items())[:10])]
    findings = [f"✗ {f.get('code')} @ {f.get('where')}: {f.get('message_zh') or f.get('message')}"
                for f in (report.get("findings") or [])[:5]]
    where = f"报告 / report: {report_path}"

    def size(text_lines: list[str]) -> int:
        return len("\n".join(text_lines).encode())

    kept = list(lines) if size([*lines, where]) <= ROBOT_TEXT_BYTES else lines[:1]
    for line in findings:
        if size([*kept, line, where]) <= ROBOT_TEXT_BYTES:
            kept.append(line)
    text = "\n".join([*kept, where])
    return text.encode()[:ROBOT_TEXT_BYTES].decode("utf-8", "ignore")


def robot_message(robot: str, text: str) -> dict[str, Any]:
    """The text message in ``robot``'s own format."""
    if robot == "feishu":
        return {"msg_type": "text", "content": {"text": text}}
    return {"msgtype": "text", "text": {"content": text}}  # DingTalk and WeCom


def robot_refusal(robot: str, body: bytes) -> str | None:
    """Why ``robot``'s 2xx answer ``body`` refuses the message; None when it took it. An answer that is not
    the robot's JSON, or lacks its result code, is a refusal too: only the robot's "ok" is delivery."""
    import json

    try:
        answer = json.loads(body[:http_delivery.REASON_BYTES])
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        return "its answer is not the robot's JSON"
    if robot == "feishu":  # {"code": 0, "msg": "success"}; older robots {"StatusCode": 0, ...}
        code, said = answer.get("code", answer.get("StatusCode")), answer.get("msg", answer.get("StatusMessage"))
    else:  # {"errcode": 0, "errmsg": "ok"}
        code, said = answer.get("errcode"), answer.get("errmsg")
    if code == 0 and not isinstance(code, bool):
        return None
    return f"error code {code}" + (f" ({said})" if isinstance(said, str) and said else "")


def post_webhook(url: str, report: dict[str, Any], *, timeout: float, retry_waits: Sequence[float],
                 sleep: Callable[[float], None], report_path: Path = Path("report.json")) -> AlarmDelivery:
    """POST the report until it is answered 2xx (:func:`store.http_delivery.post_until_taken`). Redirects are
    not followed: requests would turn the POST into a GET on a 302, and the 2xx that GET earns would not
    mean the report arrived. A chat robot (:data:`ROBOTS`) gets the alarm as a text message in its own
    format instead of the report, and has delivered it only when its answer's result code says so."""
    import requests

    robot = robot_of(url)
    payload = report if robot is None else robot_message(robot, alarm_text(report, report_path))

    def send() -> http_delivery.Answer:
        with requests.post(url, json=payload, timeout=timeout, allow_redirects=False) as response:
            if robot is not None and 200 <= response.status_code < 300:
                refusal = robot_refusal(robot, response.content)
                if refusal is not None:
                    raise http_delivery.RefusedInBody(response.status_code, refusal)
            return response.status_code, "", http_delivery.retry_after(response.headers.get("Retry-After"))

    name = public_url(url)
    got = http_delivery.post_until_taken(send, url, timeout=timeout, retry_waits=retry_waits, sleep=sleep,
                                         what=_WHAT, redirect=("a redirect is not followed: give the URL it points to",
                                                               "不跟随重定向：请改用其指向的地址"))
    if got.taken:
        before, before_zh = got.before()
        return AlarmDelivery("webhook", True, got.count,
                             f"alarm delivered: webhook {name} answered {got.status}{before}",
                             f"告警已送达：webhook {name} 返回 {got.status}{before_zh}")
    (last, last_zh), (why, why_zh) = got.tried[-1], got.why_not()
    return AlarmDelivery("webhook", False, got.count, f"alarm NOT delivered: webhook {name} {last} ({why})",
                         f"告警未送达：webhook {name} {last_zh}（{why_zh}）")
