"""Labels: issue them (administrators) and download PDF sheets for a subject, a site or a box."""

from __future__ import annotations

import io
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from custody.errors import NotFound
from store.issuance import issue_badges, issue_item_labels
from store.models import Item, Subject
from store.queries import printable_labels
from web.audit import audit
from web.auth import current_principal, current_scope, has_role, roles_required
from web.forms import PostForm
from web.scope import unit_tree
from web.state import state

bp = Blueprint("labels", __name__)


@bp.route("/labels")
@roles_required("officer")
def index() -> Any:
    st = state()
    scope = current_scope()
    exam = st.exam()
    tree = unit_tree(st.instance)
    with st.instance.db.session() as s:
        subjects = list(s.scalars(select(Subject).where(Subject.exam == exam).order_by(Subject.starts_at)))
    units = [(c, u) for c, u in sorted(tree.units.items())
             if scope.allows(c) and u.kind in ("county", "zone", "site", "grading", "city")]
    return render_template("labels.html", subjects=subjects, units=units, issue_form=PostForm(),
                           can_issue=has_role())


@bp.route("/labels/pdf")
@roles_required("officer")
def pdf() -> Any:
    st = state()
    scope = current_scope()
    exam = st.exam()
    subject = request.args.get("subject", "").strip()[:8] or None
    unit = request.args.get("unit", "").strip()[:32] or None
    box = request.args.get("box", "").strip()[:64] or None
    lang = request.args.get("lang", "zh")
    if lang not in ("zh", "en"):
        abort(400)
    if unit is not None and not scope.allows(unit):
        abort(404)
    if box is not None:
        with st.instance.db.session() as s:
            row = s.scalars(select(Item).where(Item.exam == exam, Item.item_id == box)).first()
        if row is None or not scope.allows(row.destination):
            abort(404)
    if unit is None and not scope.everything:
        unit = scope.root
    try:
        chosen = printable_labels(st.instance, exam, subject=subject, unit=unit, box=box)
    except NotFound:
        abort(404)
    chosen = [c for c in chosen if scope.allows(c.destination)]
    if not chosen:
        flash(_("No labelled items match. Issue the labels first or widen the choice."), "error")
        return redirect(url_for("labels.index"), 303)
    limit = current_app.config["MAX_LABELS_PER_PDF"]
    if len(chosen) > limit:
        flash(_("%(count)d labels match; at most %(limit)d fit one download. Choose a subject or a site.",
                count=len(chosen), limit=limit), "error")
        return redirect(url_for("labels.index"), 303)
    from printing.sheet import write_label_pdf

    buffer = io.BytesIO()
    write_label_pdf(chosen, buffer, lang=lang, workers=0 if len(chosen) < 400 else None)
    what = ",".join(f"{k}={v}" for k, v in (("subject", subject), ("unit", unit), ("box", box)) if v) or "all"
    principal = current_principal()
    assert principal is not None
    audit(principal, "download_labels", what, f"{len(chosen)} labels")
    buffer.seek(0)
    name = "labels-" + "-".join(v for v in (subject, unit, box) if v) if what != "all" else "labels-all"
    return send_file(buffer, mimetype="application/pdf", as_attachment=True, download_name=f"{name}.pdf")


@bp.route("/labels/issue", methods=["POST"])
@roles_required()
def issue() -> Any:
    form = PostForm()
    if not form.validate_on_submit():
        abort(400)
    st = state()
    exam = st.exam()
    now = st.now()
    signed = issue_item_labels(st.instance, exam, now)
    badges = issue_badges(st.instance, exam, now)
    logged = st.ledger.record_labels(exam)
    audit(current_principal(), "issue_labels", exam, f"{signed} labels, {badges} badges")  # type: ignore[arg-type]
    flash(_("%(labels)d labels and %(badges)d badges signed; %(logged)d labels entered in the log.",
            labels=signed, badges=badges, logged=logged), "info")
    return redirect(url_for("labels.index"), 303)
