"""Database tables. The schema is created and changed only by Alembic migrations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on both databases (SQLite drops the offset on its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; pass a timezone-aware time")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Bytes(LargeBinary):
    """Binary handed to the driver as the bytes it is: sqlite3 and psycopg both take ``bytes``, and
    wrapping every value (SQLAlchemy's default) was a measurable share of appending leaves and nodes."""

    cache_ok = True

    def bind_processor(self, dialect: Any) -> None:
        return None

    def result_processor(self, dialect: Any, coltype: object) -> Any:
        if dialect.name != "sqlite":
            inherited: Any = super().result_processor  # untyped in SQLAlchemy
            return inherited(dialect, coltype)

        def process(value: object) -> object:
            # SQLite lets any value into a BLOB column: an UPDATE with replace() or a literal turns a leaf
            # into TEXT. Read it as the bytes SQLite's CAST(... AS BLOB) gives, so that verification names
            # the altered row instead of failing on a str.
            if value is None or isinstance(value, bytes):
                return value
            return str(value).encode("utf-8")
        return process


class Base(DeclarativeBase):
    pass


class Exam(Base):
    __tablename__ = "exams"
    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Subject(Base):
    __tablename__ = "subjects"
    __table_args__ = (UniqueConstraint("exam", "code"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    exam: Mapped[str] = mapped_column(ForeignKey("exams.code"))
    code: Mapped[str] = mapped_column(String(8))
    name: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(100), default="")
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    listening: Mapped[bool] = mapped_column(Boolean, default=False)


class Unit(Base):
    """A node of the unit tree: city, county office, zone, site, room, secure room, grading centre."""

    __tablename__ = "units"
    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    parent: Mapped[str | None] = mapped_column(ForeignKey("units.code"), nullable=True, index=True)
    candidates: Mapped[int] = mapped_column(Integer, default=0)
    subjects: Mapped[str] = mapped_column(String(200), default="")


class Person(Base):
    """A member of staff who signs for handovers with a badge."""

    __tablename__ = "people"
    staff_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    unit: Mapped[str] = mapped_column(ForeignKey("units.code"), index=True)
    badge_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    badge_issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Station(Base):
    """A scanning station (a desk with a webcam), bound to its unit and its signing key."""

    __tablename__ = "stations"
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    unit: Mapped[str] = mapped_column(ForeignKey("units.code"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kid: Mapped[str | None] = mapped_column(String(16), nullable=True)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Item(Base):
    """A tracked item: a bundle, disc, answer key, backup paper or box."""

    __tablename__ = "items"
    __table_args__ = (UniqueConstraint("exam", "item_id"), Index("ix_items_exam_subject", "exam", "subject"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    exam: Mapped[str] = mapped_column(ForeignKey("exams.code"), index=True)
    item_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[int] = mapped_column(Integer)
    subject: Mapped[str] = mapped_column(String(8), index=True)
    destination: Mapped[str] = mapped_column(ForeignKey("units.code"), index=True)
    count: Mapped[int] = mapped_column(Integer)
    seal: Mapped[str | None] = mapped_column(String(64), nullable=True)
    parent_box: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    label_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    issuer_kid: Mapped[str | None] = mapped_column(String(16), nullable=True)


class KeyRecord(Base):
    """The public key registry: every key the instance trusts, with its validity."""

    __tablename__ = "keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kid: Mapped[str] = mapped_column(String(16), index=True)
    public_raw: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    owner: Mapped[str] = mapped_column(String(64))
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime())
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revocation_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: File name of the encrypted private key inside the instance, for keys this instance holds.
    private_file: Mapped[str | None] = mapped_column(String(200), nullable=True)
    #: For a log key made by a rotation: the previous log key's signed note vouching for it
    #: (:mod:`custody.log.rollover`), which stations and witnesses that pinned the old key follow.
    rollover: Mapped[str | None] = mapped_column(Text, nullable=True)


class Setting(Base):
    """Instance-wide settings (origin of the log, the current exam)."""

    __tablename__ = "settings"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)





# --- the custody log ---------------------------------------------------------------
# Leaves and tree nodes are append-only: rows are inserted, never updated or deleted.
# The single writer (Database.write_session) serialises every append.


class LogLeaf(Base):
    """One leaf of the Merkle log: its exact bytes, kept forever."""

    __tablename__ = "log_leaves"
    __table_args__ = (Index("ix_log_leaves_item_idx", "item", "idx"),)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(Bytes)
    hash: Mapped[bytes] = mapped_column(Bytes(32))
    type: Mapped[str] = mapped_column(String(24), index=True)
    #: indexed with idx (``ix_log_leaves_item_idx``), which serves a query on the item alone too
    item: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: ``station/event-id`` for handovers: the idempotency key (a replay is a duplicate, not a new leaf).
    event_key: Mapped[str | None] = mapped_column(String(140), nullable=True, unique=True)
    station: Mapped[str | None] = mapped_column(String(64), nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LogNode(Base):
    """A complete subtree hash: (level, index) covers leaves [index·2^level, (index+1)·2^level)."""

    __tablename__ = "log_nodes"
    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(Bytes(32))


class LogHead(Base):
    """The tree's size and root, one row, updated in the same transaction as the leaves."""

    __tablename__ = "log_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(BigInteger)
    root: Mapped[bytes] = mapped_column(Bytes(32))


class LogCheckpoint(Base):
    """Every checkpoint the log ever signed (C2SP signed note), with cosignatures added later."""

    __tablename__ = "log_checkpoints"
    __table_args__ = (Index("ix_log_checkpoints_signed_at", "signed_at"),)
    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    note: Mapped[str] = mapped_column(Text)
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ItemHead(Base):
    """Per item: the hash and index of its latest leaf (its chain's head) and its custody state."""

    __tablename__ = "item_heads"
    item: Mapped[str] = mapped_column(String(64), primary_key=True)
    leaf_hash: Mapped[bytes | None] = mapped_column(Bytes(32), nullable=True)
    idx: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    state: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: Log size when ``state`` last changed (box events change contents without their own leaf).
    state_size: Mapped[int] = mapped_column(BigInteger, default=0)


class IssuedLabel(Base):
    """Every label ever issued, by the SHA-256 of its COSE bytes: what a scan may present."""

    __tablename__ = "issued_labels"
    label_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    item: Mapped[str] = mapped_column(String(64), index=True)
    leaf_idx: Mapped[int] = mapped_column(BigInteger)


class AlertRecord(Base):
    """A custody rule the log's events broke: derived from the log, re-derivable by the verifier."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_item_leaf_idx", "item", "leaf_idx"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    leaf_idx: Mapped[int] = mapped_column(BigInteger, index=True)
    item: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    unit: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    code: Mapped[str] = mapped_column(String(40), index=True)
    severity: Mapped[str] = mapped_column(String(10))
    message: Mapped[str] = mapped_column(Text)
    message_zh: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


#: The leaves that log the key registry's facts: a key registered, its end of validity, its revocation.
KEY_LEAF_TYPES = ("key", "retirement", "revocation")


class LoggedKey(Base):
    """Which registry facts (a key, its end of validity, its revocation) are already in the log."""

    __tablename__ = "logged_keys"
    key_id: Mapped[int] = mapped_column(ForeignKey("keys.id"), primary_key=True)
    registered_idx: Mapped[int] = mapped_column(BigInteger)
    revoked_idx: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    #: The leaf that logged the key's ``valid_until``: a ``retirement`` leaf (a rotation), or its key leaf
    #: when it was registered with one.
    retired_idx: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
