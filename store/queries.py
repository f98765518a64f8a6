"""Read-side queries shared by the command line and the web application."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import or_, select

from custody.errors import MalformedLabel, NotFound
from custody.keyring import KeyRing, PublicKey, Role, key_id
from custody.labels import ItemKind
from store.instance import Instance
from store.models import Exam, Item, Subject, Unit

if TYPE_CHECKING:
    from printing.sheet import PrintableLabel

T = TypeVar("T")


def label_text_of(instance: Instance, exam: str, item_id: str) -> str:
    with instance.db.session() as s:
        row = s.scalars(select(Item).where(Item.exam == exam, Item.item_id == item_id)).first()
    if row is None:
        raise NotFound(f"no item {item_id!r} in exam {exam!r}")
    if row.label_text is None:
        raise NotFound(f"item {item_id} has no label yet; run `custody labels issue`")
    return row.label_text


def check_exam_and_subject(instance: Instance, exam: str, subject: str | None = None) -> None:
    """:class:`NotFound` unless the exam has been imported and, if given, has the subject.

    A filter on a name that does not exist would otherwise list nothing and look like an empty
    exam; ``investigate`` refuses the same names in the same words.
    """
    with instance.db.session() as s:
        if s.get(Exam, exam) is None:
            known = list(s.scalars(select(Exam.code).order_by(Exam.code)))
            raise NotFound(f"no exam {exam!r} has been imported"
                           + (f"; exams: {', '.join(known)}" if known else ""))
        if subject is not None:
            codes = list(s.scalars(select(Subject.code).where(Subject.exam == exam).order_by(Subject.id)))
            if subject not in codes:
                raise NotFound(f"no subject {subject!r} in exam {exam}; subjects: {', '.join(codes)}")


def keyring_from_json(text: str) -> KeyRing:
    """A key ring from the JSON of ``custody keys list --json`` (or an export's keys.json).

    :class:`MalformedLabel` if the text is not such a list. For a bad entry the message names the
    entry (its position, from 1, and its kid if it has one) and the field that is missing or wrong,
    so that someone holding a hand-edited file of dozens of keys can find it.
    """
    try:
        entries = json.loads(text)
    except ValueError as exc:
        raise MalformedLabel(f"the key file is not a custody key list: {exc}") from None
    if isinstance(entries, dict):
        entries = entries.get("keys", [])
    if not isinstance(entries, list):
        raise MalformedLabel("the key file is not a custody key list: expected a JSON array of keys, "
                             f"found a JSON {type(entries).__name__}")
    return KeyRing(_public_key_from_json(position, entry) for position, entry in enumerate(entries, start=1))


def _public_key_from_json(position: int, entry: object) -> PublicKey:
    """One entry of a key list; :class:`MalformedLabel` naming the entry and the field if it is wrong."""
    where = f"the key file is not a custody key list: entry {position}"
    if not isinstance(entry, dict):
        raise MalformedLabel(f"{where} is not a JSON object but a JSON {type(entry).__name__}")
    if isinstance(entry.get("kid"), str) and entry["kid"]:
        where += f" (kid {entry['kid']})"

    def field(name: str, parse: Callable[[Any], T]) -> T:
        if name not in entry:
            raise MalformedLabel(f"{where} has no {name!r}")
        try:
            return parse(entry[name])
        except (ValueError, TypeError) as exc:
            raise MalformedLabel(f"{where}: {name!r} is not valid: {exc}") from None

    def optional(name: str, parse: Callable[[Any], T]) -> T | None:
        return field(name, parse) if entry.get(name) else None

    def raw_key(value: Any) -> bytes:
        raw = base64.b64decode(value, validate=True)
        key_id(raw)  # 32 bytes, or ValueError saying how many
        return raw

    return PublicKey(public_raw=field("public_key", raw_key), role=field("role", Role),
                     owner=field("owner", _text), valid_from=field("valid_from", datetime.fromisoformat),
                     valid_until=optional("valid_until", datetime.fromisoformat),
                     revoked_at=optional("revoked_at", datetime.fromisoformat),
                     revocation_reason=optional("revocation_reason", _text))


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, found {json.dumps(value)}")
    return value


def units_below(instance: Instance, unit: str) -> set[str]:
    """The unit and every unit under it."""
    with instance.db.session() as s:
        edges = s.execute(select(Unit.code, Unit.parent)).all()
    children: dict[str, list[str]] = {}
    for code, parent in edges:
        if parent:
            children.setdefault(parent, []).append(code)
    found, todo = set(), [unit]
    while todo:
        code = todo.pop()
        if code not in found:
            found.add(code)
            todo.extend(children.get(code, ()))
    return found


def printable_labels(instance: Instance, exam: str, *, subject: str | None = None, unit: str | None = None,
                     box: str | None = None, item: str | None = None) -> list[PrintableLabel]:
    """The labelled items matching the filters, with their names resolved for printing."""
    from printing.sheet import PrintableLabel

    query = select(Item).where(Item.exam == exam, Item.label_text.is_not(None)).order_by(Item.id)
    if subject:
        query = query.where(Item.subject == subject)
    if unit:
        query = query.where(Item.destination.in_(units_below(instance, unit)))
    if box:
        query = query.where(or_(Item.item_id == box, Item.parent_box == box))
    if item:
        query = query.where(Item.item_id == item)
    with instance.db.session() as s:
        rows = s.scalars(query).all()
        names = dict(s.execute(select(Unit.code, Unit.name)).all())
        kinds = dict(s.execute(select(Unit.code, Unit.kind)).all())
        parents = dict(s.execute(select(Unit.code, Unit.parent)).all())
        subjects = dict(s.execute(select(Subject.code, Subject.name).where(Subject.exam == exam)).all())
        exam_row = s.get(Exam, exam)
    if item and not rows:
        raise NotFound(f"no labelled item {item!r} in exam {exam!r}")
    exam_name = exam_row.name if exam_row else exam
    result = []
    for r in rows:
        is_room = kinds.get(r.destination) == "room"
        site = parents.get(r.destination) if is_room else r.destination
        result.append(PrintableLabel(
            text=r.label_text or "", item_id=r.item_id, kind=ItemKind(r.kind), exam_name=exam_name,
            subject_name=subjects.get(r.subject, r.subject), site_name=names.get(site or "", site or ""),
            room_name=names.get(r.destination) if is_room else None, count=r.count, seal=r.seal,
            destination=r.destination))
    return result
