"""Units, stations and people: the registry pages (scoped; changes need the right role)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError

from custody.keyring import Role
from custody.plan import ALLOWED_PARENTS, UnitKind
from store.issuance import issue_badges
from store.models import KeyRecord, Person, Station, Unit
from store.stations import KeyTaken, StationElsewhere, parse_public_key, register_station
from web.audit import audit
from web.auth import current_principal, current_scope, has_role, login_required, roles_required
from web.forms import PersonForm, PostForm, StationForm, UnitForm
from web.lookup import contains_text
from web.names import UNIT_KINDS
from web.scope import Scope, UnitTree, unit_tree
from web.state import state
from web.templating import page_count, page_number, page_within, search_text

bp = Blueprint("registry", __name__)
#: Rows on a page of stations and of people.
PAGE = 100
#: The kinds a unit may sit under (the parent form offers only these: not the city's ~1,900 rooms).
PARENT_KINDS = frozenset(kind.value for kinds in ALLOWED_PARENTS.values() for kind in kinds)


def _unit_choices(scope: Scope, kinds: Collection[str] | None = None) -> list[tuple[str, str]]:
    tree = unit_tree(state().instance)
    return [(code, f"{u.name} ({code})") for code, u in sorted(tree.units.items())
            if scope.allows(code) and (kinds is None or u.kind in kinds)]


# --- units ------------------------------------------------------------------------------------

@bp.route("/units", methods=["GET", "POST"])
@login_required
def units() -> Any:
    st = state()
    scope = current_scope()
    tree = unit_tree(st.instance)
    form = UnitForm()
    form.kind.choices = [(k.value, str(UNIT_KINDS[k.value])) for k in UnitKind]
    form.parent.choices = [("", "—")] + _unit_choices(scope, PARENT_KINDS)
    if form.is_submitted():
        if not has_role():
            abort(403)
        if form.validate():
            kind = UnitKind(form.kind.data)
            parent = form.parent.data or None
            allowed = ALLOWED_PARENTS[kind]
            parent_kind = tree.kind(parent)
            if (parent is None and allowed) or (parent is not None and UnitKind(parent_kind) not in allowed):
                flash(_("A %(kind)s cannot sit under that unit.", kind=UNIT_KINDS[kind.value]), "error")
            elif form.code.data in tree.units:
                flash(_("The unit code %(code)s is taken.", code=form.code.data), "error")
            else:
                with st.instance.db.write_session() as s:
                    s.add(Unit(code=form.code.data, kind=kind.value, name=form.name.data.strip(), parent=parent,
                               candidates=0, subjects=""))
                audit(current_principal(), "add_unit", form.code.data, form.name.data)  # type: ignore[arg-type]
                flash(_("Unit %(code)s added.", code=form.code.data), "info")
                return redirect(url_for("registry.units"))
        else:
            return render_template("units.html", tree=tree, scope=scope, form=form, roots=_roots(tree, scope)), 400
    return render_template("units.html", tree=tree, scope=scope, form=form, roots=_roots(tree, scope))


def _roots(tree: UnitTree, scope: Scope) -> Sequence[str | None]:
    return tree.roots() if scope.everything else [scope.root]


# --- stations ---------------------------------------------------------------------------------


@bp.route("/stations", methods=["GET", "POST"])
@login_required
def stations() -> Any:
    st = state()
    scope = current_scope()
    form = StationForm()
    form.unit.choices = _unit_choices(scope)
    status = 200
    if form.is_submitted():
        if not has_role("officer"):
            abort(403)
        if form.validate():
            raw = parse_public_key(form.public_key.data or "")
            if raw is None:
                flash(_("The public key must be 32 bytes, written in hex or base64."), "error")
                status = 400
            else:
                status = _register_station(form, raw, scope)
                if status == 303:
                    return redirect(url_for("registry.stations"), 303)
        else:
            status = 400
    q = search_text()
    page = page_number()
    listed = select(Station)
    station_keys = select(KeyRecord).where(KeyRecord.role == Role.STATION.value)
    if not scope.everything:  # the officer's units only, not the whole city's stations and keys
        units = sorted(scope.units or ())
        listed = listed.where(Station.unit.in_(units))
        station_keys = station_keys.where(KeyRecord.kid.in_(select(Station.kid).where(Station.unit.in_(units))))
    if q:
        listed = listed.where(or_(contains_text(q, Station.code, Station.unit, Station.name),
                                  Station.unit.in_(select(Unit.code).where(contains_text(q, Unit.name)))))
    # Counted and paged in the database: the city has a station for every room.
    with st.instance.db.session() as s:
        total = s.scalar(select(func.count()).select_from(listed.subquery())) or 0
        page = page_within(page, total, PAGE)
        rows = list(s.scalars(listed.order_by(Station.code).offset((page - 1) * PAGE).limit(PAGE)))
        kids = sorted({r.kid for r in rows if r.kid})
        keys = {k.kid: k for k in s.scalars(station_keys.where(KeyRecord.kid.in_(kids)))} if kids else {}
    return render_template("stations.html", rows=rows, keys=keys, form=form, tree=unit_tree(st.instance),
                           can_edit=has_role("officer"), q=q, total=total, page=page,
                           pages=page_count(total, PAGE)), status


def _register_station(form: StationForm, raw: bytes, scope: Scope) -> int:
    st = state()
    code, unit = form.code.data or "", form.unit.data or ""
    if not scope.allows(unit):
        abort(404)
    try:
        kid = register_station(st.instance, code, unit, form.name.data or "", raw, st.now())
    except StationElsewhere:
        flash(_("Station %(code)s already exists at another unit.", code=code), "error")
        return 400
    except KeyTaken:
        flash(_("This public key is already registered."), "error")
        return 400
    st.keys_changed()
    audit(current_principal(), "register_station", code, f"unit={unit} kid={kid}")  # type: ignore[arg-type]
    flash(_("Station %(code)s registered with key %(kid)s.", code=code, kid=kid), "info")
    return 303


# --- people -----------------------------------------------------------------------------------

@bp.route("/people", methods=["GET", "POST"])
@login_required
def people() -> Any:
    st = state()
    scope = current_scope()
    form = PersonForm()
    form.unit.choices = _unit_choices(scope)
    status = 200
    if form.is_submitted():
        if not has_role("officer"):
            abort(403)
        if form.validate():
            if not scope.allows(form.unit.data):
                abort(404)
            try:
                with st.instance.db.write_session() as s:
                    if s.get(Person, form.staff_id.data) is not None:
                        raise IntegrityError("duplicate", None, Exception())
                    s.add(Person(staff_id=form.staff_id.data, name=(form.name.data or "").strip(),
                                 unit=form.unit.data))
            except IntegrityError:
                flash(_("The staff id %(id)s is taken.", id=form.staff_id.data), "error")
                status = 400
            else:
                audit(current_principal(), "add_person", form.staff_id.data or "",  # type: ignore[arg-type]
                      f"unit={form.unit.data}")
                flash(_("%(name)s added; issue the badges to print a badge.", name=form.name.data), "info")
                return redirect(url_for("registry.people"), 303)
        else:
            status = 400
    q = search_text()
    page = page_number()
    listed = select(Person)
    if not scope.everything:
        listed = listed.where(Person.unit.in_(sorted(scope.units or ())))
    if q:
        listed = listed.where(or_(contains_text(q, Person.staff_id, Person.name, Person.unit),
                                  Person.unit.in_(select(Unit.code).where(contains_text(q, Unit.name)))))
    # Counted and paged in the database: the city has ~4,000 people.
    with st.instance.db.session() as s:
        total = s.scalar(select(func.count()).select_from(listed.subquery())) or 0
        page = page_within(page, total, PAGE)
        rows = list(s.scalars(listed.order_by(Person.unit, Person.staff_id).offset((page - 1) * PAGE).limit(PAGE)))
    return render_template("people.html", rows=rows, form=form, badge_form=PostForm(), tree=unit_tree(st.instance),
                           can_edit=has_role("officer"), can_issue=has_role(), q=q, total=total, page=page,
                           pages=page_count(total, PAGE)), status


@bp.route("/people/badges", methods=["POST"])
@roles_required()
def badges() -> Any:
    form = PostForm()
    if not form.validate_on_submit():
        abort(400)
    st = state()
    count = issue_badges(st.instance, st.exam(), st.now())
    audit(current_principal(), "issue_badges", st.exam(), f"{count} badges")  # type: ignore[arg-type]
    flash(_("%(count)d staff badges signed.", count=count), "info")
    return redirect(url_for("registry.people"), 303)
