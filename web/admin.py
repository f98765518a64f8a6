"""Keys (rotate, revoke), accounts and the audit trail."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import Select, func, or_, select

from custody.errors import CustodyError, NotFound
from custody.keyring import Role
from custody.plan import UnitKind
from store.models import KeyRecord, Station
from web.accounts import ROLES, AccountError, create_account, list_accounts, set_disabled
from web.audit import ACTIONS, audit, entries, entry_count
from web.auth import current_principal, current_scope, has_role, login_required, of_the_institute, roles_required
from web.forms import AccountForm, AccountToggleForm, RevokeForm, RotateForm
from web.lookup import contains_text
from web.names import KEY_ROLES, name_of
from web.names import ROLES as ROLE_NAMES
from web.scope import unit_tree
from web.state import WebState, state
from web.templating import local_time, page_count, page_number, page_within, search_text

bp = Blueprint("admin", __name__)
log = logging.getLogger(__name__)
#: Rows on a page of keys, and of the audit trail.
KEYS_PAGE = AUDIT_PAGE = 100


# --- keys -------------------------------------------------------------------------------------

def _visible_keys() -> Select[KeyRecord]:
    """The keys the principal may see, as a query: the whole registry for administrators; for others the
    institute's and witnesses' public keys and the station keys of their units."""
    scope = current_scope()
    if scope.everything:
        return select(KeyRecord)
    # Read in the database: the city has a station key for every room.
    theirs = select(Station.code).where(Station.unit.in_(sorted(scope.units or ())))
    return select(KeyRecord).where(or_(KeyRecord.role != Role.STATION.value, KeyRecord.owner.in_(theirs)))


def _keys_page(revoke_form: RevokeForm, status: int = 200) -> Any:
    q = search_text()
    page = page_number()
    listed = _visible_keys()
    if q:
        listed = listed.where(contains_text(q, KeyRecord.kid, KeyRecord.owner))
    # Counted and paged in the database: the city has a station key for every room.
    with state().instance.db.session() as s:
        total = s.scalar(select(func.count()).select_from(listed.subquery())) or 0
        page = page_within(page, total, KEYS_PAGE)
        rows = list(s.scalars(listed.order_by(KeyRecord.id).offset((page - 1) * KEYS_PAGE).limit(KEYS_PAGE)))
    return render_template("keys.html", rows=rows, rotate_form=RotateForm(), revoke_form=revoke_form,
                           can_rotate=has_role(), can_revoke=has_role("officer"), now=state().now(), q=q,
                           total=total, page=page, pages=page_count(total, KEYS_PAGE)), status


@bp.route("/keys")
@login_required
def keys() -> Any:
    return _keys_page(RevokeForm())


def _log_registry_now(st: WebState, what: str) -> str | None:
    """Log the registry's new facts (a key rotated or revoked here) now, through the writer: an empty
    batch does that, as `custody keys revoke` does; after an exam there may be no batch for weeks.
    Returns why the log cannot take them now (closing, no log key), None once they are in it; the
    next batch logs what it could not."""
    try:
        st.ledger.submit([])
    except CustodyError as exc:
        log.warning("%s in the registry; not yet in the custody log: %s", what, exc)
        return str(exc)
    return None


@bp.route("/keys/rotate", methods=["POST"])
@roles_required()
def rotate() -> Any:
    form = RotateForm()
    if not form.validate_on_submit():
        abort(400)
    st = state()
    key = st.instance.keys.rotate(Role(form.role.data), st.instance.institute, st.now())
    st.keys_changed()
    audit(current_principal(), "rotate_key", form.role.data or "", key.kid_hex)  # type: ignore[arg-type]
    error = _log_registry_now(st, f"new {form.role.data} key {key.kid_hex}")
    if error is not None:
        flash(_("The new key is in the key registry but not yet in the custody log: %(error)s. It enters the "
                "log with the next batch.", error=error), "warning")
    flash(_("New %(role)s key %(kid)s; the old key no longer signs.", role=name_of(KEY_ROLES, form.role.data),
            kid=key.kid_hex), "info")
    return redirect(url_for("admin.keys"), 303)


@bp.route("/keys/revoke", methods=["POST"])
@roles_required("officer")
def revoke() -> Any:
    form = RevokeForm()
    if not form.validate_on_submit():
        return _keys_page(form, 400)
    st = state()
    kid = (form.kid.data or "").lower()
    if not has_role():
        # Officers revoke the station keys of their own units, nothing else.
        with st.instance.db.session() as s:
            theirs = s.scalars(_visible_keys().where(KeyRecord.role == Role.STATION.value, KeyRecord.kid == kid)
                               .limit(1)).first()
        if theirs is None:
            abort(404)
    at = st.now()
    try:
        revoked = st.instance.keys.revoke(kid, at, (form.reason.data or "").strip())
    except NotFound:
        abort(404)
    st.keys_changed()
    audit(current_principal(), "revoke_key", kid, form.reason.data or "")  # type: ignore[arg-type]
    error = _log_registry_now(st, f"key {kid} revoked")
    if error is not None:
        flash(_("The revocation is in the key registry (the key is refused from now on) but not yet in the "
                "custody log: %(error)s. It enters the log with the next batch.", error=error), "warning")
    before = min((k.revoked_at for k in revoked if k.revoked_at is not None and k.revoked_at < at), default=None)
    if before is not None:  # revoked before: the earlier revocation and its reason stand
        flash(_("Key %(kid)s was already revoked at %(time)s; that revocation stands.", kid=kid,
                time=local_time(before)), "info")
    else:
        flash(_("Key %(kid)s is revoked from now on.", kid=kid), "info")
    return redirect(url_for("admin.keys"), 303)


# --- accounts ---------------------------------------------------------------------------------

@bp.route("/accounts", methods=["GET", "POST"])
@roles_required()
def accounts() -> Any:
    st = state()
    form = AccountForm()
    form.role.choices = [(r, str(ROLE_NAMES[r])) for r in ROLES]
    tree = unit_tree(st.instance)
    # an account's unit is an office (city, county, site, secure room, ...), never an exam room: the city's
    # ~1,900 rooms made the page 109 KiB
    form.unit.choices = [("", "—")] + [(c, f"{u.name} ({c})") for c, u in sorted(tree.units.items())
                                       if u.kind != UnitKind.ROOM.value]
    status = 200
    if form.is_submitted():
        if form.validate():
            try:
                create_account(st.instance, (form.username.data or "").strip(), form.password.data or "",
                               form.role.data or "", form.unit.data or None, st.now(),
                               display_name=(form.display_name.data or "").strip(), hasher=st.hasher)
            except AccountError as exc:
                flash(str(exc), "error")
                status = 400
            else:
                audit(current_principal(), "add_account", form.username.data or "",  # type: ignore[arg-type]
                      f"role={form.role.data} unit={form.unit.data}")
                flash(_("Account %(name)s created.", name=form.username.data), "info")
                return redirect(url_for("admin.accounts"), 303)
        else:
            status = 400
    return render_template("accounts.html", rows=list_accounts(st.instance), form=form,
                           toggle=AccountToggleForm(), tree=tree), status


@bp.route("/accounts/toggle", methods=["POST"])
@roles_required()
def toggle_account() -> Any:
    form = AccountToggleForm()
    if not form.validate_on_submit():
        abort(400)
    principal = current_principal()
    assert principal is not None
    account_id = int(form.account_id.data)
    if account_id == principal.account_id:
        flash(_("You cannot disable your own account."), "error")
        return redirect(url_for("admin.accounts"), 303)
    try:
        account = set_disabled(state().instance, account_id, bool(form.disable.data))
    except AccountError:
        abort(404)
    audit(principal, "disable_account" if form.disable.data else "enable_account", account.username)
    return redirect(url_for("admin.accounts"), 303)


# --- audit trail ------------------------------------------------------------------------------

@bp.route("/audit")
@roles_required("auditor")
def audit_log() -> Any:
    action = request.args.get("action", "")
    if action and action not in ACTIONS:
        action = ""
    target = search_text("target", 200)
    page = page_number()
    # An auditor of a county reads what the accounts of its units did (分级负责); the institute's, everything.
    units = None if of_the_institute() else current_scope().units
    # Counted and paged in the database: it showed the newest 300 and nothing older.
    instance = state().instance
    total = entry_count(instance, action=action or None, target=target or None, units=units)
    page = page_within(page, total, AUDIT_PAGE)
    rows = entries(instance, limit=AUDIT_PAGE, offset=(page - 1) * AUDIT_PAGE, action=action or None,
                   target=target or None, units=units)
    return render_template("audit.html", rows=rows, actions=ACTIONS, action=action, target=target, total=total,
                           page=page, pages=page_count(total, AUDIT_PAGE), scoped=units is not None)
