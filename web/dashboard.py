"""The exam-day dashboard."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for

from store.ledger import SEVERITY_ORDER
from web.auth import current_principal, current_scope, has_role, login_required, of_the_institute
from web.logview import checkpoint_summary, last_verification
from web.names import STAGE_ORDER, TIER_ORDER
from web.overview import build_overview, load_subjects
from web.scope import unit_tree
from web.state import state
from web.templating import page_count, page_number, page_within, search_text
from web.verification import VERIFICATION_ROLES

bp = Blueprint("dashboard", __name__)
ALERTS_PAGE = 100
#: Overviews kept (one per scope and view): a city's units with officers, both views, with room to spare.
OVERVIEWS_KEPT = 256


@bp.route("/")
def home() -> Any:
    if current_principal() is None:
        return redirect(url_for("auth.login"))
    return redirect(url_for("dashboard.index"))


@bp.route("/dashboard")
@login_required
def index() -> Any:
    st = state()
    scope = current_scope()
    exam = st.exam()
    boxes = request.args.get("view") == "boxes"
    now = st.now()
    size = st.ledger.size()
    tree = unit_tree(st.instance)

    def compute() -> Any:
        items = st.items(exam)
        subjects = load_subjects(st.instance, exam)
        return build_overview(items, st.item_states(exam, size), subjects, scope, tree, now, st.deadlines,
                              boxes=boxes)

    # Recomputed when the log grows, the minute changes, or for another scope.
    overview = st.cached(("overview", exam, scope.root, boxes, size, now.replace(second=0, microsecond=0)), compute,
                         keep=OVERVIEWS_KEPT)
    units = None if scope.everything else set(scope.units or ())
    # The most severe across all of them (a broken seal logged early is not pushed out by later warnings).
    alerts = st.ledger.alerts(units, limit=15, most_severe_first=True)
    return render_template(
        "dashboard.html", overview=overview, alerts=alerts, checkpoint=checkpoint_summary(st.ledger, st.instance),
        verification=last_verification(st.instance),
        verification_link=has_role(*VERIFICATION_ROLES) and of_the_institute(), tree=tree,
        alert_total=st.ledger.alert_count(units), scope=scope, exam=exam, now=now, log_size=size,
        stage_order=STAGE_ORDER, tier_order=TIER_ORDER, boxes=boxes)


@bp.route("/alerts")
@login_required
def alerts() -> Any:
    st = state()
    scope = current_scope()
    units = None if scope.everything else set(scope.units or ())
    severity = request.args.get("severity", "")
    if severity not in SEVERITY_ORDER:
        severity = ""
    code = search_text("code", 40)
    page = page_number()
    # Filtered, counted and paged in the database: an exam morning logs thousands of late syncs.
    total = st.ledger.alert_count(units, severity=severity or None, code=code or None)
    page = page_within(page, total, ALERTS_PAGE)
    found = st.ledger.alerts(units, limit=ALERTS_PAGE, offset=(page - 1) * ALERTS_PAGE, severity=severity or None,
                             code=code or None)
    return render_template("alerts.html", alerts=found, total=total, severity=severity, code=code,
                           codes=st.ledger.alert_codes(units), page=page, pages=page_count(total, ALERTS_PAGE),
                           tree=unit_tree(st.instance))
