"""Every error ends here: clear JSON under /api and for witnesses, a friendly page elsewhere.

No stack trace is ever sent to a client; unexpected errors are logged on the
server with an id that the page shows, so that an officer can quote it.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from apiflask.exceptions import HTTPError
from flask import Flask, jsonify, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from custody.errors import CustodyError, NotFound, TreeSizeError
from store.ledger import LedgerClosed
from store.writer_process import WriterStopped

if TYPE_CHECKING:
    from werkzeug.datastructures import Headers

log = logging.getLogger("custody.web")


def wants_json() -> bool:
    path = request.path
    return path.startswith("/api/") or path == "/checkpoint"


def _slug(name: str) -> str:
    return name.lower().replace(" ", "_").replace("'", "")


def _messages() -> dict[int, str]:
    return {
        400: _("The request was not understood."),
        401: _("Please log in."),
        403: _("You may not do this."),
        404: _("There is nothing here, or it is outside your units."),
        405: _("This address does not accept that method."),
        413: _("The request is too large."),
        429: _("Too many attempts; wait a while and try again."),
        500: _("Something went wrong on the server. It has been logged."),
    }


def error_response(status: int, message: str, *, code: str | None = None, detail: Any = None,
                   incident: str | None = None) -> Any:
    if wants_json():
        body: dict[str, Any] = {"error": code or _slug(_status_name(status)),
                                "message": message}
        if detail:
            body["detail"] = detail
        if incident:
            body["incident"] = incident
        response = jsonify(body)
        response.status_code = status
        return response
    return render_template("error.html", status=status, message=message, incident=incident), status


def _status_name(status: int) -> str:
    from werkzeug.http import HTTP_STATUS_CODES

    return HTTP_STATUS_CODES.get(status, "error")


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError) -> Any:
        return error_response(400, _("The form has expired or did not come from this site. "
                                     "Reload the page and try again."), code="csrf_failed")

    @app.errorhandler(HTTPError)
    def api_error(exc: HTTPError) -> Any:
        message = exc.message if isinstance(exc.message, str) else _status_name(exc.status_code)
        if exc.status_code in (400, 422) and exc.detail:
            message = _("The request's parameters are not valid.")
        response = error_response(exc.status_code, message, detail=exc.detail or None)
        if isinstance(response, tuple):
            return response
        # apiflask's HTTPError may in principle carry a list of pairs; every raise of it gives a dict or nothing
        headers = cast("Mapping[str, Any] | Headers", exc.headers or {})
        for name, value in headers.items():
            response.headers[name] = value
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        status = exc.code or 500
        message = _messages().get(status) or (exc.description or _status_name(status))
        if wants_json() and exc.description and status in (400, 401, 403, 404, 413) and \
                getattr(exc, "custody_message", False):
            message = exc.description
        response = error_response(status, message)
        if status == 405 and not isinstance(response, tuple):
            response.headers["Allow"] = ", ".join(exc.valid_methods or [])  # type: ignore[attr-defined]
        return response

    @app.errorhandler(NotFound)
    def not_found(exc: NotFound) -> Any:
        return error_response(404, str(exc) if wants_json() else _messages()[404], code="not_found")

    @app.errorhandler(TreeSizeError)
    def tree_size(exc: TreeSizeError) -> Any:
        return error_response(400 if wants_json() else 404, str(exc), code="bad_tree_size")

    @app.errorhandler(WriterStopped)
    @app.errorhandler(LedgerClosed)
    def writer_stopped(exc: WriterStopped | LedgerClosed) -> Any:
        log.warning("%s", exc)
        response = error_response(503, str(exc), code=_camel_to_snake(type(exc).__name__))
        response = app.make_response(response)
        response.headers["Retry-After"] = "1"
        return response

    @app.errorhandler(CustodyError)
    def custody_error(exc: CustodyError) -> Any:
        status = 400 if exc.exit_code == 2 else 409
        return error_response(status, str(exc), code=_camel_to_snake(type(exc).__name__))

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Any:
        incident = secrets.token_hex(4)
        log.exception("unexpected error %s on %s %s", incident, request.method, request.path)
        return error_response(500, _messages()[500], code="internal_error", incident=incident)


def _camel_to_snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


def abort_json(status: int, message: str) -> None:
    """Abort with a message meant for the client (API callers see it verbatim)."""
    from werkzeug.exceptions import default_exceptions

    exc = default_exceptions[status](description=message)
    exc.custody_message = True  # type: ignore[attr-defined]
    raise exc
