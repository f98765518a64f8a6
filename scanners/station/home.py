"""The station home folder: key, configuration, pinned log key, caches and the outbox.

Layout (``--station-home``, env ``CUSTODY_STATION_HOME``, default ``./custody-station``)::

    station.json          server URL, station code, unit, pinned log verifier key, key id, staleness limit
    station-key.pem       the station's Ed25519 key, encrypted PKCS#8 (passphrase: CUSTODY_PASSPHRASE or a prompt)
    key-bundle.json       the last key bundle that verified with the pinned log key
    expected/ACTION.json  the last expected list fetched for each action
    manifests/            handover manifests this station printed (PNG and text)
    outbox.sqlite         signed events, receipts, refusal evidence, session drafts (see outbox.py)

Every file but the outbox is written atomically (temporary file, fsync, rename,
fsync of the folder): a crash leaves the old version or the new one, never half.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody.events import format_time
from custody.keyring import key_id
from custody.labels import Signer
from keys.durable import write_atomically
from keys.files import passphrase, public_raw, read_private_key, write_private_key
from scanners.station.errors import StationError, StationNotInitialised

HOME_ENV = "CUSTODY_STATION_HOME"
DEFAULT_HOME = Path("custody-station")
CONFIG_FORMAT = "custody-station/v1"
DEFAULT_STALE_HOURS = 12.0


def resolve_station_home(path: str | os.PathLike[str] | None) -> Path:
    return Path(path or os.environ.get(HOME_ENV) or DEFAULT_HOME).expanduser().resolve()


@dataclass(frozen=True)
class StationConfig:
    """What ``custody station init`` wrote; ``log_key`` is the pinned signed-note verifier key."""

    server: str
    code: str
    unit: str
    log_key: str
    kid: str
    public_key: str  # base64 of the raw 32 bytes
    created_at: str
    stale_after_hours: float = DEFAULT_STALE_HOURS
    format: str = CONFIG_FORMAT
    #: Log keys pinned before ``log_key``, oldest first: followed on from, each by a rollover the one
    #: before signed (a rotation of the log key; :mod:`custody.log.rollover`).
    previous_log_keys: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StationConfig:
        if data.get("format") != CONFIG_FORMAT:
            raise StationError(f"station.json has format {data.get('format')!r}, expected {CONFIG_FORMAT!r}")
        values = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        if not isinstance(values.get("previous_log_keys", ()), (list, tuple)):
            raise StationError("station.json: previous_log_keys is not a list")
        values["previous_log_keys"] = tuple(values.get("previous_log_keys", ()))
        try:
            return cls(**values)
        except TypeError as exc:
            raise StationError(f"station.json is incomplete: {exc}") from None


def write_json_atomic(path: Path, value: Any) -> None:
    """Write JSON so that a crash leaves either the old file or the new one."""
    write_bytes_atomic(path, json.dumps(value, ensure_ascii=False, indent=1, sort_keys=True).encode("utf-8"))


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write a file so that a crash leaves either the old file or the new one, readable by its owner only."""
    write_atomically(path, data, mode=0o600)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise StationError(f"{path} cannot be read: {exc}") from None


class StationHome:
    """One station's folder. Nothing is opened until asked for."""

    def __init__(self, path: Path):
        self.path = path

    @property
    def config_path(self) -> Path:
        return self.path / "station.json"

    @property
    def key_path(self) -> Path:
        return self.path / "station-key.pem"

    @property
    def bundle_path(self) -> Path:
        return self.path / "key-bundle.json"

    @property
    def expected_dir(self) -> Path:
        return self.path / "expected"

    @property
    def manifests_dir(self) -> Path:
        return self.path / "manifests"

    @property
    def outbox_path(self) -> Path:
        return self.path / "outbox.sqlite"

    def exists(self) -> bool:
        return self.config_path.exists()

    def config(self) -> StationConfig:
        data = read_json(self.config_path)
        if data is None:
            raise StationNotInitialised(
                f"no station is set up in {self.path}: run `custody station init --server URL --code CODE "
                f"--unit UNIT` or pass --station-home / {HOME_ENV}")
        return StationConfig.from_json(data)

    def save_config(self, config: StationConfig) -> None:
        """Replace station.json (whole or not at all)."""
        write_json_atomic(self.config_path, asdict(config))

    def signer(self, secret: bytes | None = None) -> Signer:
        """The station's signer (asks for the passphrase if ``secret`` is not given)."""
        key = read_private_key(self.key_path, secret if secret is not None else passphrase())
        return Signer(key_id(public_raw(key)), key.sign)

    @classmethod
    def create(cls, path: Path, *, server: str, code: str, unit: str, log_key: str, secret: bytes,
               now: datetime, stale_after_hours: float = DEFAULT_STALE_HOURS) -> tuple[StationHome, StationConfig]:
        """A new station: key pair (private half encrypted under ``secret``) and configuration.

        Refuses a folder that already holds a station: its key and outbox must
        never be overwritten (unsent events would be lost).
        """
        home = cls(path)
        if home.config_path.exists() or home.key_path.exists():
            raise StationError(f"{path} already holds a station ({home.config_path.name}); its key and outbox are "
                               "kept. Use another --station-home for a new station")
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = Ed25519PrivateKey.generate()
        write_private_key(home.key_path, key, secret)
        raw = public_raw(key)
        config = StationConfig(server=server.rstrip("/"), code=code, unit=unit, log_key=log_key,
                               kid=key_id(raw).hex(), public_key=base64.b64encode(raw).decode("ascii"),
                               created_at=format_time(now.astimezone(UTC)),
                               stale_after_hours=stale_after_hours)
        write_json_atomic(home.config_path, asdict(config))
        return home, config
