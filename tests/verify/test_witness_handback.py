"""The witness's hand-back of its cosignature is judged: handed back only on a 2xx answer, retried when waiting
can help, the server's reason shown, the URL's credentials never. A real HTTP server on 127.0.0.1 answers."""

from __future__ import annotations

import base64
import http.server
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from store.witness_http import RETRY_WAITS, HandBack, hand_back
from tests.verify.http_stub import closed_port, serve_in_background, stop

NOTE = "test.exam/zk2017\n577\nq83vS3mv...=\n\n— test.exam/zk2017 abcd\n— province.witness efgh\n".encode()
TINY = (0.01, 0.01)  # three attempts, without the cron job's 2 s and 8 s
REGISTERED = (b'{"error": "forbidden", "message": "cosignature not accepted: no witness key is registered '
              b'(custody witness-trust KEY): cannot accept cosignatures"}')


@dataclass
class Answer:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    delay: float = 0.0
    retry_after: str | None = None  # the Retry-After header, if any


class _City:
    """An HTTP server answering POSTs with the given answers in turn (the last one repeats)."""

    def __init__(self, answers: list[Answer]) -> None:
        self.answers = answers
        self.requests: list[tuple[str, bytes, dict[str, str]]] = []  # (path with query, body, headers)
        city = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                city.requests.append((self.path, body, dict(self.headers)))
                answer = city.answers[min(len(city.requests), len(city.answers)) - 1]
                city.released.wait(answer.delay)
                try:
                    self.send_response(answer.status)
                    if 300 <= answer.status < 400:
                        self.send_header("Location", "/elsewhere")
                    self.send_header("Content-Type", answer.content_type)
                    if answer.retry_after is not None:
                        self.send_header("Retry-After", answer.retry_after)
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                except OSError:  # the witness gave up waiting and went: nobody to answer
                    pass

            def do_GET(self) -> None:  # noqa: N802 - where a followed redirect would land
                city.requests.append((self.path, b"", dict(self.headers)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.released = threading.Event()  # set at the end: a delayed answer stops waiting
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # joined on server_close: a handler still running would write into the next test's captured output
        self.server.daemon_threads = False
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.shown = f"POST {self.url}/api/v1/cosignatures"  # as the output names it


@pytest.fixture
def city() -> Iterator[Callable[..., _City]]:
    started: list[_City] = []

    def start(*answers: Answer) -> _City:
        server = _City(list(answers))
        serve_in_background(server.server)
        started.append(server)
        return server

    yield start
    for server in started:
        server.released.set()
        stop(server.server)



def _hand_back(url: str, waits: tuple[float, ...] = TINY, timeout: float = 5) -> HandBack:
    return hand_back(url, NOTE, timeout=timeout, retry_waits=waits)


def test_500_then_200_is_handed_back_on_the_second_attempt(city) -> None:
    server = city(Answer(500, b'{"error": "internal_error", "message": "Something went wrong on the server."}'),
                  Answer(200, b'{"size": 577, "cosignatures": []}'))
    handed = _hand_back(server.url)
    assert handed.handed_back and handed.attempts == 2 and handed.status == 200
    assert [(path, body) for path, body, _ in server.requests] == [("/api/v1/cosignatures", NOTE)] * 2
    assert server.requests[0][2]["Content-Type"] == "text/plain; charset=utf-8"
    assert handed.line() == (
        f"见证签名已交回：{server.shown} 返回 200（第 2 次尝试；此前：返回 500（原因：Something went wrong on the "
        f"server.）） / cosignature handed back: {server.shown} answered 200 on attempt 2 (before: answered 500 "
        "(reason: Something went wrong on the server.))")


def test_always_500_is_not_handed_back_after_every_attempt(city) -> None:
    server = city(Answer(500, b"Internal Server Error", "text/plain"))
    handed = _hand_back(server.url)
    assert not handed.handed_back and handed.attempts == 3 and len(server.requests) == 3 and handed.may_pass
    assert handed.line() == (
        f"见证签名未交回：{server.shown} 返回 500（原因：Internal Server Error）；共尝试 3 次 / "
        f"cosignature NOT handed back: {server.shown} answered 500 (reason: Internal Server Error); after 3 attempts")


def test_429_and_503_are_retried(city) -> None:
    server = city(Answer(429), Answer(503), Answer(204))
    handed = _hand_back(server.url)
    assert (handed.handed_back, handed.attempts) == (True, 3)
    assert "(before: answered 429; answered 503)" in handed.message


def test_a_retry_after_within_a_minute_is_waited_for_and_a_longer_one_ends_the_round(city) -> None:
    server = city(Answer(503, retry_after="20"), Answer(429, retry_after="1"), Answer(200))
    waited: list[float] = []
    handed = hand_back(server.url, NOTE, timeout=5, retry_waits=(2.0, 8.0), sleep=waited.append)
    assert handed.handed_back and handed.attempts == 3 and waited == [20.0, 8.0]  # never less than its own wait
    server = city(Answer(503, retry_after="3600"), Answer(200))
    handed = hand_back(server.url, NOTE, timeout=5, retry_waits=(2.0, 8.0), sleep=waited.append)
    assert not handed.handed_back and handed.attempts == 1 and len(server.requests) == 1 and waited == [20.0, 8.0]
    assert handed.message.endswith("answered 503; not retried: it asked to be tried again in 3600 s (Retry-After), "
                                   "more than 60 s")
    assert handed.may_pass  # the city is busy, not refusing this witness: the loop goes on


def test_a_403_is_one_request_and_its_reason_is_shown(city) -> None:
    server = city(Answer(403, REGISTERED), Answer(200))
    handed = _hand_back(server.url)
    assert not handed.handed_back and handed.attempts == 1 and len(server.requests) == 1 and not handed.may_pass
    reason = "cosignature not accepted: no witness key is registered (custody witness-trust KEY): cannot accept " \
             "cosignatures"
    assert handed.line() == (
        f"见证签名未交回：{server.shown} 返回 403（原因：{reason}）；未重试：4xx 应答不会自行改变 / "
        f"cosignature NOT handed back: {server.shown} answered 403 (reason: {reason}); not retried: a 4xx answer "
        "will not change by itself")


@pytest.mark.parametrize("status", [400, 401, 404, 409, 413])
def test_another_4xx_is_not_retried(city, status: int) -> None:
    server = city(Answer(status), Answer(200))
    handed = _hand_back(server.url)
    assert not handed.handed_back and handed.attempts == 1 and len(server.requests) == 1
    assert handed.message == f"cosignature NOT handed back: {server.shown} answered {status}; not retried: a 4xx " \
                             "answer will not change by itself"  # no body, no reason


@pytest.mark.parametrize(("body", "content_type", "reason"), [
    (b'{"error": "witness key not registered"}', "application/json", "witness key not registered"),
    (b'{"error": {"code": 7, "message": "CSRF token missing"}}', "application/json", "CSRF token missing"),
    (b'{"error": "forbidden", "message": "  "}', "application/json", "forbidden"),
    (b"<html>\r\n<head><title>403 Forbidden</title></head>\r\n<body><center><h1>403 Forbidden</h1></center>"
     b"<hr><center>nginx</center></body></html>", "text/html", "403 Forbidden"),
    (b"\n\n  refused by the gateway \n second line", "text/plain", "refused by the gateway"),
    (b"bad\x1b[31m red\x1b[0m\x07 bell\ttab \xe2\x80\xae reversed \x00 nul", "text/plain",
     "bad red bell tab reversed nul"),
    ('{"message": "见证密钥未登记\\n请联系市考试院"}'.encode(), "application/json", "见证密钥未登记 请联系市考试院"),
    (b'["not", "an", "object"]', "application/json", '["not", "an", "object"]'),
])
def test_the_reason_is_read_from_the_body_on_one_clean_line(city, body: bytes, content_type: str,
                                                            reason: str) -> None:
    server = city(Answer(403, body, content_type))
    handed = _hand_back(server.url)
    assert f"answered 403 (reason: {reason}); not retried" in handed.message
    assert f"返回 403（原因：{reason}）" in handed.message_zh


def test_a_long_reason_is_cut_to_200_characters(city) -> None:
    server = city(Answer(403, b'{"message": "' + b"x" * 5000 + b'"}'))
    reason = _hand_back(server.url).message.split("(reason: ", 1)[1].split("); not retried")[0]
    assert reason == "x" * 199 + "…"


def test_a_redirect_is_not_followed_and_not_handed_back(city) -> None:
    # followed, requests would GET the Location after a 302 and call its 200 a success
    server = city(Answer(302))
    handed = _hand_back(server.url)
    assert not handed.handed_back and handed.attempts == 1 and [path for path, _, _ in server.requests] == [
        "/api/v1/cosignatures"]
    assert "answered 302; a redirect is not followed: give --url the address it points to" in handed.message


def test_a_refused_connection_is_not_handed_back_after_every_attempt() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    handed = _hand_back(url)
    assert not handed.handed_back and handed.attempts == 3 and handed.status is None and handed.may_pass
    assert handed.line() == (
        f"见证签名未交回：POST {url}/api/v1/cosignatures 无法连接：Connection refused；共尝试 3 次 / "
        f"cosignature NOT handed back: POST {url}/api/v1/cosignatures cannot be reached: Connection refused; "
        "after 3 attempts")


def test_no_answer_in_time_is_retried_and_not_handed_back(city) -> None:
    server = city(Answer(200, delay=1.0))
    handed = _hand_back(server.url, timeout=0.2)
    assert not handed.handed_back and handed.attempts == 3 and handed.may_pass
    assert handed.message.endswith("gave no answer within 0.2 s; after 3 attempts")


def test_the_waits_between_attempts_are_2_then_8_seconds_by_default(city) -> None:
    server = city(Answer(503))
    waited: list[float] = []
    handed = hand_back(server.url, NOTE, timeout=5, sleep=waited.append)
    assert waited == [2.0, 8.0] == list(RETRY_WAITS) and handed.attempts == 3 and not handed.handed_back


@pytest.mark.parametrize("answers", [
    [Answer(500)],
    [Answer(403, b"refused /prefix/api/v1/cosignatures?token=s3cr3t-t0ken&x=1 for province:pa55word "
                 b"(Basic " + base64.b64encode(b"province:pa55word") + b")", "text/plain")],
    [Answer(503), Answer(200)],
])
def test_the_credentials_in_the_url_are_sent_and_never_shown(city, answers: list[Answer]) -> None:
    server = city(*answers)
    url = server.url.replace("http://", "http://province:pa55word@") + "/prefix/?token=s3cr3t-t0ken&x=1#frag"
    handed = _hand_back(url)
    target, _, headers = server.requests[0]
    assert target == "/prefix/api/v1/cosignatures?token=s3cr3t-t0ken&x=1"  # the token before, not after, the path
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"province:pa55word").decode()
    for secret in ("s3cr3t", "t0ken", "pa55word", "prefix", "frag", "x=1", base64.b64encode(b"province:pa55word")
                   .decode()):
        assert secret not in handed.line()
    assert f"POST {server.url}/…/api/v1/cosignatures " in handed.message
    assert handed.handed_back == (answers[-1].status == 200)


def test_the_credentials_are_not_shown_when_the_city_cannot_be_reached() -> None:
    handed = _hand_back(f"http://province:pa55word@127.0.0.1:{closed_port()}/prefix?token=s3cr3t", waits=())
    assert not handed.handed_back and "Connection refused" in handed.message
    assert not any(secret in handed.line() for secret in ("s3cr3t", "pa55word", "prefix"))
