"""The station's side of the HTTP API (docs/api.md): signed requests over a pluggable transport.

:class:`HttpTransport` talks HTTP with ``requests``; tests may pass any object
with the same ``request`` method (e.g. one wrapping Flask's test client).
Every request to a station endpoint is signed with the station key
(:func:`web.station_auth.sign_request`'s headers, rebuilt here so the station
needs no server code). A network failure is :class:`TransportError`; an HTTP
error is a :class:`Response` with its status, for the caller to judge.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import quote

from custody.labels import Signer

SCHEME = "custody-request/v1"


class TransportError(Exception):
    """The server could not be reached (refused, reset, timed out)."""


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body)

    def error_message(self) -> str:
        """The server's message for an error response (JSON ``message``), or the start of the body."""
        try:
            data = self.json()
        except ValueError:
            return self.body[:200].decode("utf-8", "replace")
        if isinstance(data, dict) and isinstance(data.get("message"), str):
            return f"{data.get('error', 'error')}: {data['message']}"
        return self.body[:200].decode("utf-8", "replace")


class Transport(Protocol):
    def request(self, method: str, path: str, body: bytes, headers: Mapping[str, str]) -> Response: ...


class HttpTransport:
    """HTTP(S) with ``requests``: connect timeout 3 s, read timeout 30 s by default."""

    def __init__(self, base_url: str, *, timeout: tuple[float, float] = (3.05, 30.0)):
        import requests

        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._requests = requests
        self._session = requests.Session()

    def request(self, method: str, path: str, body: bytes, headers: Mapping[str, str]) -> Response:
        try:
            r = self._session.request(method, self.base_url + path, data=body or None, headers=dict(headers),
                                      timeout=self.timeout, allow_redirects=False)
        except self._requests.RequestException as exc:
            raise TransportError(f"cannot reach {self.base_url}: {type(exc).__name__}: {exc}") from None
        return Response(r.status_code, r.content, dict(r.headers))

    def close(self) -> None:
        self._session.close()


def request_message(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """The text a station signs (docs/api.md, "Signed station requests")."""
    return "\n".join([SCHEME, method.upper(), path, timestamp, nonce, hashlib.sha256(body).hexdigest()]).encode()


def signed_headers(method: str, path: str, body: bytes, *, station: str, signer: Signer, now: datetime,
                   nonce: str | None = None) -> dict[str, str]:
    timestamp = str(int(now.timestamp()))
    nonce = nonce or secrets.token_urlsafe(18)
    signature = signer.sign(request_message(method, path, timestamp, nonce, body))
    return {"X-Custody-Station": station, "X-Custody-Timestamp": timestamp, "X-Custody-Nonce": nonce,
            "X-Custody-Signature": base64.b64encode(signature).decode("ascii"), "X-Custody-Key": signer.kid.hex()}


class StationClient:
    """The API calls a station makes."""

    def __init__(self, transport: Transport, code: str, signer: Signer | None, clock: Callable[[], datetime]):
        self.transport = transport
        self.code = code
        self.signer = signer
        self.clock = clock

    def _signed(self, method: str, path: str, body: bytes = b"") -> Response:
        if self.signer is None:
            raise ValueError("this client has no station key to sign with")
        headers = signed_headers(method, path, body, station=self.code, signer=self.signer, now=self.clock())
        if body:
            headers["Content-Type"] = "application/json"
        return self.transport.request(method, path, body, headers)

    def post_events(self, submissions: list[dict[str, Any]]) -> Response:
        body = json.dumps({"events": submissions}, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return self._signed("POST", "/api/v1/events", body)

    def post_refusals(self, reports: list[dict[str, Any]]) -> Response:
        """The scan-refusal report (``POST /api/v1/refusals``; an older server without it answers 404)."""
        body = json.dumps({"refusals": reports}, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return self._signed("POST", "/api/v1/refusals", body)

    def expected(self, action: str) -> Response:
        return self._signed("GET", f"/api/v1/stations/{quote(self.code, safe='')}/expected?action={quote(action)}")

    def key_bundle(self) -> Response:
        return self.transport.request("GET", "/api/v1/keys", b"", {})

    def log_key(self) -> Response:
        return self.transport.request("GET", "/api/v1/log-key", b"", {})

    def log_key_rollovers(self) -> Response:
        """The log key now and its rollovers (``GET /api/v1/log-key/rollovers``; an older server answers 404)."""
        return self.transport.request("GET", "/api/v1/log-key/rollovers", b"", {})
