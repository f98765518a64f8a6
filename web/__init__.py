"""The web application and HTTP API of custody: ``create_app(config)``.

``config`` is a mapping. It must give the instance, either as ``INSTANCE``
(an open :class:`store.instance.Instance`) or as ``HOME`` (and optionally
``DATABASE_URL`` and ``PASSPHRASE``); every upper-case key is also Flask
configuration (see :data:`web.settings.DEFAULTS`). Optional: ``LEDGER`` (a
:class:`store.ledger.Ledger` to share), ``CLOCK`` (a callable returning the
current time, for tests and replays), ``PASSWORD_HASHER`` (an argon2
``PasswordHasher``), ``DEADLINES`` (see :class:`web.settings.Deadlines`).
``SECRET_KEY`` defaults to a random key kept in the instance folder (0600).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from apiflask import APIFlask
from argon2 import PasswordHasher
from flask import Response, abort, g, request
from flask_wtf.csrf import CSRFProtect

from web.settings import Deadlines, content_security_policy, load_secret_key, merged


def _open_instance(config: Mapping[str, Any]) -> Any:
    from store.instance import open_instance

    instance = config.get("INSTANCE")
    if instance is not None:
        return instance
    home = config.get("HOME")
    if home is None:
        raise ValueError("create_app needs INSTANCE or HOME in its config")
    secret = config.get("PASSPHRASE")
    return open_instance(Path(home), secret=secret.encode() if isinstance(secret, str) else secret,
                         url=config.get("DATABASE_URL"))


def create_app(config: Mapping[str, Any]) -> APIFlask:
    from store.ledger import Ledger
    from web.state import NonceCache, WebState

    settings = merged(config)
    instance = _open_instance(config)
    app = APIFlask(__name__, title="custody API", version="1", spec_path="/api/v1/openapi.json", docs_path=None,
                   json_errors=False)
    app.config.update(settings)
    app.config.pop("INSTANCE", None)
    app.config.pop("LEDGER", None)
    app.config.pop("PASSPHRASE", None)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = load_secret_key(instance.home)
    from web.openapi import SECURITY_SCHEMES, finish_spec

    app.config["SECURITY_SCHEMES"] = SECURITY_SCHEMES
    from web.api_schemas import ErrorOut

    app.config["HTTP_ERROR_SCHEMA"] = ErrorOut
    app.config["VALIDATION_ERROR_SCHEMA"] = ErrorOut
    app.spec_processor(finish_spec)  # type: ignore[arg-type]  # apiflask always passes (and wants) a dict here

    clock = config.get("CLOCK") or (lambda: datetime.now(UTC))
    ledger = config.get("LEDGER") or Ledger(instance, verify_workers=int(config.get("VERIFY_WORKERS") or 0),
                                            writer_process=bool(config.get("WRITER_PROCESS")))
    skew = app.config["STATION_CLOCK_SKEW"]
    app.extensions["custody"] = WebState(
        instance=instance, ledger=ledger, hasher=config.get("PASSWORD_HASHER") or PasswordHasher(),
        deadlines=Deadlines.from_config(app.config.get("DEADLINES")), clock=clock,
        nonces=NonceCache(skew.total_seconds()))

    from web.i18n import init_i18n

    init_i18n(app)
    csrf = CSRFProtect(app)

    from web import admin, api, auth, dashboard, investigations, items, labels, registry, verification
    from web.errors import register_error_handlers
    from web.lookup import holds_nul

    for blueprint in (auth.bp, dashboard.bp, items.bp, registry.bp, admin.bp, labels.bp, verification.bp,
                      investigations.bp):
        app.register_blueprint(blueprint)
    # It checks the token itself, after raising the body limit for its photo (see web.investigations).
    csrf.exempt(investigations.run)
    app.register_blueprint(api.bp)
    app.register_blueprint(api.witness)
    csrf.exempt(api.bp)
    csrf.exempt(api.witness)
    register_error_handlers(app)

    @app.before_request
    def _no_nul() -> None:
        # A NUL in the path, the query string or a form is never meant, and PostgreSQL refuses it in a query or
        # a row (a 500 wherever a page passed it on: /items/YW%00, /labels/pdf?subject=%00, a person's name):
        # 400 here. Only a urlencoded form is read (the CSRF check reads it anyway): a multipart upload is
        # parsed by its view, after it sets the limit the upload may have, and checked there (holds_nul).
        fields = [request.args]
        if request.mimetype == "application/x-www-form-urlencoded":
            fields.append(request.form)
        if "\x00" in request.path or holds_nul(*fields):
            abort(400)

    @app.before_request
    def _load_principal() -> None:
        auth.load_session_principal()

    # First of all: a request refused before any view (a form whose CSRF token has expired, a NUL) is still
    # answered inside the signed-in page, with its navigation, not a page that looks signed out.
    first = app.before_request_funcs[None]
    first.insert(0, first.pop(first.index(_load_principal)))

    @app.after_request
    def _security_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("Content-Security-Policy", content_security_policy(g.get("csp_style_hashes", ())))
        if app.config["SESSION_COOKIE_SECURE"]:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        if not request.path.startswith(("/static/", "/api/", "/checkpoint")) and g.get("principal") is not None:
            headers["Cache-Control"] = "no-store"
        return response

    from web.templating import init_templating

    init_templating(app)
    return app
