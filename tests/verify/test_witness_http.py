"""``custody witness --url`` against a city served over HTTP on 127.0.0.1: the URL's credentials are sent and
never shown. The city is a simulated instance behind a small server whose answers each test chooses."""

from __future__ import annotations

import base64
import http.server
import socket
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
    says otherwise); POST /api/v1/cosignatures gets ``posts`` in turn, the last one repeating."""

    note: bytes
    log_key: str
    checkpoint: Answer | None = None
    posts: list[Answer] = field(default_factory=lambda: [Answer(200, b'{"size": 1, "cosignatures": []}')])
    requests: list[Request] = field(default_factory=list)
    server: http.server.HTTPServer | None = None

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
                self._answer(city.checkpoint or Answer(200, city.note, "text/plain; charset=utf-8"))
            else:
                self._answer(Answer(404, b'{"error": "not_found", "message": "no such page"}'))

        def do_POST(self) -> None:  # noqa: N802
            if self._record().endswith("/api/v1/cosignatures"):
                self._answer(city.posts[min(len(city.posted()), len(city.posts)) - 1])
            else:
                self._answer(Answer(404, b'{"error": "not_found", "message": "no such page"}'))

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def make_city(make_simulated: Callable[..., Any]) -> Iterator[Callable[..., City]]:
    """Factory: a City in front of a simulated instance (on each database), served until the test ends."""
    from store.ledger import Ledger

    started: list[City] = []
    sim = make_simulated()
    ledger = Ledger(sim.instance)
    note, log_key = ledger.latest_checkpoint().encode(), ledger.log_key()

    def start(**answers: Any) -> City:
        city = City(note, log_key, **answers)
        city.server = http.server.HTTPServer(("127.0.0.1", 0), _handler(city))
        threading.Thread(target=city.server.serve_forever, args=(0.01,), daemon=True).start()
        started.append(city)
        return city

    yield start
    for city in started:
        assert city.server is not None
        city.server.shutdown()
        city.server.server_close()


def _witness(city: City, home: Path, url: str, *args: str) -> Result:
    first = not (home / "witness.json").exists()
    options = ["--log-key", city.log_key, "--name", "province.witness"] if first else []
    return CliRunner().invoke(cli, ["witness", "--url", url, "--home", str(home), *options, "--once", *args],
                              env={"CUSTODY_PASSPHRASE": "province-passphrase"}, catch_exceptions=False)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed on leaving: a connection to it is refused


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
    assert result.exit_code == 1
    assert f"GET http://127.0.0.1:{city.port}/…/checkpoint answered {answer.status}" in result.output
    assert not any(secret in result.output for secret in (*SECRETS, "/secret"))


def test_a_city_that_cannot_be_reached_is_named_without_the_credentials(make_city, tmp_path: Path) -> None:
    city = make_city()
    port = _closed_port()
    result = _witness(city, tmp_path / "w", f"http://province:pa55word@127.0.0.1:{port}/?token=s3cr3t")
    assert result.exit_code == 1
    assert f"cannot reach http://127.0.0.1:{port}/checkpoint: Connection refused" in result.output
    assert not any(secret in result.output for secret in SECRETS)
