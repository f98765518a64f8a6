"""Nightly verification reports: every run kept in the database, newest first, and each run's page.

A run's page shows its checks and findings and whether its signature verifies
under the log key (every log signing key in the registry, never the key the
report names itself); its signed JSON downloads exactly as stored. The log is
institute-wide and so is its verification: administrators, and auditors and
investigators whose units include the institute, see the reports (findings name
items of every county); unit officers and county-bound accounts get 403. Opening a report and
downloading it are recorded in the audit trail (``view_verification``).
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, abort, render_template
from flask_babel import gettext as _
from sqlalchemy import func, select

from custody.keyring import Role
from custody.verify.findings import CODES
from custody.verify.report import ReportSignatureError, verify_report
from store.instance import Instance
from store.logstore import log_verifiers
from store.models import KeyRecord
from store.verification_models import VerificationRun
from web.audit import audit
from web.auth import current_principal, institute_wide
from web.state import state
from web.templating import page_count, page_number, page_within

bp = Blueprint("verification", __name__)
#: Who sees verification reports (administrators always do).
VERIFICATION_ROLES = ("auditor", "investigator")
institute_auditors = institute_wide(*VERIFICATION_ROLES, reason=lambda: _(
    "Verification reports cover the whole log of the institute, so only accounts of the institute may read "
    "them. Your account is limited to %(unit)s."))
PAGE = 50
#: Findings listed on a run's page; the signed JSON has every one the report kept.
MAX_FINDINGS_SHOWN = 500
#: Run ids are 32-bit INTEGERs in PostgreSQL (and SQLite ends at 2**63 - 1): a larger id names no run and is
#: answered 404 before it reaches the database, where it would fail to bind.
MAX_RUN_ID = 2**31 - 1
_LIST_COLUMNS = (VerificationRun.id, VerificationRun.started_at, VerificationRun.finished_at, VerificationRun.mode,
                 VerificationRun.ok, VerificationRun.log_size, VerificationRun.verified_from,
                 VerificationRun.verified_to, VerificationRun.finding_count, VerificationRun.digest)


def signature_status(instance: Instance, report: dict[str, Any]) -> dict[str, Any]:
    """Whether ``report``'s signature verifies under a log key of the registry: ``valid``, ``signed``,
    ``key`` (the verifier key that checks it) and ``error`` (why not)."""
    with instance.db.session() as s:
        registry = list(s.scalars(select(KeyRecord).where(KeyRecord.role == Role.LOG_SIGNER.value)))
    signed = isinstance(report.get("signature"), dict)
    try:
        key = verify_report(report, log_verifiers(instance.origin, registry))
    except ReportSignatureError as exc:
        return {"valid": False, "signed": signed, "key": None, "error": str(exc)}
    return {"valid": True, "signed": signed, "key": key.key_text(), "error": None}


def _run(run_id: int) -> VerificationRun:
    if run_id > MAX_RUN_ID:
        abort(404)
    with state().instance.db.session() as s:
        row = s.get(VerificationRun, run_id)
    if row is None:
        abort(404)
    return row


def _file_name(row: VerificationRun) -> str:
    """As ``custody verify`` names the file under ``<home>/reports/``."""
    return f"verify-{row.finished_at:%Y%m%dT%H%M%SZ}-{row.digest[:8]}.json"


@bp.route("/verification")
@institute_auditors
def index() -> Any:
    page = page_number()
    with state().instance.db.session() as s:
        total = s.scalar(select(func.count()).select_from(VerificationRun)) or 0
        page = page_within(page, total, PAGE)
        rows = s.execute(select(*_LIST_COLUMNS).order_by(VerificationRun.id.desc())
                         .offset((page - 1) * PAGE).limit(PAGE)).all()
    return render_template("verification.html", rows=rows, total=total, page=page, pages=page_count(total, PAGE))


@bp.route("/verification/<int:run_id>")
@institute_auditors
def show(run_id: int) -> Any:
    st = state()
    row = _run(run_id)
    try:
        report = json.loads(row.report)
        if not isinstance(report, dict):
            raise ValueError("not an object")
    except ValueError:
        report, signature = None, None
    else:
        signature = signature_status(st.instance, report)
    principal = current_principal()
    assert principal is not None
    audit(principal, "view_verification", f"run {run_id}", f"page digest={row.digest}")
    findings = ((report or {}).get("findings") or [])[:MAX_FINDINGS_SHOWN]
    counts = (report or {}).get("finding_counts") or {}
    unlisted = max(0, sum(counts.values()) - len(findings))
    return render_template("verification_run.html", row=row, report=report, signature=signature, findings=findings,
                           unlisted=unlisted, counts=sorted(counts.items(), key=lambda c: (-c[1], c[0])), codes=CODES)


@bp.route("/verification/<int:run_id>/report.json")
@institute_auditors
def download(run_id: int) -> Any:
    """The signed report exactly as stored (its signature covers the RFC 8785 bytes of the object)."""
    row = _run(run_id)
    principal = current_principal()
    assert principal is not None
    audit(principal, "view_verification", f"run {run_id}", f"json digest={row.digest}")
    response = Response(row.report, mimetype="application/json")
    response.headers["Content-Disposition"] = f'attachment; filename="{_file_name(row)}"'
    return response
