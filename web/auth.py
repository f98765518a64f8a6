"""Logging in and out, sessions, the language switch, and the role checks every page uses."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _

from web.accounts import LoginLocked, LoginRefused, Principal, Throttle, authenticate, end_sessions, get_account
from web.audit import audit
from web.forms import LoginForm, PostForm
from web.scope import Scope, scope_of
from web.state import state

bp = Blueprint("auth", __name__)
F = TypeVar("F", bound=Callable[..., Any])


def current_principal() -> Principal | None:
    principal: Principal | None = g.get("principal")
    return principal


def current_scope() -> Scope:
    principal = current_principal()
    if principal is None:
        abort(401)
    scope: Scope | None = g.get("scope")
    if scope is None:
        scope = g.scope = scope_of(principal, state().instance)
    return scope


def load_session_principal() -> None:
    """Before each request: the logged-in account, if its session is still good."""
    g.principal = None
    uid = session.get("uid")
    if uid is None:
        return
    idle = current_app.config["SESSION_IDLE_TIMEOUT"]
    now = int(time.time())
    account = get_account(state().instance, int(uid))
    stale = now - int(session.get("seen", 0)) > idle.total_seconds()
    if account is None or account.disabled or account.session_version != session.get("sv") or stale:
        session.clear()
        g.session_expired = True
        return
    if now - int(session.get("seen", 0)) > 60:
        session["seen"] = now
    g.principal = Principal(name=account.username, role=account.role, unit=account.unit, account_id=account.id)
    g.display_name = account.display_name or account.username


def login_required(view: F) -> F:
    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if current_principal() is None:
            if g.get("session_expired"):
                flash(_("Your session has expired. Please log in again."), "warning")
            return redirect(url_for("auth.login", next=_safe_next(request.full_path)))
        return view(*args, **kwargs)
    return wrapped  # type: ignore[return-value]


def roles_required(*roles: str) -> Callable[[F], F]:
    """Only these roles (``admin`` is always allowed); others get 403 (the page exists for everyone)."""
    def decorate(view: F) -> F:
        @wraps(view)
        @login_required
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            principal = current_principal()
            assert principal is not None
            if principal.role != "admin" and principal.role not in roles:
                abort(403)
            return view(*args, **kwargs)
        return wrapped  # type: ignore[return-value]
    return decorate


def of_the_institute() -> bool:
    """Whether the signed-in account's units include the institute (administrators always)."""
    principal = current_principal()
    if principal is None:
        return False
    scope = current_scope()
    return principal.is_admin or scope.everything or scope.allows(state().instance.institute)


def institute_wide(*roles: str, reason: Callable[[], str]) -> Callable[[F], F]:
    """Pages about the whole institute (investigations, log verification): these roles, and only accounts
    whose units include the institute; an account bound to a county gets 403 with ``reason()``."""
    from web.errors import error_response

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            principal = current_principal()
            assert principal is not None
            if not of_the_institute():
                return error_response(403, reason() % {"unit": principal.unit or "-"})
            return view(*args, **kwargs)
        return roles_required(*roles)(wrapped)  # type: ignore[return-value]
    return decorate


def has_role(*roles: str) -> bool:
    principal = current_principal()
    return principal is not None and (principal.is_admin or principal.role in roles)


def _safe_next(target: str | None) -> str:
    """Only a path on this site (no scheme, no host, no //): never an open redirect."""
    if not target:
        return ""
    target = target.rstrip("?")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return ""
    return target


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    form = LoginForm()
    st = state()
    status = 200
    if form.validate_on_submit():
        config = current_app.config
        throttle = Throttle(st.instance, config["LOGIN_MAX_FAILURES"], config["LOGIN_LOCK"],
                            config["LOGIN_MAX_ADDRESS_FAILURES"])
        address = request.remote_addr or "unknown"
        try:
            account = authenticate(st.instance, form.username.data or "", form.password.data or "", address,
                                   st.now(), hasher=st.hasher, throttle=throttle)
        except LoginLocked as exc:
            minutes = max(1, int((exc.until - st.now()).total_seconds() // 60) + 1)
            flash(_("Too many failed logins. Try again in %(minutes)d minutes.", minutes=minutes), "error")
            status = 429
        except LoginRefused:
            flash(_("Wrong username or password."), "error")
            status = 401
        else:
            session.clear()
            session.permanent = True
            session["uid"] = account.id
            session["sv"] = account.session_version
            session["seen"] = int(time.time())
            principal = Principal(account.username, account.role, account.unit, account.id)
            audit(principal, "login", account.username)
            return redirect(_safe_next(form.next.data) or url_for("dashboard.index"))
    elif request.method == "POST":
        # An empty or over-long field (more than the form takes) is never a right username or password.
        flash(_("Wrong username or password."), "error")
        status = 400
    if request.method == "GET":
        form.next.data = _safe_next(request.args.get("next"))
    return render_template("login.html", form=form), status


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    form = PostForm()
    principal = current_principal()
    if form.validate_on_submit() and principal is not None and principal.account_id is not None:
        end_sessions(state().instance, principal.account_id)
        audit(principal, "logout", principal.name)
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
    flash(_("You are logged out."), "info")
    return redirect(url_for("auth.login"))


@bp.route("/lang/<code>")
def set_language(code: str) -> Any:
    if code not in current_app.config["LANGUAGES"]:
        abort(404)
    session["lang"] = code
    response = make_response(redirect(_safe_next(request.args.get("next")) or url_for("dashboard.index")))
    response.set_cookie("custody_lang", code, max_age=365 * 86400, samesite="Lax",
                        secure=current_app.config["SESSION_COOKIE_SECURE"], httponly=True)
    return response
