"""``custody witness --url`` against a city served over HTTP on 127.0.0.1: the cosignature's hand-back is judged
(exit 3 when the city did not take it, the checkpoint kept all the same), the URL's credentials are sent and never
shown. The city is a simulated instance behind a small server whose answers each test chooses, or the real web
app."""

from __future__ import annotations

import base64
import http.server
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner, Result

from cli.main import cli
from cli.verifycmd import register
from tests.verify.http_stub import closed_port

if "witness" not in cli.commands:  # until cli/main.py registers it
    register(cli)

SECRETS = ("pa55word", "s3cr3t", "token=")


@dataclass
class Answer:
    status: int
    body: bytes = b""
    content_type: str = "application/json"


@dataclass
class Request:
    method: str
    target: str  # path and query, as the server received it
    body: bytes
    headers: dict[str, str]


@dataclass
class City:
    """The city's log server: GET /checkpoint serves the instance's latest checkpoint (unless ``checkpoint``
    says otherwise); POST /api/v1/cosignatures gets ``posts`` in turn, the last one repeating. ``gone``: the
    server stops listening as it serves the checkpoint, so the hand-back finds the connection refused."""

    note: bytes
    log_key: str
    checkpoint: Answer | None = None
    posts: list[Answer] = field(default_factory=lambda: [Answer(200, b'{"size": 1, "cosignatures": []}')])
    gone: bool = False
    requests: list[Request] = field(default_factory=list)
    server: http.server.HTTPServer | None = None
    stopped: bool = False

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.server_port)

    def posted(self) -> list[Request]:
        return [r for r in self.requests if r.method == "POST"]


def _handler(city: City) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self, answer: Answer) -> None:
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        def _record(self) -> str:
            length = int(self.headers.get("Content-Length") or 0)
            city.requests.append(Request(self.command, self.path, self.rfile.read(length), dict(self.headers)))
            return urlsplit(self.path).path

        def do_GET(self) -> None:  # noqa: N802
            if self._record().endswith("/checkpoint"):  # behind a path prefix too
                if city.gone:  # before the answer: closed by the time the witness has it
                    self.server.socket.close()
                    city.stopped = True
                self._answer(city.checkpoint or Answer(200, city.note, "text/plain; charset=utf-8"))
            else:
                self._answer(Answer(404, b'{"error": "not_found", "message": "no such page"}'))

        def do_POST(self) -> None:  # noqa: N802
            if self._record().endswith("/api/v1/cosignatures"):
                self._answer(city.posts.pop(0) if len(city.posts) > 1 else city.posts[0])
            else:
                self._answer(Answer(404, b'{"error": "not_found", "message": "no such page"}'))

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def make_city(simulated: Any) -> Iterator[Callable[..., City]]:
    """Factory: a City in front of the simulated instance (on each database), served until the test ends."""
    from store.ledger import Ledger

    started: list[tuple[City, threading.Thread]] = []
    ledger = Ledger(simulated.instance)
    note, log_key = ledger.latest_checkpoint().encode(), ledger.log_key()

    def start(**answers: Any) -> City:
        city = City(note, log_key, **answers)
        city.server = http.server.HTTPServer(("127.0.0.1", 0), _handler(city))
        city.server.timeout = 0.01
        thread = threading.Thread(target=_serve, args=(city,), daemon=True)
        thread.start()
        started.append((city, thread))
        return city

    yield start
    for city, thread in started:
        city.stopped = True
        thread.join()
        assert city.server is not None
        city.server.server_close()


def _serve(city: City) -> None:
    # one request at a time, looking at ``stopped`` in between: a server whose socket a handler closed is not
    # polled again (serve_forever would)
    assert city.server is not None
    while not city.stopped:
        city.server.handle_request()


def _witness(city: City, home: Path, url: str, *args: str) -> Result:
    return _run_witness(city.log_key, home, url, *args)


def _run_witness(log_key: str, home: Path, url: str, *args: str) -> Result:
    first = not (home / "witness.json").exists()
    options = ["--log-key", log_key, "--name", "province.witness"] if first else []
    return CliRunner().invoke(cli, ["witness", "--url", url, "--home", str(home), *options, "--once", *args],
                              env={"CUSTODY_PASSPHRASE": "province-passphrase"}, catch_exceptions=False)



def test_the_credentials_of_the_url_are_sent_with_each_request(make_city, tmp_path: Path) -> None:
    city = make_city()
    url = f"http://province:pa55word@127.0.0.1:{city.port}/?token=s3cr3t"
    result = _witness(city, tmp_path / "w", url, "--no-post")
    assert result.exit_code == 0, result.output
    [get] = city.requests
    assert get.target == "/checkpoint?token=s3cr3t"  # the endpoint's path before the query, not inside it
    assert get.headers["Authorization"] == "Basic " + base64.b64encode(b"province:pa55word").decode()
    assert not any(secret in result.output for secret in SECRETS)


@pytest.mark.parametrize("answer", [Answer(503, b'{"error": "writer_stopped", "message": "restarting"}'),
                                    Answer(404, b"no such page: /secret/checkpoint?token=s3cr3t", "text/plain")])
def test_a_checkpoint_not_served_is_named_without_the_credentials(make_city, tmp_path: Path,
                                                                  answer: Answer) -> None:
    city = make_city(checkpoint=answer)
    result = _witness(city, tmp_path / "w", f"http://province:pa55word@127.0.0.1:{city.port}/secret?token=s3cr3t")
    assert result.exit_code == 3  # nothing cosigned, nothing found wrong: not the alarm (1)
    assert f"GET http://127.0.0.1:{city.port}/…/checkpoint answered {answer.status}" in result.output
    assert not any(secret in result.output for secret in (*SECRETS, "/secret"))


def test_a_city_that_cannot_be_reached_is_named_without_the_credentials(make_city, tmp_path: Path) -> None:
    city = make_city()
    port = closed_port()
    result = _witness(city, tmp_path / "w", f"http://province:pa55word@127.0.0.1:{port}/?token=s3cr3t")
    assert result.exit_code == 3
    assert f"cannot reach http://127.0.0.1:{port}/checkpoint: Connection refused" in result.output
    assert "nothing was cosigned, the next run tries again" in result.output and "WITNESS ALARM" not in result.output
    assert not any(secret in result.output for secret in SECRETS)


# --- the hand-back of the cosignature ---------------------------------------------------------

@pytest.fixture
def tiny_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three attempts to hand back, without the cron job's 2 s and 8 s."""
    import store.witness_http

    monkeypatch.setattr(store.witness_http, "RETRY_WAITS", (0.01, 0.01))


def _kept(home: Path) -> tuple[int, bytes]:
    """The size and note of the checkpoint the witness holds, after checking that both copies agree."""
    held = (home / "checkpoint").read_bytes()
    size = int(held.split(b"\n")[1])
    assert (home / "checkpoints" / str(size)).read_bytes() == held and b"\n\xe2\x80\x94 province.witness " in held
    return size, held


def test_500_then_200_is_handed_back_on_attempt_2(make_city, tmp_path: Path, tiny_waits: None) -> None:
    city = make_city(posts=[Answer(500, b'{"error": "internal_error", "message": "Something went wrong."}'),
                            Answer(200, b'{"size": 1, "cosignatures": []}')])
    result = _witness(city, tmp_path / "w", f"http://127.0.0.1:{city.port}")
    assert result.exit_code == 0, result.output
    shown = f"POST http://127.0.0.1:{city.port}/api/v1/cosignatures"
    assert result.stdout.endswith(f"; cosignature handed back: {shown} answered 200 on attempt 2 (before: answered "
                                  "500 (reason: Something went wrong.))\n")
    assert "NOT handed back" not in result.output
    assert [r.body for r in city.posted()] == [_kept(tmp_path / "w")[1]] * 2


def test_the_cosigned_checkpoint_is_on_disk_before_it_is_handed_back(make_city, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The held checkpoint was written without a flush to disk: after a power cut it could come back empty or
    half written, and every later round would stop on it."""
    import os

    synced: list[str] = []
    fsync = os.fsync

    def record(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", record)
    city = make_city(posts=[Answer(200, b'{"size": 1, "cosignatures": []}')])
    home = tmp_path / "w"
    result = _witness(city, home, f"http://127.0.0.1:{city.port}")
    assert result.exit_code == 0, result.output
    size = _kept(home)[0]
    flushed = {Path(p).name for p in synced}
    assert any(name.startswith(".checkpoint.") for name in flushed)  # the new copy, flushed before the rename
    assert any(name.startswith(f".{size}.") for name in flushed)
    assert str(home) in synced and str(home / "checkpoints") in synced  # and each folder's entry


def test_a_cosignature_never_taken_exits_3_keeps_the_checkpoint_and_goes_back_next_run(
        make_city, tmp_path: Path, tiny_waits: None) -> None:
    city = make_city(posts=[Answer(500, b"Internal Server Error", "text/plain")])
    home = tmp_path / "w"
    result = _witness(city, home, f"http://127.0.0.1:{city.port}")
    assert result.exit_code == 3, result.output  # not 0 (done), not 1 (the alarm about the log)
    assert len(city.posted()) == 3
    size, held = _kept(home)  # the cosignature happened: it is kept though its delivery failed
    assert city.posted()[-1].body == held
    shown = f"POST http://127.0.0.1:{city.port}/api/v1/cosignatures"
    assert result.stdout.startswith(f"cosigned size {size} (root ")
    assert result.stdout.endswith("; NOT handed back (see below)\n")
    assert (f"见证签名未交回：{shown} 返回 500（原因：Internal Server Error）；共尝试 3 次 / cosignature NOT handed "
            f"back: {shown} answered 500 (reason: Internal Server Error); after 3 attempts") in result.stderr
    next_step = result.stderr.splitlines()[-1]
    assert next_step.startswith(f"已副署的检查点已保存（{home / 'checkpoints' / str(size)}，及 {home / 'checkpoint'}）")
    assert ("the next run cosigns the city's latest checkpoint again and hands that back (handing back twice is "
            "harmless: the city keeps one line per witness key)") in next_step
    assert "WITNESS ALARM" not in result.output and "见证告警" not in result.output

    city.posts = [Answer(200, b'{"size": 1, "cosignatures": []}')]
    again = _witness(city, home, f"http://127.0.0.1:{city.port}")
    assert again.exit_code == 0, again.output
    assert f"cosignature handed back: {shown} answered 200" in again.stdout
    assert _kept(home)[0] == size and city.posted()[-1].body == _kept(home)[1]  # the same checkpoint, cosigned again


def test_a_403_is_one_request_and_its_reason_is_shown(make_city, tmp_path: Path, tiny_waits: None) -> None:
    reason = "cosignature not accepted: no witness key is registered (custody witness-trust KEY): cannot accept " \
             "cosignatures"
    city = make_city(posts=[Answer(403, json.dumps({"error": "forbidden", "message": reason}).encode()),
                            Answer(200)])
    home = tmp_path / "w"
    result = _witness(city, home, f"http://127.0.0.1:{city.port}", "--json")
    assert result.exit_code == 3 and len(city.posted()) == 1
    shown = f"POST http://127.0.0.1:{city.port}/api/v1/cosignatures"
    assert (f"见证签名未交回：{shown} 返回 403（原因：{reason}）；未重试：4xx 应答不会自行改变 / "
            f"cosignature NOT handed back: {shown} answered 403 (reason: {reason}); not retried: a 4xx answer will "
            "not change by itself") in result.stderr.splitlines()
    assert f'the city runs custody witness-trust "$(cat {home / "witness.vkey"})"' in result.stderr
    line = json.loads(result.stdout)  # stdout: the round alone
    assert line["handed_back"] is False and line["attempts"] == 1 and f"(reason: {reason})" in line["posted"]
    assert line["size"] == _kept(home)[0] and "witness-trust" in line["next_step"]


def test_a_city_gone_before_the_hand_back_is_not_handed_back(make_city, tmp_path: Path, tiny_waits: None) -> None:
    city = make_city(gone=True)
    url = f"http://province:pa55word@127.0.0.1:{city.port}/?token=s3cr3t"
    result = _witness(city, tmp_path / "w", url)
    assert result.exit_code == 3, result.output
    assert [r.method for r in city.requests] == ["GET"]  # the checkpoint; the hand-back never got through
    assert (f"cosignature NOT handed back: POST http://127.0.0.1:{city.port}/api/v1/cosignatures cannot be reached: "
            "Connection refused; after 3 attempts") in result.stderr
    _kept(tmp_path / "w")
    assert not any(secret in result.output for secret in SECRETS)


@pytest.mark.parametrize("answer", [
    Answer(500),
    Answer(403, b"no cosignatures from /city/api/v1/cosignatures?token=s3cr3t by province:pa55word", "text/plain"),
])
def test_the_credentials_of_the_url_are_never_shown(make_city, tmp_path: Path, tiny_waits: None,
                                                    answer: Answer) -> None:
    city = make_city(posts=[answer])
    url = f"http://province:pa55word@127.0.0.1:{city.port}/city/?token=s3cr3t"
    result = _witness(city, tmp_path / "w", url, "--json")
    assert result.exit_code == 3, result.output
    post = city.posted()[0]
    assert post.target == "/city/api/v1/cosignatures?token=s3cr3t"
    assert post.headers["Authorization"] == "Basic " + base64.b64encode(b"province:pa55word").decode()
    assert f"POST http://127.0.0.1:{city.port}/…/api/v1/cosignatures answered {answer.status}" in result.stderr
    assert not any(secret in result.output for secret in (*SECRETS, "/city"))


def test_without_once_a_round_not_handed_back_is_reported_and_the_witness_goes_on(
        make_city, tmp_path: Path, tiny_waits: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from cli import verifycmd

    class NextRound(Exception):
        pass

    def sleep(seconds: float) -> None:
        raise NextRound

    monkeypatch.setattr(verifycmd.time, "sleep", sleep)
    city = make_city(posts=[Answer(503)])
    result = CliRunner().invoke(cli, ["witness", "--url", f"http://127.0.0.1:{city.port}", "--home",
                                      str(tmp_path / "w"), "--log-key", city.log_key, "--interval", "5"],
                                env={"CUSTODY_PASSPHRASE": "province-passphrase"})
    assert isinstance(result.exception, NextRound)  # it got to the wait before the next round: it did not exit
    assert len(city.posted()) == 3 and "cosignature NOT handed back" in result.stderr


def test_without_once_an_unreachable_city_is_reported_and_the_witness_goes_on(
        make_city, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A network outage at the city ended the witness's loop with exit 1, the alarm's code."""
    from cli import verifycmd

    class NextRound(Exception):
        pass

    def sleep(seconds: float) -> None:
        raise NextRound

    monkeypatch.setattr(verifycmd.time, "sleep", sleep)
    city = make_city()
    result = CliRunner().invoke(cli, ["witness", "--url", f"http://127.0.0.1:{closed_port()}", "--home",
                                      str(tmp_path / "w"), "--log-key", city.log_key, "--interval", "5"],
                                env={"CUSTODY_PASSPHRASE": "province-passphrase"})
    assert isinstance(result.exception, NextRound)  # waiting for the next round: it did not exit
    assert "nothing was cosigned, the next round tries again" in result.stderr
    assert "WITNESS ALARM" not in result.output


def test_the_real_city_refuses_an_unregistered_witness_with_its_reason_then_takes_it(
        simulated: Any, tmp_path: Path, tiny_waits: None) -> None:
    from werkzeug.serving import make_server

    from store.ledger import Ledger
    from web import create_app

    app = create_app({"INSTANCE": simulated.instance, "SESSION_COOKIE_SECURE": False})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    home, url = tmp_path / "w", f"http://127.0.0.1:{server.server_port}"
    try:
        first = _run_witness(Ledger(simulated.instance).log_key(), home, url)
        assert first.exit_code == 3, first.output
        assert ("answered 403 (reason: cosignature not accepted: no witness key is registered (custody "
                "witness-trust KEY): cannot accept cosignatures); not retried") in first.stderr
        vkey = (home / "witness.vkey").read_text(encoding="utf-8").strip()
        trusted = CliRunner().invoke(cli, ["--home", str(simulated.instance.home), "witness-trust", vkey],
                                     env={"CUSTODY_DATABASE_URL": simulated.instance.db.url})
        assert trusted.exit_code == 0, trusted.output
        second = _run_witness("", home, url)
        assert second.exit_code == 0, second.output
        assert f"cosignature handed back: POST {url}/api/v1/cosignatures answered 200" in second.stdout
    finally:
        server.shutdown()
    size = _kept(home)[0]
    assert "— province.witness " in Ledger(simulated.instance).checkpoint(size)
