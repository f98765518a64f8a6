"""Registering scanning stations: a station's code, its unit and its Ed25519 public key.

Shared by the web Stations page and ``custody stations add``. Registering a key
again for an existing station (same unit) replaces the station's key: the old
key stays in the registry (what it signed still verifies) until revoked.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

from sqlalchemy.exc import IntegrityError

from custody import ed25519
from custody.errors import CustodyError, NotFound
from custody.events import ID
from custody.keyring import Role, key_id
from store.instance import Instance
from store.models import KeyRecord, Station, Unit


class StationConflict(CustodyError):
    """The station exists at another unit, or the public key is registered already."""

    exit_code = 1


class StationElsewhere(StationConflict):
    """The station code is registered at another unit."""


class KeyTaken(StationConflict):
    """The public key is registered already (to this or another station)."""


def parse_public_key(text: str) -> bytes | None:
    """A 32-byte Ed25519 public key written in hex or base64, or None."""
    text = text.strip()
    for decode in (bytes.fromhex, lambda t: base64.b64decode(t, validate=True)):
        try:
            raw = decode(text)
        except (ValueError, binascii.Error):
            continue
        if len(raw) == 32:
            return raw
    return None


def register_station(instance: Instance, code: str, unit: str, name: str, public_raw: bytes,
                     now: datetime) -> str:
    """Register station ``code`` at ``unit`` with its public key; returns the key id (hex).

    Raises :class:`NotFound` for an unknown unit, :class:`StationElsewhere` when
    the station belongs to another unit, :class:`KeyTaken` when the key is registered already,
    ``ValueError`` for a malformed code or key. Nothing is stored then.
    """
    if not ID.match(code):
        raise ValueError(f"station code {code!r}: letters, digits and . _ : - only, at most 64")
    try:
        ed25519.check_public_key(public_raw)
    except ValueError as e:
        raise ValueError(f"the station key: {e}") from None
    now = now.replace(microsecond=0)
    kid = key_id(public_raw).hex()
    try:
        with instance.db.write_session() as s:
            if s.get(Unit, unit) is None:
                raise NotFound(f"unit {unit!r} is not in the unit tree")
            station = s.get(Station, code)
            if station is not None and station.unit != unit:
                raise StationElsewhere(f"station {code} already exists at unit {station.unit}")
            s.add(KeyRecord(kid=kid, public_raw=public_raw, role=Role.STATION.value, owner=code, valid_from=now))
            if station is None:
                s.add(Station(code=code, unit=unit, name=name.strip(), kid=kid, registered_at=now))
            else:
                station.kid = kid
                station.name = name.strip()
    except IntegrityError:
        raise KeyTaken(f"the public key {kid} is registered already") from None
    return kid
