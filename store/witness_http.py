"""The witness's requests to the city's log server (``custody witness --url``).

The URL the province gives may carry a credential: ``user:password@`` (HTTP
Basic, which requests sends as an ``Authorization`` header) or a token in the
query string, for a proxy in front of the city. Both are sent with every
request and never shown: the server is named ``scheme://host[:port]``
followed by the endpoint's public path (``/checkpoint``, ``/api/v1/...``); a
path of the URL itself, which may be a secret prefix, is shown as ``/…``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from custody.errors import CustodyError
from store.http_delivery import (
    REASON_BYTES,
    RETRY_WAITS,
    Answer,
    answer_reason,
    os_reason,
    post_until_taken,
    public_url,
    retry_after,
    scrubbed,
)

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


class CityUnreachable(CustodyError):
    """The city could not be reached, or did not serve its checkpoint or a consistency proof: nothing was
    cosigned, and nothing was found wrong with the log (exit 3; the witness's loop tries again)."""

    exit_code = 3


def get_text(base: str, path: str, query: str = "", *, timeout: float = TIMEOUT) -> str:
    """GET ``path`` from the city and return the answer's text (UTF-8). Raises :class:`CityUnreachable`
    naming the endpoint without the URL's secrets when the city cannot be reached or does not answer 200."""
    import requests

    url = city_url(base, path, query)
    shown = city_name(base, path)
    try:
        response = requests.get(url, timeout=timeout)
    except requests.RequestException as exc:
        reason = os_reason(exc) or f"{type(exc).__name__}: {scrubbed(str(exc), url, what=_WHAT)}"
        raise CityUnreachable(f"cannot reach {shown}: {reason}") from None
    if response.status_code != 200:
        reason = answer_reason(response.content, base)
        raise CityUnreachable(f"GET {shown} answered {response.status_code}"
                              f"{f' (reason: {reason})' if reason else ''}")
    response.encoding = "utf-8"
    return response.text


# --- handing the cosignature back ----------------------------------------------------------

#: Where the witness hands its cosigned checkpoint back (docs/api.md).
COSIGNATURES = "/api/v1/cosignatures"


@dataclass(frozen=True)
class HandBack:
    """How the hand-back of one cosigned checkpoint went: ``handed_back`` only when the city answered 2xx
    (or, for a local instance, stored it).

    ``may_pass`` says the failure may go away by itself (no connection, no answer in time, a 5xx or 429):
    a later run can hand a cosignature back without anyone acting. Otherwise the city or the operator must
    act on the reason first.
    """

    handed_back: bool
    attempts: int
    status: int | None  # the last answer's HTTP status; None when there was none
    may_pass: bool
    message: str
    message_zh: str

    def line(self) -> str:
        return f"{self.message_zh} / {self.message}"


def hand_back(base: str, note: bytes, *, timeout: float = TIMEOUT, retry_waits: Sequence[float] | None = None,
              sleep: Callable[[float], None] = time.sleep) -> HandBack:
    """POST the cosigned checkpoint ``note`` to the city until it answers 2xx, waiting ``retry_waits[i]``
    (default ``RETRY_WAITS``: 2 s, then 8 s) before attempt ``i + 2`` after a connection error, a timeout
    or a 5xx/429 answer. Another 4xx is not retried, and a redirect is not followed (requests would turn
    the POST into a GET on a 301 or 302). Never raises: the witness has cosigned and kept the checkpoint
    whatever becomes of its delivery; the result says whether it was delivered and why not.
    """
    import requests

    waits = RETRY_WAITS if retry_waits is None else tuple(retry_waits)
    url = city_url(base, COSIGNATURES)
    shown = f"POST {city_name(base, COSIGNATURES)}"

    def send() -> Answer:
        with requests.post(url, data=note, timeout=timeout, allow_redirects=False, stream=True,
                           headers={"Content-Type": "text/plain; charset=utf-8",
                                    "Accept": "application/json, text/plain;q=0.9"}) as response:
            status = response.status_code
            return (status, "" if 200 <= status < 300 else answer_reason(_start_of(response), base),
                    retry_after(response.headers.get("Retry-After")))

    got = post_until_taken(send, url, timeout=timeout, retry_waits=waits, sleep=sleep, what=_WHAT,
                           redirect=("a redirect is not followed: give --url the address it points to",
                                     "不跟随重定向：请把 --url 改为其指向的地址"))
    if got.taken:
        before, before_zh = got.before()
        return HandBack(True, got.count, got.status, True,
                        f"cosignature handed back: {shown} answered {got.status}{before}",
                        f"见证签名已交回：{shown} 返回 {got.status}{before_zh}")
    (last, last_zh), (why, why_zh) = got.tried[-1], got.why_not()
    # a 5xx or 429 ends the round early only when it asked for a longer wait than one round grants
    busy = got.status is not None and (got.status >= 500 or got.status == 429)
    return HandBack(False, got.count, got.status, got.final is None or busy,
                    f"cosignature NOT handed back: {shown} {last}; {why}",
                    f"见证签名未交回：{shown} {last_zh}；{why_zh}")


def _start_of(response: Any) -> bytes:
    """The first ``REASON_BYTES`` of an answer's body, however long it is; what cannot be read is left."""
    import requests

    data = b""
    try:
        for chunk in response.iter_content(4096):
            data += chunk
            if len(data) >= REASON_BYTES:
                break
    except (requests.RequestException, OSError):
        pass  # the status is the answer; a body that breaks off has said what it said
    return data[:REASON_BYTES]
