"""Stations authenticate every API request with their registered Ed25519 key.

A signed request carries four headers::

    X-Custody-Station:   ST-K001                 the station code
    X-Custody-Timestamp: 1497916800              Unix seconds, within ±5 minutes of the server
    X-Custody-Nonce:     3f1c0a...               16 to 64 characters of [A-Za-z0-9_-], new for each request
    X-Custody-Signature: <base64 Ed25519>        over the request message below

and optionally ``X-Custody-Key`` (the key id, 16 hex digits) to pick among the
station's keys during a rotation. The signed message is UTF-8 text, lines
joined by ``\\n``::

    custody-request/v1
    <METHOD>
    <path>[?<query string exactly as sent>]
    <timestamp>
    <nonce>
    <SHA-256 of the body, lowercase hex (of the empty string for a GET)>

A key that is revoked, expired or registered to another station is refused, as
is a timestamp outside the window or a nonce already seen within it.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select

from custody import ed25519
from custody.errors import CustodyError
from custody.events import ID
from custody.keyring import Role
from store.instance import Instance
from store.models import KeyRecord, Station
from web.accounts import Principal

if TYPE_CHECKING:
    from werkzeug.datastructures import Headers

H_STATION, H_TIME, H_NONCE, H_SIG, H_KEY = (
    "X-Custody-Station", "X-Custody-Timestamp", "X-Custody-Nonce", "X-Custody-Signature", "X-Custody-Key")
SCHEME = "custody-request/v1"
_NONCE = re.compile(r"^[A-Za-z0-9_-]{16,64}\Z")


class StationAuthError(CustodyError):
    """A station request's signature headers are missing, stale, replayed or do not verify."""


def request_message(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    return "\n".join([SCHEME, method.upper(), path, timestamp, nonce, hashlib.sha256(body).hexdigest()]).encode()


def sign_request(method: str, path: str, body: bytes, *, station: str, kid: bytes | str,
                 sign: Callable[[bytes], bytes], now: datetime, nonce: str | None = None) -> dict[str, str]:
    """The headers of a signed request (for station software, tests and benchmarks)."""
    timestamp = str(int(now.timestamp()))
    nonce = nonce or secrets.token_urlsafe(18)
    signature = sign(request_message(method, path, timestamp, nonce, body))
    return {H_STATION: station, H_TIME: timestamp, H_NONCE: nonce,
            H_SIG: base64.b64encode(signature).decode("ascii"),
            H_KEY: kid.hex() if isinstance(kid, bytes) else kid}


def has_signature(headers: Mapping[str, str] | Headers) -> bool:
    return any(h in headers for h in (H_STATION, H_SIG))


class StationKeys:
    """The registered stations and their keys, re-read at most every ``ttl`` seconds (one process).

    A key revoked through this application takes effect at once (:meth:`forget`);
    one revoked by another process (the command line) within ``ttl`` seconds.
    """

    def __init__(self, ttl: float = 5.0):
        self.ttl = ttl
        self._entries: dict[str, tuple[float, Station | None, list[KeyRecord]]] = {}
        self._lock = threading.Lock()

    def get(self, instance: Instance, code: str) -> tuple[Station | None, list[KeyRecord]]:
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(code)
        if entry is not None and now - entry[0] < self.ttl:
            return entry[1], entry[2]
        with instance.db.session() as s:
            station = s.get(Station, code)
            keys = [] if station is None else list(s.scalars(select(KeyRecord).where(
                KeyRecord.role == Role.STATION.value, KeyRecord.owner == code)))
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[code] = (now, station, keys)
        return station, keys

    def forget(self) -> None:
        with self._lock:
            self._entries.clear()


def authenticate_station(instance: Instance, headers: Mapping[str, str] | Headers, method: str, path: str,
                         body: bytes, *, now: datetime, skew: timedelta, first_time: Callable[[str], bool],
                         stations: StationKeys | None = None) -> Principal:
    """The station principal, or :class:`StationAuthError` saying what is wrong."""
    missing = [h for h in (H_STATION, H_TIME, H_NONCE, H_SIG) if not headers.get(h)]
    if missing:
        raise StationAuthError(f"a signed station request needs the header(s) {', '.join(missing)}")
    code, timestamp, nonce = headers[H_STATION], headers[H_TIME], headers[H_NONCE]
    if not ID.match(code):
        raise StationAuthError("X-Custody-Station is not a station code")
    if not re.fullmatch(r"\d{1,12}", timestamp):
        raise StationAuthError("X-Custody-Timestamp must be Unix seconds")
    offset = abs(now.timestamp() - int(timestamp))
    if offset > skew.total_seconds():
        raise StationAuthError(f"the request's timestamp is {int(offset)} s away from the server clock "
                               f"(at most {int(skew.total_seconds())} s allowed); check the station's clock")
    if not _NONCE.match(nonce):
        raise StationAuthError("X-Custody-Nonce must be 16 to 64 characters of A-Z a-z 0-9 _ -")
    try:
        signature = base64.b64decode(headers[H_SIG], validate=True)
    except ValueError:
        signature = b""
    if len(signature) != 64:
        raise StationAuthError("X-Custody-Signature must be a base64 Ed25519 signature (64 bytes)")
    kid = headers.get(H_KEY, "").lower()
    station, keys = (stations or StationKeys(ttl=0)).get(instance, code)
    if station is None:
        raise StationAuthError(f"no station {code} is registered")
    usable = [k for k in keys if k.valid_from <= now and (k.valid_until is None or now < k.valid_until)
              and (k.revoked_at is None or now < k.revoked_at) and (not kid or k.kid == kid)]
    if not usable:
        raise StationAuthError(f"station {code} has no valid, unrevoked key" + (f" with id {kid}" if kid else ""))
    message = request_message(method, path, timestamp, nonce, body)
    for key in usable:
        if not ed25519.verifies(key.public_raw, signature, message):
            continue
        if not first_time(f"{code}/{nonce}"):
            raise StationAuthError("this request was already received (nonce replayed)")
        return Principal(name=code, role="station", unit=station.unit, station=code)
    raise StationAuthError(f"the request signature does not verify with the key of station {code}")
