"""Accounts, roles and logins: argon2 password hashes, throttled logins, scoped roles.

Roles (an account has exactly one):

=================  ==========================================================
``admin``          the institute's administrator: everything, everywhere
``officer``        a unit officer (county office, exam site, grading centre):
                   items, alerts, labels, stations and people of their units
``investigator``   reads items, timelines and alerts of their units; runs
                   investigations (every view is audited)
``auditor``        reads everything of their units, the key registry and the
                   audit trail; changes nothing
=================  ==========================================================

Every role but ``admin`` is bound to a unit and sees only that unit and the
units below it. Stations are not accounts: they sign their requests with
their registered key (:mod:`web.station_auth`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask_babel import gettext as _
from sqlalchemy import delete, select

from custody.errors import CustodyError
from store.accounts import Account, LoginThrottle
from store.instance import Instance
from store.models import Unit

ROLES = ("admin", "officer", "investigator", "auditor")
USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{1,63}\Z")
MIN_PASSWORD = 10
# A hash to verify against when the account does not exist, so that a wrong
# username takes as long as a wrong password (no account enumeration by timing).
_DUMMY: dict[int, str] = {}


class AccountError(CustodyError):
    """An account could not be created or changed; the message says why."""

    exit_code = 2


class LoginRefused(CustodyError):
    """Wrong username or password (deliberately not saying which)."""


class LoginLocked(LoginRefused):
    """Too many failed logins for this account or from this address."""

    def __init__(self, until: datetime):
        self.until = until
        super().__init__(f"too many failed logins; locked until {until.isoformat()}")


@dataclass(frozen=True)
class Principal:
    """Who is asking: an account, or a station (authenticated by its key)."""

    name: str
    role: str  # one of ROLES, or "station"
    unit: str | None  # root of the visible subtree; None = everything
    account_id: int | None = None
    station: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def check_password_rules(password: str, username: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(_("a password needs at least %(count)d characters", count=MIN_PASSWORD))
    if password.lower() == username.lower():
        raise AccountError(_("the password must differ from the username"))


def create_account(instance: Instance, username: str, password: str, role: str, unit: str | None, now: datetime,
                   *, display_name: str = "", hasher: PasswordHasher | None = None) -> Account:
    """Create an account; :class:`AccountError` for a taken name, an unknown role or unit, a weak password."""
    if not USERNAME.match(username):
        # ASCII on purpose: a username appears in URLs, logs and the audit trail, where a look-alike letter
        # (Cyrillic а for Latin a) or a full-width one would pass for another account. A name such as 张三
        # belongs in the display name; the message says so, since 张 is a letter to anyone reading it.
        raise AccountError(_("a username is 2 to 64 ASCII characters: letters a-z and A-Z, digits 0-9 and "
                             ". _ @ - (starting with a letter or digit); a Chinese name goes in the display "
                             "name"))
    if role == "station":
        raise AccountError(_("stations do not log in with a password: register the station and its public key"))
    if role not in ROLES:
        raise AccountError(_("unknown role %(role)r; choose one of %(roles)s", role=role, roles=", ".join(ROLES)))
    if role != "admin" and not unit:
        raise AccountError(_("a %(role)s account needs a unit (the root of what it may see)", role=role))
    check_password_rules(password, username)
    if len(display_name) > 100:
        raise AccountError(_("a display name has at most 100 characters"))
    digest = (hasher or PasswordHasher()).hash(password)
    with instance.db.write_session() as s:
        if unit is not None and s.get(Unit, unit) is None:
            raise AccountError(_("no unit %(unit)r; import the exam plan first or check the code", unit=unit))
        if s.scalars(select(Account).where(Account.username == username)).first() is not None:
            raise AccountError(_("the username %(username)r is taken", username=username))
        account = Account(username=username, display_name=display_name, password_hash=digest, role=role,
                          unit=unit, disabled=False, session_version=1,
                          created_at=now, password_changed_at=now)
        s.add(account)
        s.flush()
    return account


def set_password(instance: Instance, username: str, password: str, now: datetime,
                 hasher: PasswordHasher | None = None) -> None:
    check_password_rules(password, username)
    digest = (hasher or PasswordHasher()).hash(password)
    with instance.db.write_session() as s:
        account = s.scalars(select(Account).where(Account.username == username)).first()
        if account is None:
            raise AccountError(f"no account {username!r}")
        account.password_hash = digest
        account.password_changed_at = now
        account.session_version += 1
        s.execute(delete(LoginThrottle).where(LoginThrottle.key == user_lock_key(username)))


def set_disabled(instance: Instance, account_id: int, disabled: bool) -> Account:
    with instance.db.write_session() as s:
        account = s.get(Account, account_id)
        if account is None:
            raise AccountError("no such account")
        account.disabled = disabled
        account.session_version += 1
        return account


def end_sessions(instance: Instance, account_id: int) -> None:
    """Void every session of the account (logout everywhere)."""
    with instance.db.write_session() as s:
        account = s.get(Account, account_id)
        if account is not None:
            account.session_version += 1


def get_account(instance: Instance, account_id: int) -> Account | None:
    with instance.db.session() as s:
        return s.get(Account, account_id)


def list_accounts(instance: Instance) -> list[Account]:
    with instance.db.session() as s:
        return list(s.scalars(select(Account).order_by(Account.username)))


class Throttle:
    """Failed-login counting in the database, per account and per client address.

    An account locks after ``max_failures``; an address after ``address_failures`` (by default the
    same), counted over every account tried from it. An exam site's staff often share one address
    (the site's NAT): an address limit as low as an account's would let one person's typos lock out
    the whole site on exam morning, so the web application sets it higher (``LOGIN_MAX_ADDRESS_FAILURES``);
    it is there against one machine trying many accounts.
    """

    def __init__(self, instance: Instance, max_failures: int, lock: timedelta, address_failures: int | None = None):
        self.instance = instance
        self.max_failures = max_failures
        self.address_failures = max_failures if address_failures is None else address_failures
        self.lock = lock

    def limit(self, key: str) -> int:
        """Failures that lock ``key`` (an account's or an address's counter)."""
        return self.address_failures if key.startswith(ADDRESS_KEY) else self.max_failures

    def locked_until(self, keys: list[str], now: datetime) -> datetime | None:
        with self.instance.db.session() as s:
            rows = s.scalars(select(LoginThrottle).where(LoginThrottle.key.in_(keys))).all()
        until = [r.locked_until for r in rows if r.locked_until is not None and r.locked_until > now]
        return max(until) if until else None

    def fail(self, keys: list[str], now: datetime) -> datetime | None:
        """Count a failure against every key; returns the lock end if one is now locked."""
        locked: datetime | None = None
        with self.instance.db.write_session() as s:
            for key in keys:
                row = s.get(LoginThrottle, key)
                if row is None:
                    row = LoginThrottle(key=key, failures=0, window_start=now, locked_until=None)
                    s.add(row)
                if row.window_start + self.lock < now or (row.locked_until is not None and row.locked_until <= now):
                    row.failures, row.window_start, row.locked_until = 0, now, None
                row.failures += 1
                if row.failures >= self.limit(key):
                    row.locked_until = now + self.lock
                    locked = row.locked_until if locked is None else max(locked, row.locked_until)
        return locked

    def succeed(self, user_key: str) -> None:
        self.clear([user_key])

    def clear(self, keys: list[str]) -> None:
        """Forget the failures and locks of ``keys`` (an account's, an address's)."""
        with self.instance.db.write_session() as s:
            s.execute(delete(LoginThrottle).where(LoginThrottle.key.in_(keys)))

    def locks(self, now: datetime) -> list[tuple[str, int, datetime]]:
        """The counters locked at ``now``: (key, failures, locked until), the latest lock first."""
        with self.instance.db.session() as s:
            rows = s.scalars(select(LoginThrottle).where(LoginThrottle.locked_until > now)
                             .order_by(LoginThrottle.locked_until.desc(), LoginThrottle.key)).all()
        return [(r.key, r.failures, r.locked_until) for r in rows if r.locked_until is not None]


#: The prefix of a client address's failed-login counter.
ADDRESS_KEY = "ip:"


def address_lock_key(address: str) -> str:
    """The failed-login counter of a client address (see :class:`Throttle`)."""
    return f"{ADDRESS_KEY}{address[:60]}"


def user_lock_key(username: str) -> str:
    """The failed-login counter of ``username`` (see :class:`Throttle`): what a login, a new password and
    ``custody users unlock`` all clear."""
    return f"user:{username.strip().lower()[:64]}"


def authenticate(instance: Instance, username: str, password: str, address: str, now: datetime, *,
                 hasher: PasswordHasher, throttle: Throttle) -> Account:
    """The account if the password is right; raises :class:`LoginLocked` or :class:`LoginRefused`.

    The lock is checked before the password, so a locked account cannot be
    probed; an unknown username costs one hash verification like a known one.
    """
    user_key, ip_key = user_lock_key(username), address_lock_key(address)
    until = throttle.locked_until([user_key, ip_key], now)
    if until is not None:
        raise LoginLocked(until)
    with instance.db.session() as s:
        account = s.scalars(select(Account).where(Account.username == username.strip())).first()
    ok = False
    if account is None:
        _verify_dummy(hasher, password)
    else:
        try:
            ok = hasher.verify(account.password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            ok = False
    if not ok or account is None or account.disabled:
        until = throttle.fail([user_key, ip_key], now)
        if until is not None:
            raise LoginLocked(until)
        raise LoginRefused("wrong username or password")
    throttle.succeed(user_key)
    with instance.db.write_session() as s:
        row = s.get(Account, account.id)
        assert row is not None
        row.last_login_at = now
        if hasher.check_needs_rehash(row.password_hash):
            row.password_hash = hasher.hash(password)
        account = row
    return account


def _verify_dummy(hasher: PasswordHasher, password: str) -> None:
    key = id(hasher)
    if key not in _DUMMY:
        _DUMMY[key] = hasher.hash("not-a-real-password-only-for-timing")
    try:
        hasher.verify(_DUMMY[key], password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        pass
