"""Naming an HTTP endpoint without its secrets, and saying why a request to it failed.

Shared by the alarm webhook (:mod:`store.alert_hooks`) and the witness's
hand-back of its cosignature (:mod:`store.witness_handback`). A URL given by an
operator may carry a token in its query string, its path or its user:password
part; whatever is printed is named through :func:`public_url` and cleaned with
:func:`scrubbed`.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit


def public_url(url: str, *, what: str = "the URL") -> str:
    """``scheme://host[:port]`` of ``url``: no user, password, path, query or fragment. The token of a
    webhook is in its query string (DingTalk's access_token, WeCom's key) or in its path (Slack, Teams).
    A URL that cannot be read is named by ``what`` alone."""
    invalid = f"({what}, which is not a valid http(s) URL)"
    try:
        parts = urlsplit(url)
        scheme, host, port = parts.scheme, parts.hostname, parts.port
    except ValueError:  # a port that is not a number, a malformed IPv6 host
        return invalid
    if not scheme or not host:
        return invalid
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}{f':{port}' if port is not None else ''}"


def scrubbed(text: str, url: str, *, what: str = "the URL") -> str:
    """``text`` (an exception's message) without the URL's path, query string, fragment or user:password."""
    text = text.replace(url, public_url(url, what=what))
    try:
        path = urlsplit(url).path
    except ValueError:
        path = ""
    if path not in ("", "/"):
        text = text.replace(path, "/…")
    text = re.sub(r"[?#][^\s'\")]*", "?…", text)
    text = re.sub(r"//[^/\s@'\"]*@", "//…@", text)
    return text[:300]


def os_reason(exc: BaseException) -> str | None:
    """The operating system's words for a connection failure ('Connection refused'), found in the chain of
    exceptions requests and urllib3 wrap it in; their own messages repeat the URL with its query string."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror and \
                not type(current).__module__.startswith(("requests", "urllib3")):
            return current.strerror
        reason = getattr(current, "reason", None)
        current = reason if isinstance(reason, BaseException) else (current.__cause__ or current.__context__)
    return None
