"""Signing labels for items and badges for staff, in bulk."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, select, update

from custody.keyring import Role
from custody.labels import ItemKind, LabelPayload, Signer, issue_label
from store.instance import Instance
from store.models import Item, Person


def _whole_second(now: datetime) -> datetime:
    return now.replace(microsecond=0)


def item_payload(row: Item, issued_at: datetime) -> LabelPayload:
    return LabelPayload(item_id=row.item_id, kind=ItemKind(row.kind), exam=row.exam, subject=row.subject,
                        destination=row.destination, count=row.count, issued_at=issued_at, seal=row.seal,
                        parent_box=row.parent_box)


def issue_item_labels(instance: Instance, exam: str, now: datetime, *, reissue: bool = False,
                      item_ids: list[str] | None = None) -> int:
    """Sign a label for every item of ``exam`` that has none (or all, with ``reissue``).

    Returns how many labels were signed. A reissued label replaces the old
    text in the item table; the old label still verifies (it is signed), and
    the custody log records which one was issued when.
    """
    issued_at = _whole_second(now)
    signer = instance.keys.signer(Role.LABEL_ISSUER, instance.institute, issued_at)
    with instance.db.session() as s:
        query = select(Item).where(Item.exam == exam).order_by(Item.id)
        if not reissue:
            query = query.where(Item.label_text.is_(None))
        if item_ids is not None:
            query = query.where(Item.item_id.in_(item_ids))
        rows = list(s.scalars(query))
    updates = [{"row_id": r.id, "label_text": issue_label(item_payload(r, issued_at), signer),
                "issued_at": issued_at, "issuer_kid": signer.kid.hex()} for r in rows]
    if updates:
        with instance.db.write_session() as s:
            s.connection().execute(
                update(cast(Table, Item.__table__)).where(Item.__table__.c.id == bindparam("row_id")).values(
                    label_text=bindparam("label_text"), issued_at=bindparam("issued_at"),
                    issuer_kid=bindparam("issuer_kid")),
                updates)
    return len(updates)


def badge_payload(person: Person, exam: str, issued_at: datetime) -> LabelPayload:
    return LabelPayload(item_id=person.staff_id, kind=ItemKind.BADGE, exam=exam, subject="",
                        destination=person.unit, count=1, issued_at=issued_at, holder_name=person.name)


def issue_badges(instance: Instance, exam: str, now: datetime, signer: Signer | None = None) -> int:
    """Sign a staff badge for every person without one."""
    issued_at = _whole_second(now)
    signer = signer or instance.keys.signer(Role.BADGE_ISSUER, instance.institute, issued_at)
    with instance.db.write_session() as s:
        people = list(s.scalars(select(Person).where(Person.badge_text.is_(None))))
        for person in people:
            person.badge_text = issue_label(badge_payload(person, exam, issued_at), signer)
            person.badge_issued_at = issued_at
    return len(people)
