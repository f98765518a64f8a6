"""Leak investigations (锁定失、泄密科目和范围): a form, the report in the page, its PDF, JSON and HTML.

The report is :func:`store.investigation.investigate`'s, rendered by
:mod:`printing.report` exactly as ``custody investigate --html/--pdf/--json``
renders it. An investigation spans the whole subject across the city, so only
administrators and investigators of the institute (or above it) may run one;
an investigator bound to a county or below is refused (403) with the reason.
Every report shown or downloaded is recorded in the audit trail
(``view_investigation``, target the subject, detail the query).

The photo of a leaked paper or bag is read in memory and never stored. The
labels decoded from it travel to the downloads in a token signed with the
application's secret key, so that a download repeats the same query without
the photo and cannot be handed labels that no uploaded photo held.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from flask import Blueprint, Response, abort, current_app, g, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import select
from werkzeug.exceptions import RequestEntityTooLarge

from custody.errors import NotFound
from store.models import Item, Subject, Unit
from web.audit import audit
from web.auth import current_principal, institute_wide
from web.errors import error_response
from web.forms import InvestigationForm
from web.lookup import holds_nul
from web.settings import FORM_ALLOWANCE, MiB
from web.state import state

bp = Blueprint("investigations", __name__)
F = TypeVar("F", bound=Callable[..., Any])

#: Formats the label decoder reads (OpenCV), as Pillow names them.
PHOTO_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "TIFF", "MPO"})
#: A photo with more pixels than this is refused before it is decoded (a small file can unpack huge).
MAX_PHOTO_PIXELS = 50_000_000
_EVIDENCE_SALT = "custody.investigation.photo"
_STYLE = re.compile(r"<style>(.*?)</style>", re.S)


class Refused(Exception):
    """Input the page refuses, with the message for the person who sent it."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Query:
    """What is known of the leak: the subject and, optionally, when, which item, where."""

    subject: str
    as_of: datetime | None = None
    item: str | None = None
    unit: str | None = None
    leak_time: datetime | None = None
    #: A shown report's checkpoint size and the time its windows end: its downloads are that same report,
    #: however much was logged since.
    size: int | None = None
    now: datetime | None = None

    def args(self) -> dict[str, str]:
        """As query-string arguments (times in UTC, ISO 8601)."""
        out = {"subject": self.subject}
        for name in ("as_of", "item", "unit", "leak_time", "size", "now"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value.astimezone(UTC).isoformat().replace("+00:00", "Z") \
                    if isinstance(value, datetime) else str(value)
        return out

    def describe(self) -> str:
        """For the audit trail: ``subject=YW item=YW-P-K001-01 leak_time=2017-06-19T15:30:00Z``."""
        return " ".join(f"{k}={v}" for k, v in self.args().items())


# --- who may investigate ----------------------------------------------------------------------


#: Administrators, and investigators whose units include the institute; others get 403 with the reason.
institute_investigators = institute_wide("investigator", reason=lambda: _(
    "An investigation covers the whole subject across the city, so only investigators of the institute may run "
    "one. Your account is limited to %(unit)s."))


# --- reading what was sent --------------------------------------------------------------------


def parse_time(text: str | None) -> datetime | None:
    """ISO 8601; a time without a zone is the exam's local time (UTC+8), as on the command line."""
    from custody.plan import LOCAL_TZ

    if text is None or not text.strip():
        return None
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise Refused(_("%(text)s is not a time: write it as 2017-06-19T23:30 (the exam's local time) or with a "
                        "zone, e.g. 2017-06-19T23:30+08:00.", text=text.strip()[:40])) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=LOCAL_TZ)


def _subjects() -> list[Subject]:
    st = state()
    with st.instance.db.session() as s:
        return list(s.scalars(select(Subject).where(Subject.exam == st.exam()).order_by(Subject.starts_at)))


def _check_known(query: Query) -> None:
    """The subject (when chosen), item and unit exist: a clear message for each, before any work is done."""
    st = state()
    exam = st.exam()
    with st.instance.db.session() as s:
        known = select(Subject.code).where(Subject.exam == exam, Subject.code == query.subject)
        if query.subject and s.scalar(known) is None:
            raise Refused(_("There is no subject %(subject)s in this exam.", subject=query.subject))
        if query.item:
            owner = s.execute(select(Item.subject).where(Item.exam == exam, Item.item_id == query.item)).first()
            if owner is None:
                raise Refused(_("There is no item %(item)s in this exam.", item=query.item))
            if owner[0] != query.subject:
                raise Refused(_("Item %(item)s is not an item of subject %(subject)s.", item=query.item,
                                subject=query.subject))
        if query.unit and s.get(Unit, query.unit) is None:
            raise Refused(_("There is no unit %(unit)s.", unit=query.unit))


def _photo_bytes(storage: Any) -> bytes | None:
    """The uploaded photo, checked to be an image the decoder can read; ``None`` when none was sent."""
    from PIL import Image

    if storage is None or not getattr(storage, "filename", ""):
        return None
    limit = current_app.config["MAX_PHOTO_LENGTH"]
    data: bytes = storage.read(limit + 1)
    if len(data) > limit:
        raise _too_large()
    not_an_image = Refused(_("The file is not a photo: upload a JPEG, PNG or WebP image of the leaked paper or bag."))
    if not data:
        raise not_an_image
    try:
        with Image.open(io.BytesIO(data)) as image:
            kind, (width, height) = image.format, image.size
    except (OSError, ValueError, Image.DecompressionBombError):
        raise not_an_image from None
    if kind not in PHOTO_FORMATS:
        raise not_an_image
    if width * height > MAX_PHOTO_PIXELS:
        raise Refused(_("The photo has too many pixels (at most %(n)d million).", n=MAX_PHOTO_PIXELS // 1_000_000))
    return data


def _too_large() -> Refused:
    limit = current_app.config["MAX_PHOTO_LENGTH"]
    size = f"{limit / MiB:g} MB" if limit >= MiB else f"{limit // 1024} KB"
    return Refused(_("The photo is larger than %(size)s: send a smaller photo (JPEG or PNG).", size=size), 413)


def _evidence() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.secret_key, salt=_EVIDENCE_SALT)  # type: ignore[arg-type]


# --- the report ---------------------------------------------------------------------------------


def _investigate(query: Query, photo: bytes | None = None) -> Any:
    """The report of ``query``; with a photo, of the first verified label in it (as ``investigate_photo``),
    the subject then being the label's unless one was chosen."""
    from store.investigation import investigate, labels_in_photo

    _check_known(query)
    st = state()
    if query.now is not None and query.now > st.now():
        raise Refused(_("The request was not understood."))
    options: dict[str, Any] = {"as_of": query.as_of, "leaked_unit": query.unit, "leak_time": query.leak_time,
                               "now": query.now or st.now().replace(microsecond=0), "size": query.size}
    found: list[dict[str, Any]] = []
    subject, item = query.subject, query.item
    try:
        if photo is not None:
            try:
                found = labels_in_photo(st.instance, photo)
            except NotFound:
                raise Refused(_("The file is not a photo: upload a JPEG, PNG or WebP image of the leaked paper "
                                "or bag.")) from None
            usable = [f for f in found if f["verified"] and (not subject or f["subject"] == subject)]
            if not usable:
                seen = "; ".join(f"{f['item'] or f['text'][:20]}: {f['error'] or f['subject']}" for f in found)
                raise Refused(_("No custody label that verifies (of subject %(subject)s) was found in the photo. "
                                "Labels seen: %(seen)s", subject=subject or _("any"), seen=seen or _("none")))
            subject, item = subject or usable[0]["subject"], usable[0]["item"]
        report = investigate(st.instance, subject, leaked_item=item, **options)
    except NotFound as exc:
        raise Refused(_("The investigation could not be made: %(reason)s", reason=str(exc))) from None
    if photo is not None:
        report.photo = found
    return report


def report_language() -> str:
    """The report's language (``zh`` or ``en``): the page's, unless ``?lang=`` says otherwise."""
    chosen = request.args.get("lang")
    if chosen in ("zh", "en"):
        return chosen
    return "en" if str(get_locale() or "zh_CN").startswith("en") else "zh"


def _style_hashes(page: str) -> list[str]:
    return [base64.b64encode(hashlib.sha256(css.encode()).digest()).decode("ascii") for css in _STYLE.findall(page)]


def _render_form(form: InvestigationForm, *, status: int = 200, error: str | None = None,
                 report: Any = None, query: Query | None = None, evidence: str | None = None) -> Any:
    from printing.report import render_html

    report_html = None
    downloads: dict[str, str] = {}
    if report is not None and query is not None:
        lang = report_language()
        report_html = render_html(report, lang)
        # The report is one self-contained page; it is shown as it is, in a sandboxed frame, whose
        # inline style the page's policy allows by its hash.
        g.csp_style_hashes = _style_hashes(report_html)
        values: dict[str, Any] = {"lang": lang, **query.args(), **({"evidence": evidence} if evidence else {})}
        downloads = {fmt: url_for("investigations.download", fmt=fmt, **values) for fmt in ("pdf", "json", "html")}
    return render_template("investigations.html", form=form, error=error, report=report, report_html=report_html,
                           downloads=downloads, query=query), status


def _form() -> InvestigationForm:
    form = InvestigationForm()
    english = str(get_locale() or "zh_CN").startswith("en")
    form.subject.choices = [("", _("(from the photo's label)"))] + [
        (s.code, f"{s.name_en if english and s.name_en else s.name} ({s.code})") for s in _subjects()]
    return form


@bp.route("/investigations")
@institute_investigators
def index() -> Any:
    return _render_form(_form())


@bp.route("/investigations", methods=["POST"])
@institute_investigators
def run() -> Any:
    # This request alone may carry a photo: its limit is raised before the body is read (the
    # application's CSRF check would read it first, at the usual limit; so it is made here).
    request.max_content_length = current_app.config["MAX_PHOTO_LENGTH"] + FORM_ALLOWANCE
    try:
        current_app.extensions["csrf"].protect()
        request.files  # noqa: B018 - parse the body here, where a refusal can still say why
    except RequestEntityTooLarge:
        return error_response(413, _too_large().message)
    if holds_nul(request.form):  # as create_app refuses one in any other form (the photo is not text)
        abort(400)
    form = _form()
    if not form.validate():
        return _render_form(form, status=400, error=_("Correct the marked fields."))
    try:
        times: dict[str, Any] = {}
        for name in ("as_of", "leak_time"):
            field = getattr(form, name)
            try:
                times[name] = parse_time(field.data)
            except Refused as exc:
                field.errors.append(exc.message)
        if form.as_of.errors or form.leak_time.errors:
            raise Refused(_("Correct the marked fields."))
        photo = _photo_bytes(form.photo.data)
        if photo is not None and form.item.data:
            raise Refused(_("Give the leaked item or a photo of it, not both."))
        if not form.subject.data and photo is None:
            raise Refused(_("Choose a subject (or upload a photo of a labelled paper or bag)."))
        query = Query(form.subject.data or "", item=form.item.data or None, unit=form.unit.data or None, **times)
        report = _investigate(query, photo)
    except Refused as exc:
        return _render_form(form, status=exc.status, error=exc.message)
    query = Query(report.subject.code, query.as_of, report.query.get("leaked_item"), query.unit, query.leak_time,
                  size=report.tree_size, now=None if query.as_of else report.until)
    evidence = None
    detail = f"page {query.describe()}"
    if photo is not None:
        digest = hashlib.sha256(photo).hexdigest()
        evidence = _evidence().dumps({"subject": query.subject, "item": query.item, "photo": digest,
                                      "labels": report.photo})
        detail += f" photo=sha256:{digest}"
    principal = current_principal()
    assert principal is not None
    audit(principal, "view_investigation", query.subject, detail)
    return _render_form(form, report=report, query=query, evidence=evidence)


@bp.route("/investigations/report.<any(pdf, json, html):fmt>")
@institute_investigators
def download(fmt: str) -> Any:
    """The report of the query in the address, as a PDF, the JSON with every proof, or the HTML page."""
    args = request.args
    try:
        if not args.get("subject"):
            raise Refused(_("Choose a subject (or upload a photo of a labelled paper or bag)."))
        for name, longest in (("subject", 8), ("item", 64), ("unit", 32), ("as_of", 40), ("leak_time", 40),
                              ("size", 18), ("now", 40)):
            if len(args.get(name, "")) > longest:
                raise Refused(_("The request was not understood."))
        size = args.get("size") or None
        if size is not None and not (size.isascii() and size.isdigit()):
            raise Refused(_("The request was not understood."))
        query = Query(args["subject"], parse_time(args.get("as_of")), args.get("item") or None,
                      args.get("unit") or None, parse_time(args.get("leak_time")),
                      size=int(size) if size is not None else None, now=parse_time(args.get("now")))
        labels = _labels_from(args.get("evidence"), query)
        report = _investigate(query)
    except Refused as exc:
        return error_response(exc.status, exc.message)
    if labels is not None:
        report.photo = labels
    lang = report_language()
    principal = current_principal()
    assert principal is not None
    audit(principal, "view_investigation", query.subject, f"{fmt} {query.describe()}"
          + (" photo=evidence" if labels is not None else ""))
    name = f"investigation-{query.subject}-{report.tree_size}" + (f"-{query.item}" if query.item else "")
    if fmt == "pdf":
        from printing.report import render_pdf

        buffer = io.BytesIO()
        render_pdf(report, buffer, lang)
        body, mimetype = buffer.getvalue(), "application/pdf"
    elif fmt == "json":
        # As `custody investigate --json` writes it: no indentation, which would also force json's
        # pure-Python encoder (a city-wide subject's report is tens of megabytes).
        body = (json.dumps(report.to_json(), ensure_ascii=False) + "\n").encode()
        mimetype = "application/json"
    else:
        from printing.report import render_html

        page = render_html(report, lang)
        g.csp_style_hashes = _style_hashes(page)  # should a browser show it rather than save it
        body, mimetype = page.encode(), "text/html"
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.{fmt}"'
    return response


def _labels_from(token: str | None, query: Query) -> list[dict[str, Any]] | None:
    """The labels a photo held, from the signed token the report page put in the address."""
    if not token:
        return None
    try:
        found = _evidence().loads(token)
    except BadSignature:
        raise Refused(_("The photo evidence in this address is not valid.")) from None
    if not isinstance(found, dict) or found.get("subject") != query.subject or found.get("item") != query.item \
            or not isinstance(found.get("labels"), list):
        raise Refused(_("The photo evidence in this address is not valid."))
    labels: list[dict[str, Any]] = found["labels"]
    return labels
