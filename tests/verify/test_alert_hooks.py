"""The alarm of a failed verification is judged: delivered only on exit 0 or a 2xx answer, the webhook retried
when waiting can help, and its URL's token never shown. A real HTTP server on 127.0.0.1 answers."""

from __future__ import annotations

import http.server
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from store.alert_hooks import RETRY_WAITS, notify_failure, public_url, undelivered_line
from tests.verify.http_stub import closed_port, serve_in_background, stop

REPORT = {"ok": False, "summary": "FAILED: 1 problem(s) found.", "finding_counts": {"leaf_hash_mismatch": 1}}
TINY = (0.01, 0.01)  # three attempts, without the nightly job's 2 s and 8 s


class _Hook:
    """An HTTP server answering POSTs with the given statuses in turn (the last one repeats)."""

    def __init__(self, statuses: list[int], body: bytes = b"", retry_after: str | None = None) -> None:
        self.statuses = statuses
        self.body = body  # what each answer carries (a chat robot's JSON)
        self.retry_after = retry_after  # each answer's Retry-After header, if any
        self.requests: list[tuple[str, dict[str, object]]] = []  # (path with query, JSON body)
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                hook.requests.append((self.path, body))
                status = hook.statuses[min(len(hook.requests), len(hook.statuses)) - 1]
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/elsewhere")
                if hook.retry_after is not None:
                    self.send_header("Retry-After", hook.retry_after)
                self.send_header("Content-Length", str(len(hook.body)))
                self.end_headers()
                self.wfile.write(hook.body)

            def do_GET(self) -> None:  # noqa: N802 - where a followed redirect would land
                hook.requests.append((self.path, {}))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.shown = f"http://127.0.0.1:{self.server.server_port}"  # as the output names it: no path


@pytest.fixture
def webhook() -> Iterator[Callable[[list[int]], _Hook]]:
    started: list[_Hook] = []

    def start(statuses: list[int], body: bytes = b"", retry_after: str | None = None) -> _Hook:
        hook = _Hook(statuses, body, retry_after)
        serve_in_background(hook.server)
        started.append(hook)
        return hook

    yield start
    for hook in started:
        stop(hook.server)


def _post(url: str, waits: tuple[float, ...] = TINY) -> tuple[bool, int, str]:
    (delivery,) = notify_failure(Path("report.json"), REPORT, webhook=url, timeout=5, retry_waits=waits)
    return delivery.delivered, delivery.attempts, delivery.line()


def test_a_webhook_answering_500_then_200_is_delivered_on_the_second_attempt(webhook) -> None:
    hook = webhook([500, 200])
    delivered, attempts, line = _post(hook.url)
    assert delivered and attempts == 2 and len(hook.requests) == 2
    assert hook.requests[-1][1] == REPORT
    assert line == (f"告警已送达：webhook {hook.shown} 返回 200（第 2 次尝试；此前：返回 500） / "
                    f"alarm delivered: webhook {hook.shown} answered 200 on attempt 2 (before: answered 500)")


def test_a_webhook_always_answering_500_is_not_delivered_after_every_attempt(webhook) -> None:
    hook = webhook([500])
    delivered, attempts, line = _post(hook.url)
    assert not delivered and attempts == 3 and len(hook.requests) == 3
    assert line == (f"告警未送达：webhook {hook.shown} 返回 500（共尝试 3 次） / "
                    f"alarm NOT delivered: webhook {hook.shown} answered 500 (after 3 attempts)")


def test_429_is_retried_like_a_5xx(webhook) -> None:
    hook = webhook([429, 503, 204])
    assert _post(hook.url)[:2] == (True, 3)


@pytest.mark.parametrize("status", [404, 401, 400])
def test_a_4xx_answer_is_not_retried(webhook, status: int) -> None:
    hook = webhook([status, 200])
    delivered, attempts, line = _post(hook.url)
    assert not delivered and attempts == 1 and len(hook.requests) == 1
    assert f"alarm NOT delivered: webhook {hook.shown} answered {status} (not retried" in line
    assert line.startswith(f"告警未送达：webhook {hook.shown} 返回 {status}（未重试")


def test_a_redirect_is_not_followed_and_not_delivered(webhook) -> None:
    # followed, requests would GET the Location after a 302 and call its 200 a success: the report never arrived
    hook = webhook([302])
    delivered, attempts, line = _post(hook.url)
    assert not delivered and attempts == 1 and [path for path, _ in hook.requests] == ["/hook"]
    assert "answered 302 (a redirect is not followed" in line



def test_a_closed_port_is_not_delivered_after_every_attempt() -> None:
    shown = f"http://127.0.0.1:{closed_port()}"
    delivered, attempts, line = _post(shown + "/hook")
    assert not delivered and attempts == 3
    assert line == (f"告警未送达：webhook {shown} 无法连接：Connection refused（共尝试 3 次） / "
                    f"alarm NOT delivered: webhook {shown} cannot be reached: Connection refused (after 3 attempts)")


def test_the_waits_between_attempts_are_2_then_8_seconds_by_default(webhook) -> None:
    hook = webhook([500])
    waited: list[float] = []
    (delivery,) = notify_failure(Path("r.json"), REPORT, webhook=hook.url, timeout=5, sleep=waited.append)
    assert waited == [2.0, 8.0] == list(RETRY_WAITS) and delivery.attempts == 3 and not delivery.delivered


def test_a_retry_after_is_waited_for_up_to_a_minute(webhook) -> None:
    # a rate-limited webhook said when to come back; the retries 2 s and 8 s later came too early for it
    hook = webhook([429, 429, 200], retry_after="30")
    waited: list[float] = []
    (delivery,) = notify_failure(Path("r.json"), REPORT, webhook=hook.url, timeout=5, sleep=waited.append)
    assert delivery.delivered and delivery.attempts == 3 and waited == [30.0, 30.0]


def test_a_retry_after_longer_than_a_minute_is_not_waited_for(webhook) -> None:
    past = "Wed, 21 Oct 2015 07:28:00 GMT"  # an HTTP date already gone: no wait beyond the usual
    hook = webhook([503, 200], retry_after=past)
    waited: list[float] = []
    (delivery,) = notify_failure(Path("r.json"), REPORT, webhook=hook.url, timeout=5, sleep=waited.append)
    assert delivery.delivered and waited == [2.0]
    hook = webhook([503], retry_after="86400")
    (delivery,) = notify_failure(Path("r.json"), REPORT, webhook=hook.url, timeout=5, sleep=waited.append)
    assert not delivery.delivered and delivery.attempts == 1 and waited == [2.0]
    assert delivery.line().endswith(f"alarm NOT delivered: webhook {hook.shown} answered 503 (not retried: it asked "
                                    "to be tried again in 86400 s (Retry-After), more than 60 s)")
    assert "未重试：对方要求 86400 秒后再试（Retry-After），超过 60 秒" in delivery.line()


def test_retry_after_reads_seconds_and_http_dates() -> None:
    from datetime import UTC, datetime

    from store.http_delivery import retry_after

    now = datetime(2026, 12, 1, 8, 0, 0, tzinfo=UTC)
    assert retry_after("120", now) == 120.0 and retry_after(" 0 ", now) == 0.0
    assert retry_after("Tue, 01 Dec 2026 08:00:45 GMT", now) == 45.0
    assert retry_after("Tue, 01 Dec 2026 07:00:00 GMT", now) == 0.0  # already past
    for junk in (None, "", "-5", "1.5", "soon", "٣"):  # "٣": a digit, but not ASCII
        assert retry_after(junk, now) is None, junk


@pytest.mark.parametrize("statuses", [[500], [404], [500, 200]])
def test_the_token_in_the_webhook_url_is_never_shown(webhook, statuses: list[int]) -> None:
    hook = webhook(statuses)
    secret_url = hook.url.replace("http://", "http://alerts:pa55word@") + "?token=s3cr3t-t0ken&x=1#frag"
    delivered, _, line = _post(secret_url)
    assert hook.requests[0][0] == "/hook?token=s3cr3t-t0ken&x=1"  # the server got the token
    for secret in ("s3cr3t", "token", "pa55word", "alerts", "frag", "x=1"):
        assert secret not in line
    assert f"webhook {hook.shown} " in line and delivered == (statuses[-1] == 200)


def test_the_token_is_not_shown_when_the_connection_fails() -> None:
    url = f"http://user:pa55word@127.0.0.1:{closed_port()}/hook?token=s3cr3t"
    _, _, line = _post(url, waits=())
    assert "s3cr3t" not in line and "pa55word" not in line and "/hook" not in line


def test_a_webhook_url_that_is_not_a_url_is_not_delivered_and_not_shown() -> None:
    delivered, attempts, line = _post("hooks.example.org/alert?token=s3cr3t")
    assert not delivered and attempts == 1 and "s3cr3t" not in line and "not a valid http(s) URL" in line


def test_public_url_keeps_scheme_host_and_port_only() -> None:
    # a token may be in the query (DingTalk, WeCom), the path (Slack, Teams) or the user:password part
    assert public_url("https://u:p@hooks.example.org:8443/a/b?token=t#f") == "https://hooks.example.org:8443"
    assert public_url("https://hooks.slack.com/services/T000/B000/s3cr3t") == "https://hooks.slack.com"
    assert public_url("http://[::1]:9/x?t=1") == "http://[::1]:9"
    assert public_url("https://example.org") == "https://example.org"
    assert "not a valid" in public_url("http://example.org:notaport/x")


def test_a_token_in_the_path_is_not_shown_when_the_hook_cannot_be_reached() -> None:
    delivered, attempts, line = _post(f"http://127.0.0.1:{closed_port()}/services/T000/B000/s3cr3tpath")
    assert not delivered and attempts == 3 and "s3cr3tpath" not in line


# --- chat robots: DingTalk, WeCom, Feishu ----------------------------------------------------

FAILED = {**REPORT, "origin": "nc.exam/zk2017", "summary_zh": "核验失败：发现 1 处问题。",
          "findings": [{"code": "leaf_hash_mismatch", "where": "leaf 123", "message": "leaf 123 was rewritten",
                        "message_zh": "第 123 片叶子被改写"}]}


def _robot(monkeypatch, robot: str) -> None:
    from store import alert_hooks

    monkeypatch.setitem(alert_hooks.ROBOTS, "127.0.0.1", robot)  # the stub stands in for the robot's host


@pytest.mark.parametrize(("robot", "answer"), [
    ("dingtalk", {"errcode": 310000, "errmsg": "keywords not in content"}),
    ("wecom", {"errcode": 93000, "errmsg": "invalid webhook url"}),
    ("feishu", {"code": 19021, "msg": "sign match fail or timestamp is not within one hour"}),
])
def test_a_chat_robot_answering_200_with_an_error_code_has_not_delivered_the_alarm(
        webhook, monkeypatch, robot: str, answer: dict[str, object]) -> None:
    # These robots answer 200 whether or not they took the message: a 200 alone was called delivered.
    _robot(monkeypatch, robot)
    hook = webhook([200], json.dumps(answer).encode())
    (delivery,) = notify_failure(Path("/var/custody/r.json"), FAILED, webhook=hook.url + "?access_token=s3cr3t",
                                 timeout=5, retry_waits=TINY)
    code, said = list(answer.values())
    assert not delivery.delivered and delivery.attempts == 1 and len(hook.requests) == 1
    assert delivery.line() == (
        f"告警未送达：webhook {hook.shown} 返回 200，但拒收消息：error code {code} ({said})"
        "（未重试：等待不会改变该拒收） / "
        f"alarm NOT delivered: webhook {hook.shown} answered 200 but refused the message: error code {code} ({said}) "
        "(not retried: the refusal will not change by waiting)")
    assert "s3cr3t" not in delivery.line()


@pytest.mark.parametrize(("robot", "answer", "message"), [
    ("dingtalk", {"errcode": 0, "errmsg": "ok"}, lambda text: {"msgtype": "text", "text": {"content": text}}),
    ("wecom", {"errcode": 0, "errmsg": "ok"}, lambda text: {"msgtype": "text", "text": {"content": text}}),
    ("feishu", {"code": 0, "msg": "success", "data": {}}, lambda text: {"msg_type": "text", "content": {"text": text}}),
    ("feishu", {"StatusCode": 0, "StatusMessage": "success"},
     lambda text: {"msg_type": "text", "content": {"text": text}}),
])
def test_a_chat_robot_gets_a_text_message_in_its_own_format_and_its_ok_is_delivery(
        webhook, monkeypatch, robot: str, answer: dict[str, object], message: Callable[[str], object]) -> None:
    _robot(monkeypatch, robot)
    hook = webhook([200], json.dumps(answer).encode())
    (delivery,) = notify_failure(Path("/var/custody/r.json"), FAILED, webhook=hook.url, timeout=5, retry_waits=TINY)
    assert delivery.delivered and delivery.attempts == 1
    text = ("【custody】日志核验失败 / log verification FAILED: nc.exam/zk2017\n"
            "核验失败：发现 1 处问题。 FAILED: 1 problem(s) found.\n"
            "问题 / findings: leaf_hash_mismatch ×1\n"
            "✗ leaf_hash_mismatch @ leaf 123: 第 123 片叶子被改写\n"
            "报告 / report: /var/custody/r.json")
    assert hook.requests == [("/hook", message(text))]


@pytest.mark.parametrize("body", [b"", b"<html>ok</html>", b'{"errmsg": "ok"}', b'{"errcode": "0"}', b"[0]"])
def test_a_chat_robot_answer_without_its_ok_code_is_not_delivery(webhook, monkeypatch, body: bytes) -> None:
    _robot(monkeypatch, "dingtalk")
    hook = webhook([200], body)
    delivered, attempts, line = _post(hook.url)
    assert not delivered and attempts == 1 and "refused the message" in line


def test_a_chat_robots_5xx_is_still_retried(webhook, monkeypatch) -> None:
    _robot(monkeypatch, "wecom")
    hook = webhook([502, 200], b'{"errcode": 0, "errmsg": "ok"}')
    assert _post(hook.url)[:2] == (True, 2)


def test_the_robots_message_keeps_within_wecoms_2048_bytes() -> None:
    from store.alert_hooks import ROBOT_TEXT_BYTES, alarm_text

    many = {**FAILED, "finding_counts": {f"code_{n}": n for n in range(40)},
            "findings": [{"code": "x", "where": f"leaf {n}", "message_zh": "很长的说明" * 60} for n in range(5)]}
    text = alarm_text(many, Path("/r.json"))
    assert len(text.encode()) <= ROBOT_TEXT_BYTES and text.startswith("【custody】日志核验失败")
    assert text.endswith("\n报告 / report: /r.json") and text.count("✗ x @ leaf") == 1  # one long finding fits
    assert ROBOT_TEXT_BYTES <= 2048


def test_only_the_robots_hosts_are_robots() -> None:
    from store.alert_hooks import robot_of

    assert robot_of("https://oapi.dingtalk.com/robot/send?access_token=t") == "dingtalk"
    assert robot_of("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k") == "wecom"
    assert robot_of("https://open.feishu.cn/open-apis/bot/v2/hook/abc") == "feishu"
    assert robot_of("https://alerts.example.org/oapi.dingtalk.com") is None
    assert robot_of("https://oapi.dingtalk.com.evil.example/robot/send") is None
    assert robot_of("http://[::1") is None


def _script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "alert.py"
    path.write_text(body, encoding="utf-8")
    return f"{sys.executable} {path}"


def test_a_command_exiting_3_is_not_delivered(tmp_path: Path) -> None:
    command = _script(tmp_path, "import sys\nprint('smtp: relay refused', file=sys.stderr)\nsys.exit(3)\n")
    (delivery,) = notify_failure(tmp_path / "r.json", REPORT, command=command)
    assert not delivery.delivered
    assert delivery.line() == (f"告警未送达：告警命令 {sys.executable} 退出码 3（其输出：smtp: relay refused） / "
                               f"alarm NOT delivered: alert command {sys.executable} exited 3 "
                               "(it said: smtp: relay refused)")


def test_a_command_exiting_0_is_delivered_with_the_report_path(tmp_path: Path) -> None:
    command = _script(tmp_path, "import sys, pathlib\npathlib.Path(sys.argv[1] + '.seen').touch()\n")
    (delivery,) = notify_failure(tmp_path / "r.json", REPORT, command=command)
    assert delivery.delivered and (tmp_path / "r.json.seen").exists()
    assert delivery.line().startswith("告警已送达：告警命令 ") and "alarm delivered: alert command" in delivery.line()


def test_a_command_not_found_timing_out_or_blank_is_not_delivered(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-program"
    slow = _script(tmp_path, "import time\ntime.sleep(30)\n")
    lines = [d.line() for d in notify_failure(tmp_path / "r.json", REPORT, command=f"{missing} --token s3cr3t")]
    lines += [d.line() for d in notify_failure(tmp_path / "r.json", REPORT, command=slow, timeout=0.3)]
    lines += [d.line() for d in notify_failure(tmp_path / "r.json", REPORT, command="   ")]
    lines += [d.line() for d in notify_failure(tmp_path / "r.json", REPORT, command="notify 'unclosed")]
    assert lines[0].endswith(f"alarm NOT delivered: alert command {missing} not found") and "s3cr3t" not in lines[0]
    assert "did not finish within 0.3 s" in lines[1]
    assert lines[2].endswith("alarm NOT delivered: the alert command is blank")
    assert "alarm NOT delivered: the alert command cannot be split into words" in lines[3]
    assert all(line.startswith("告警未送达：") for line in lines)


def test_both_hooks_are_judged_and_the_closing_line_counts_the_failures(tmp_path: Path, webhook) -> None:
    hook = webhook([204])
    command = _script(tmp_path, "raise SystemExit(3)\n")
    deliveries = notify_failure(tmp_path / "r.json", REPORT, command=command, webhook=hook.url, retry_waits=TINY)
    assert [(d.hook, d.delivered) for d in deliveries] == [("command", False), ("webhook", True)]
    assert undelivered_line(deliveries) == (
        "告警未送达：2 个告警通道中有 1 个失败（见上），核验失败可能无人知晓 / "
        "alarm NOT delivered: 1 of 2 alert hook(s) failed (see above); nobody may know that verification failed")
    assert undelivered_line(deliveries[1:]) is None
