"""What every template may use: the principal, the navigation, names of codes, time formatting."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Flask, g, request
from flask_babel import format_datetime, get_locale
from flask_babel import lazy_gettext as _l

from web import names
from web.forms import PostForm

#: (endpoint, label, roles that see it; empty = every logged-in account)
NAVIGATION = [
    ("dashboard.index", _l("Dashboard"), ()),
    ("items.index", _l("Items"), ()),
    ("dashboard.alerts", _l("Alerts"), ()),
    ("labels.index", _l("Labels"), ("officer",)),
    ("registry.units", _l("Units"), ()),
    ("registry.stations", _l("Stations"), ()),
    ("registry.people", _l("People"), ()),
    ("admin.keys", _l("Keys"), ()),
    ("admin.accounts", _l("Accounts"), ("admin",)),
    ("verification.index", _l("Verification"), ("auditor", "investigator")),
    ("investigations.index", _l("Investigations"), ("investigator",)),
    ("admin.audit_log", _l("Audit trail"), ("auditor",)),
]
#: Pages about the whole institute (``web.auth.institute_wide``): not shown to accounts bound to a county,
#: which would only get 403 there.
INSTITUTE_WIDE = {"verification.index", "investigations.index"}


def local_time(value: Any, pattern: str = "yyyy-MM-dd HH:mm:ss") -> str:
    """A time in the institute's zone (Asia/Shanghai by default), from a datetime or ISO text."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        text = value
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return text
    return str(format_datetime(value, pattern))


def init_templating(app: Flask) -> None:
    app.jinja_env.filters["localtime"] = local_time
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True

    @app.context_processor
    def _context() -> dict[str, Any]:
        principal = g.get("principal")
        visible = []
        if principal is not None:
            from web.auth import of_the_institute

            visible = [(e, label) for e, label, roles in NAVIGATION
                       if not roles or principal.is_admin or principal.role in roles]
            if not principal.is_admin and any(e in INSTITUTE_WIDE for e, _label in visible) and not of_the_institute():
                visible = [(e, label) for e, label in visible if e not in INSTITUTE_WIDE]
        locale = str(get_locale() or "zh_CN")
        english = locale.startswith("en")

        def subject_name(subject: Any) -> str:
            """A subject's English name on English pages when the plan gives one, else its (Chinese) name."""
            return str(subject.name_en if english and subject.name_en else subject.name)

        return {
            "principal": principal, "display_name": g.get("display_name"), "navigation": visible,
            "lang": "en" if locale.startswith("en") else "zh_CN", "html_lang": "en" if locale.startswith("en")
            else "zh-CN", "names": names, "name_of": names.name_of, "logout_form": PostForm(formdata=None),
            "current_endpoint": request.endpoint, "subject_name": subject_name,
        }


def page_number() -> int:
    """The ``page`` a list was asked for (``_macros.pager`` links to them): 1 for anything but a number, at most
    100,000."""
    try:
        return max(1, min(int(request.args.get("page", "1")), 100000))
    except ValueError:
        return 1


def page_count(total: int, size: int) -> int:
    """How many pages of ``size`` rows ``total`` rows fill (at least one: an empty list is one empty page)."""
    return max(1, -(-total // size))


def page_within(page: int, total: int, size: int) -> int:
    """``page``, or the last page if the list is shorter now (a link kept from a longer list, a page number
    typed): the list's last rows, not an empty table."""
    return min(page, page_count(total, size))


def search_text(name: str = "q", limit: int = 64) -> str:
    """A list's search box (``name`` in the query string), as the pager links carry it: stripped, printable
    characters only and at most ``limit`` of them (a NUL never gets this far: web.create_app answers 400)."""
    text = "".join(ch for ch in request.args.get(name, "") if ch.isprintable())
    return text.strip()[:limit]
