"""What the station keeps from the server to work offline: the key bundle and the expected lists.

The key bundle (``GET /api/v1/keys``) is checked against the log verifier key
pinned at ``station init`` every time it is fetched *and* every time it is
loaded from disk, so a bundle edited on the station's disk is refused too. A
bundle older (by its signed ``issued_at``) than the cached one is refused: a
replayed old bundle cannot bring a revoked key back. The bundle's age is its
signed ``issued_at``, not the time it was fetched, so it cannot be made to
look fresh.

Expected lists (``GET /api/v1/stations/{code}/expected?action=...``) are kept
per action with the time they were fetched.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from custody.events import format_time
from custody.keyring import KeyRing, PublicKey, Role
from scanners.station.errors import BundleError
from scanners.station.home import read_json, write_json_atomic

#: The action whose expected list is "everything held at or below the unit" (docs/api.md:
#: any action other than the incoming ones, open and seal). The station reads item
#: states from it: what is already here, what was already opened.
HELD_ACTION = "store"


def _time(text: str | None) -> datetime | None:
    if text is None:
        return None
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


#: A key bundle issued this much later than the station's clock says its clock is behind (the server accepts
#: requests from a clock up to 5 minutes off: the same margin).
CLOCK_TOLERANCE = timedelta(minutes=5)


@dataclass(frozen=True)
class KeyBundle:
    """A verified key bundle and the key ring it gives."""

    document: dict[str, Any]
    issued_at: datetime
    keyring: KeyRing

    def age(self, now: datetime) -> timedelta:
        return now - self.issued_at

    def is_stale(self, now: datetime, max_age: timedelta) -> bool:
        return self.age(now) > max_age

    def clock_behind(self, now: datetime) -> timedelta | None:
        """How far this station's clock is behind the server's, if the bundle was issued more than
        :data:`CLOCK_TOLERANCE` after ``now``: a bundle cannot come from the future, so the station's clock
        is wrong (events would carry its times, and the bundle would never look stale)."""
        behind = -self.age(now)
        return behind if behind > CLOCK_TOLERANCE else None


def open_bundle(document: Any, log_key: str) -> KeyBundle:
    """Verify a bundle document against the pinned log key; :class:`BundleError` says why not."""
    from web.keybundle import verify_key_bundle

    if not isinstance(document, dict):
        raise BundleError("the key bundle is not a JSON object")
    try:
        body = verify_key_bundle(document, log_key)
    except ValueError as exc:
        raise BundleError(f"key bundle refused: {exc}") from None
    if body.get("log_key") != log_key:
        raise BundleError(f"key bundle refused: it is for log key {body.get('log_key')!r}, this station pinned "
                          f"{log_key!r}")
    ring = KeyRing()
    try:
        for k in body["keys"]:
            ring.add(PublicKey(public_raw=base64.b64decode(k["public_key"], validate=True), role=Role(k["role"]),
                               owner=k["owner"], valid_from=_time(k["valid_from"]),  # type: ignore[arg-type]
                               valid_until=_time(k.get("valid_until")), revoked_at=_time(k.get("revoked_at")),
                               revocation_reason=k.get("revocation_reason")))
        issued_at = _time(body["issued_at"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"key bundle refused: a key entry is malformed ({exc})") from None
    assert issued_at is not None
    return KeyBundle(document, issued_at, ring)


class BundleCache:
    """The key bundle last fetched. ``previous_keys``: log keys this station followed on from (a rotation):
    the cached bundle may be signed by one of them until the next one is fetched; a fetched one never."""

    def __init__(self, path: Path, log_key: str, previous_keys: Sequence[str] = ()):
        self.path = path
        self.log_key = log_key
        self.previous_keys = tuple(previous_keys)

    def load(self) -> KeyBundle | None:
        """The cached bundle, verified again; ``None`` if none was ever fetched."""
        document = read_json(self.path)
        if document is None:
            return None
        error: BundleError | None = None
        for key in (self.log_key, *reversed(self.previous_keys)):
            try:
                return open_bundle(document, key)
            except BundleError as exc:
                error = error or exc  # the current key's reason is the one to give
        assert error is not None
        raise error

    def store(self, document: Any) -> KeyBundle:
        """Verify and keep a freshly fetched bundle (refusing one older than the cached one)."""
        bundle = open_bundle(document, self.log_key)
        try:
            cached = self.load()
        except BundleError:
            cached = None  # a damaged cache is replaced by a good bundle
        if cached is not None and bundle.issued_at < cached.issued_at:
            raise BundleError(f"key bundle refused: issued at {format_time(bundle.issued_at)}, older than the "
                              f"cached one ({format_time(cached.issued_at)}); a replayed old bundle could hide a "
                              "revocation")
        write_json_atomic(self.path, document)
        return bundle


@dataclass(frozen=True)
class ExpectedEntry:
    """One item the server (or a manifest) says to expect. ``label`` is the SHA-256 hex of its issued label."""

    item: str
    kind: str
    count: int | None = None
    label: str | None = None
    box: str | None = None
    subject: str | None = None
    destination: str | None = None
    seal: str | None = None
    status: str | None = None
    holder: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExpectedEntry:
        return cls(item=data["item"], kind=data.get("kind") or "", count=data.get("count"), label=data.get("label"),
                   box=data.get("box"), subject=data.get("subject"), destination=data.get("destination"),
                   seal=data.get("seal"), status=data.get("status"), holder=data.get("holder"))

    def as_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class ExpectedList:
    action: str
    fetched_at: datetime
    source: str  # "server" or "manifest"
    entries: dict[str, ExpectedEntry] = field(default_factory=dict)


class ExpectedCache:
    def __init__(self, folder: Path):
        self.folder = folder

    def _path(self, action: str) -> Path:
        return self.folder / f"{action}.json"

    def store(self, action: str, response: dict[str, Any], fetched_at: datetime) -> ExpectedList:
        write_json_atomic(self._path(action), {"fetched_at": format_time(fetched_at), "response": response})
        return self._parse(action, response, fetched_at)

    def load(self, action: str) -> ExpectedList | None:
        data = read_json(self._path(action))
        if data is None:
            return None
        fetched = _time(data["fetched_at"])
        assert fetched is not None
        return self._parse(action, data["response"], fetched)

    def actions(self) -> list[str]:
        return sorted(p.stem for p in self.folder.glob("*.json")) if self.folder.exists() else []

    @staticmethod
    def _parse(action: str, response: dict[str, Any], fetched_at: datetime) -> ExpectedList:
        entries = {e["item"]: ExpectedEntry.from_json(e) for e in response.get("items", [])}
        return ExpectedList(action, fetched_at, "server", entries)
