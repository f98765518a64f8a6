"""Finding things within the principal's scope; anything outside is "not found"."""

from __future__ import annotations

from flask import abort
from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import QueryableAttribute
from werkzeug.datastructures import MultiDict

from store.instance import Instance
from store.models import Item, Station
from web.scope import Scope


def holds_nul(*fields: MultiDict[str, str]) -> bool:
    """Whether a key or value of these request fields (the query string, a form) holds a NUL: never meant,
    and PostgreSQL refuses it in a query or a row (a 500 wherever a page passes it on)."""
    return any("\x00" in key or "\x00" in value for values in fields for key, value in values.items(multi=True))


def find_item(instance: Instance, exam: str, item_id: str, scope: Scope) -> Item:
    if len(item_id) > 64:
        abort(404)
    with instance.db.session() as s:
        item = s.scalars(select(Item).where(Item.exam == exam, Item.item_id == item_id)).first()
    if item is None or not scope.allows(item.destination):
        abort(404)
    return item


def find_station(instance: Instance, code: str, scope: Scope) -> Station:
    if len(code) > 64:
        abort(404)
    with instance.db.session() as s:
        station = s.get(Station, code)
    if station is None or not scope.allows(station.unit):
        abort(404)
    return station


def contains_text(text: str, *columns: QueryableAttribute[str]) -> ColumnElement[bool]:
    """Any of ``columns`` contains ``text``, ignoring ASCII case (as on SQLite, also on PostgreSQL); ``%`` and
    ``_`` in the text are matched as themselves."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return or_(*(column.ilike(f"%{escaped}%", escape="\\") for column in columns))
