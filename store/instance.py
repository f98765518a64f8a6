"""An instance: a home folder (keys, settings, the witness copy of the checkpoint) and a database."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from custody.errors import InstanceError
from custody.keyring import Role
from keys.manager import KeyManager
from store.db import Database, database_url, placeholder
from store.models import Setting

DEFAULT_HOME = Path("custody-home")
#: Roles of the keys an instance holds itself, created by ``custody init``.
INSTANCE_ROLES = (Role.LABEL_ISSUER, Role.BADGE_ISSUER, Role.LOG_SIGNER)
DEMO_MARKER = "DEMO-INSTANCE"


def resolve_home(home: str | os.PathLike[str] | None) -> Path:
    return Path(home or os.environ.get("CUSTODY_HOME") or DEFAULT_HOME).expanduser().resolve()


@dataclass
class Instance:
    home: Path
    db: Database
    keys: KeyManager

    @property
    def key_dir(self) -> Path:
        return self.home / "keys"

    def setting(self, name: str, default: str | None = None, *, session: Session | None = None) -> str:
        """A setting's value; read in ``session`` if given (a writer's own transaction), else in a new one."""
        value: str | None
        if session is not None and not (session.new or session.dirty or session.deleted):
            # the log writer asks once a batch: the driver's own SQL costs a fifth of the ORM's get (with
            # nothing pending in the session, there is nothing the get would have flushed first)
            connection = session.connection()
            row = connection.exec_driver_sql(
                f"SELECT value FROM {Setting.__tablename__} WHERE name = {placeholder(connection)}", (name,)).first()
            value = None if row is None else str(row[0])
        elif session is not None:
            value = getattr(session.get(Setting, name), "value", None)
        else:
            with self.db.session() as s:
                value = getattr(s.get(Setting, name), "value", None)
        if value is None:
            if default is None:
                raise InstanceError(f"the instance has no setting {name!r}; was it initialised?")
            return default
        return value

    def set_setting(self, name: str, value: str) -> None:
        with self.db.write_session() as s:
            row = s.get(Setting, name)
            if row is None:
                s.add(Setting(name=name, value=value))
            else:
                row.value = value

    @property
    def institute(self) -> str:
        return self.setting("institute")

    @property
    def origin(self) -> str:
        return self.setting("origin")

    def current_exam(self, session: Session | None = None) -> str:
        return self.setting("exam", "", session=session)

    def close(self) -> None:
        self.db.dispose()


def _head_revision(db: Database) -> str | None:
    return ScriptDirectory.from_config(db.alembic_config()).get_current_head()


def open_instance(home: Path, *, secret: bytes | None = None, url: str | None = None) -> Instance:
    """Open an initialised instance; :class:`InstanceError` if there is none or its schema is old."""
    url = url or database_url(home)
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
        raise InstanceError(f"no custody instance at {home} (no database file); run `custody init` "
                            "or pass --home / CUSTODY_HOME")
    db = Database(url)
    try:
        with db.engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    except OperationalError as exc:
        db.dispose()
        raise InstanceError(f"cannot reach the database {db.safe_url}: {exc.orig}") from None
    if current is None:
        db.dispose()
        raise InstanceError(f"no custody instance at {home} (database {db.safe_url}); run `custody init`")
    if current != _head_revision(db):
        db.dispose()
        raise InstanceError(f"the database schema is at revision {current}; run `custody init` to upgrade it")
    return Instance(home, db, KeyManager(db, home / "keys", secret))


def init_instance(home: Path, *, origin: str, institute: str, now: datetime,
                  secret: bytes | None = None, url: str | None = None) -> tuple[Instance, list[str]]:
    """Create or upgrade an instance. Idempotent: existing keys and settings are kept.

    Returns the instance and a list of what was done, for the user.
    """
    home.mkdir(parents=True, exist_ok=True)
    (home / "keys").mkdir(mode=0o700, exist_ok=True)
    db = Database(url or database_url(home))
    db.migrate()
    instance = Instance(home, db, KeyManager(db, home / "keys", secret))
    done = [f"database ready: {db.safe_url}"]
    for name, value in (("origin", origin), ("institute", institute)):
        if instance.setting(name, "") == "":
            instance.set_setting(name, value)
            done.append(f"setting {name} = {value}")
    owner = instance.institute
    for role in INSTANCE_ROLES:
        with db.session() as s:
            from store.models import KeyRecord
            exists = s.scalars(select(KeyRecord).where(KeyRecord.role == role.value,
                                                       KeyRecord.private_file.is_not(None))).first()
        if exists is None:
            key = instance.keys.create(role, owner, now)
            done.append(f"created {role.value} key {key.kid_hex}")
    return instance, done
