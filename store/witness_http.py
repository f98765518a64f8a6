"""The witness's requests to the city's log server (``custody witness --url``).

The URL the province gives may carry a credential: ``user:password@`` (HTTP
Basic, which requests sends as an ``Authorization`` header) or a token in the
query string, for a proxy in front of the city. Both are sent with every
request and never shown: the server is named ``scheme://host[:port]``
followed by the endpoint's public path (``/checkpoint``, ``/api/v1/...``); a
path of the URL itself, which may be a secret prefix, is shown as ``/…``.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from custody.errors import CustodyError
from store.http_delivery import os_reason, public_url, scrubbed

_WHAT = "the witness's --url"  # how a URL that cannot be read is named

#: Seconds each request may take.
TIMEOUT = 30.0


def city_url(base: str, path: str, query: str = "") -> str:
    """``base`` with the endpoint ``path`` added to its path and ``query`` to its query string (a token in
    the query string of ``base`` is kept, and the path goes before it, not into it)."""
    try:
        parts = urlsplit(base)
    except ValueError:  # requests will refuse it; it is named without its secrets then
        return f"{base.rstrip('/')}{path}{f'?{query}' if query else ''}"
    joined = "&".join(q for q in (parts.query, query) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + path, joined, ""))


def city_name(base: str, path: str) -> str:
    """How ``path`` on the city's server is shown: ``scheme://host[:port]``, ``/…`` for a path of ``base``,
    then ``path``. No user, password, query string or fragment."""
    server = public_url(base, what=_WHAT)
    if not server.startswith(("http://", "https://")):
        return server
    try:
        prefix = "/…" if urlsplit(base).path.strip("/") else ""
    except ValueError:
        prefix = "/…"
    return f"{server}{prefix}{path}"


def get_text(base: str, path: str, query: str = "", *, timeout: float = TIMEOUT) -> str:
    """GET ``path`` from the city and return the answer's text (UTF-8). Raises CustodyError (exit 1) naming
    the endpoint without the URL's secrets when the city cannot be reached or does not answer 200."""
    import requests

    url = city_url(base, path, query)
    shown = city_name(base, path)
    try:
        response = requests.get(url, timeout=timeout)
    except requests.RequestException as exc:
        reason = os_reason(exc) or f"{type(exc).__name__}: {scrubbed(str(exc), url, what=_WHAT)}"
        raise CustodyError(f"cannot reach {shown}: {reason}") from None
    response.encoding = "utf-8"
    if response.status_code != 200:
        raise CustodyError(f"GET {shown} answered {response.status_code}: "
                           f"{scrubbed(response.text[:200], url, what=_WHAT)}")
    return response.text
