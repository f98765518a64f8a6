"""Tables of the nightly verification: every run's signed report, and the state the next run resumes from."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from store.models import Base, UTCDateTime


class VerificationRun(Base):
    """One run of ``custody verify``: its signed report (JSON text), kept forever."""

    __tablename__ = "verification_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime())
    mode: Mapped[str] = mapped_column(String(16))
    ok: Mapped[bool] = mapped_column(Boolean, index=True)
    log_size: Mapped[int] = mapped_column(BigInteger)
    verified_from: Mapped[int] = mapped_column(BigInteger)
    verified_to: Mapped[int] = mapped_column(BigInteger)
    finding_count: Mapped[int] = mapped_column(Integer)
    #: SHA-256 (hex) of the report's signed bytes.
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    report: Mapped[str] = mapped_column(Text)
    report_path: Mapped[str | None] = mapped_column(Text, nullable=True)


class VerificationState(Base):
    """Where the last successful run stopped (one row): what an incremental run resumes from.

    ``snapshot`` is zlib-compressed JSON (the tree's compact range, item chain
    heads, custody-rule states); its SHA-256 is in that run's signed report, so
    an altered snapshot is refused and the run falls back to a full one.
    """

    __tablename__ = "verification_state"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    verified_size: Mapped[int] = mapped_column(BigInteger)
    root: Mapped[bytes] = mapped_column(LargeBinary(32))
    checkpoint: Mapped[str | None] = mapped_column(Text, nullable=True)
    snapshot: Mapped[bytes] = mapped_column(LargeBinary)
    snapshot_digest: Mapped[str] = mapped_column(String(64))
    report_digest: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
