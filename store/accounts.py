"""Tables of the web application: accounts, login throttling, the audit trail.

Created by migration 0003. Accounts are scoped to a subtree of units (all but
the institute's administrators); the audit trail records who looked at what
(investigations, item timelines, label downloads) and is only ever appended to.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from store.models import Base, UTCDateTime


class Account(Base):
    """A person who logs in to the web application.

    ``role`` is one of ``admin``, ``officer``, ``investigator``, ``auditor``
    (stations authenticate with their key, not with an account). ``unit`` is
    the root of the subtree the account may see; ``None`` only for ``admin``.
    ``session_version`` is bumped at logout and on a password change: every
    session cookie carrying an older value is void.
    """

    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100), default="")
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16))
    unit: Mapped[str | None] = mapped_column(String(32), nullable=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class LoginThrottle(Base):
    """Failed logins per account (``user:NAME``) and per client address (``ip:ADDR``).

    Kept in the database so that every thread and process of the server sees
    the same counts. ``failures`` counts within the window that began at
    ``window_start``; ``locked_until`` is set when the limit is reached.
    """

    __tablename__ = "login_throttle"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime())
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class AuditEntry(Base):
    """One access worth answering for: who viewed or downloaded what, when, from where."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(40), index=True)
    target: Mapped[str] = mapped_column(String(200), index=True)
    detail: Mapped[str] = mapped_column(Text, default="")
    address: Mapped[str] = mapped_column(String(64), default="")
