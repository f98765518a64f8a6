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

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
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
                self.send_header("Content-Length", "0")
                self.end_headers()

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

    def start(statuses: list[int]) -> _Hook:
        hook = _Hook(statuses)
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
