"""Items: the list (filtered, within the scope) and each item's page with its custody timeline."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template, request
from flask_babel import get_locale
from flask_babel import gettext as _
from sqlalchemy import func, select

from custody.labels import ItemKind
from store.models import Item, Subject
from web.audit import audit
from web.auth import current_principal, current_scope, login_required
from web.errors import error_response
from web.lookup import contains_text, find_item
from web.names import KINDS, name_of
from web.scope import unit_tree
from web.state import state
from web.templating import page_count, page_number, page_within, search_text
from web.timeline import people_names, timeline, verified_label

bp = Blueprint("items", __name__)
PAGE = 50


@bp.route("/items")
@login_required
def index() -> Any:
    st = state()
    scope = current_scope()
    exam = st.exam()
    q = search_text("q", 64)
    subject = search_text("subject", 8)
    kind = request.args.get("kind", "").strip()[:32]
    page = page_number()
    query = select(Item).where(Item.exam == exam)
    if q:  # in any case on both databases (LIKE ignores case on SQLite only)
        query = query.where(contains_text(q, Item.item_id))
    if subject:
        query = query.where(Item.subject == subject)
    if kind:
        try:
            query = query.where(Item.kind == int(ItemKind.from_slug(kind)))
        except ValueError:
            return _unknown_kind(kind)
    if not scope.everything:
        query = query.where(Item.destination.in_(sorted(scope.units or ())))
    with st.instance.db.session() as s:
        total = s.scalar(select(func.count()).select_from(query.subquery())) or 0
        page = page_within(page, total, PAGE)
        rows = list(s.scalars(query.order_by(Item.id).offset((page - 1) * PAGE).limit(PAGE)))
        subjects = list(s.scalars(select(Subject).where(Subject.exam == exam).order_by(Subject.starts_at)))
    states = st.item_states(exam) if rows else {}
    pages = page_count(total, PAGE)
    return render_template("items.html", rows=rows, states=states, total=total, page=page, pages=pages,
                           q=q, subject=subject, kind=kind, subjects=subjects, kinds=_listed_kinds(),
                           tree=unit_tree(st.instance))


def _unknown_kind(kind: str) -> Any:
    """400 naming the kind asked for and the kinds there are, in the page's language.

    The kind comes from a link, a bookmark or a typed address; whoever fixes it needs the codes.
    """
    english = str(get_locale() or "zh_CN").startswith("en")
    listed = (", " if english else "、").join(_("%(name)s (%(code)s)", name=name_of(KINDS, k), code=k)
                                             for k in _listed_kinds())
    return error_response(400, _("There is no item kind %(kind)r; the kinds are: %(kinds)s.", kind=kind,
                                 kinds=listed), code="unknown_kind")


def _listed_kinds() -> list[str]:
    """The kinds the item list offers (a staff badge is not an item of the list)."""
    return [k.slug for k in ItemKind if k != ItemKind.BADGE]


@bp.route("/items/<item_id>")
@login_required
def show(item_id: str) -> Any:
    st = state()
    scope = current_scope()
    exam = st.exam()
    item = find_item(st.instance, exam, item_id, scope)
    principal = current_principal()
    assert principal is not None
    audit(principal, "view_item", item.item_id)
    label, label_error = verified_label(item, st.ledger)
    entries = timeline(st.ledger, exam, item)
    state_now = st.item_states(exam).get(item.item_id)
    with st.instance.db.session() as s:
        contents = list(s.scalars(select(Item.item_id).where(Item.exam == exam, Item.parent_box == item.item_id)
                                  .order_by(Item.item_id)))
        subject = s.scalars(select(Subject).where(Subject.exam == exam, Subject.code == item.subject)).first()
    return render_template("item.html", item=item, label=label, label_error=label_error, entries=entries,
                           state_now=state_now, people=people_names(st.instance), tree=unit_tree(st.instance),
                           contents=contents, subject=subject, kind=ItemKind(item.kind).slug, scope=scope)
