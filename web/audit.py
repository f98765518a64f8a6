"""The audit trail: who viewed which investigation, item timeline or label sheet.

Entries are only appended. ``audit(user, action, target)`` is the one call the
rest of the application (and the investigation pages) use; it writes in its
own transaction so that a view is recorded even if the page then fails.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, func, select

from store.accounts import Account, AuditEntry
from store.instance import Instance
from web.accounts import Principal

#: Stable action names (filters in the audit page and in outside tools rely on them).
ACTIONS = ("login", "logout", "login_failed", "view_item", "view_investigation", "view_verification",
           "download_labels", "issue_labels", "register_station", "add_person", "issue_badges", "add_unit",
           "rotate_key", "revoke_key", "add_account", "disable_account", "enable_account", "scan_refusal")


def record(instance: Instance, user: Principal | str, action: str, target: str, *, now: datetime,
           detail: str = "", address: str = "") -> None:
    name, role = (user, "") if isinstance(user, str) else (user.name, user.role)
    with instance.db.write_session() as s:
        s.add(AuditEntry(at=now, username=name[:64], role=role[:16], action=action[:40], target=target[:200],
                         detail=detail[:2000], address=address[:64]))


def audit(user: Principal | str, action: str, target: str, detail: str = "") -> None:
    """Record that ``user`` did ``action`` on ``target``, inside a request of the web application."""
    from flask import request

    from web.state import state

    st = state()
    record(st.instance, user, action, target, now=st.now(), detail=detail, address=request.remote_addr or "")


def _matching(action: str | None, target: str | None, units: frozenset[str] | None) -> Select[AuditEntry]:
    query = select(AuditEntry)
    if units is not None:
        # by the accounts of these units: an entry names its account, whose unit is fixed when it is made
        query = query.where(AuditEntry.username.in_(select(Account.username).where(Account.unit.in_(units))))
    if action:
        query = query.where(AuditEntry.action == action)
    if target:
        query = query.where(AuditEntry.target == target)
    return query


def entries(instance: Instance, *, limit: int = 200, offset: int = 0, action: str | None = None,
            target: str | None = None, units: frozenset[str] | None = None) -> list[AuditEntry]:
    """The entries with that action and target (each if given), newest first, ``offset`` of them skipped.

    ``units``: only the entries made by accounts bound to one of these units (None: every entry, also
    failed logins under names that are no account's)."""
    query = _matching(action, target, units).order_by(AuditEntry.id.desc()).offset(offset).limit(limit)
    with instance.db.session() as s:
        return list(s.scalars(query))


def entry_count(instance: Instance, *, action: str | None = None, target: str | None = None,
                units: frozenset[str] | None = None) -> int:
    """How many entries :func:`entries` would page through."""
    with instance.db.session() as s:
        return s.scalar(select(func.count()).select_from(_matching(action, target, units).subquery())) or 0
