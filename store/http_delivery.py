"""Naming an HTTP endpoint without its secrets, and saying why a request to it failed.

Shared by the alarm webhook (:mod:`store.alert_hooks`) and the witness's
requests to the city (:mod:`store.witness_http`). A URL given by an operator
may carry a token in its query string, its path or its user:password part;
whatever is printed is named through :func:`public_url`, an exception's text is
cleaned with :func:`scrubbed`, and what a server said is read with
:func:`answer_reason`. :func:`post_until_taken` is the retry loop both POSTs share.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote_plus, urlsplit


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


#: How much of an answer's body is read for its reason, and how long the reason shown may be.
REASON_BYTES = 8192
REASON_CHARS = 200


def answer_reason(body: bytes, url: str) -> str:
    """Why the server says it refused, read from the start of its answer's ``body``: the ``message`` member of
    a JSON object, else its ``error`` (or ``error.message``, or ``detail``), else an HTML page's title, else
    the first line of text that is not blank. Control characters are removed, anything of ``url`` that may
    be secret (its user:password, query string and their values) is cut out, and the result is at most
    ``REASON_CHARS`` characters. Empty when the server said nothing."""
    text = body[:REASON_BYTES].decode("utf-8", "replace")
    reason = _json_reason(text)
    if reason is None:
        title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
        if title:
            reason = re.sub(r"<[^>]*>", "", title.group(1))
        else:
            reason = next((line for line in text.splitlines() if _printable(line)), "")
    reason = _printable(without_secrets(reason, url))
    return reason if len(reason) <= REASON_CHARS else reason[:REASON_CHARS - 1] + "…"


def _json_reason(text: str) -> str | None:
    import json

    try:
        document = json.loads(text)
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    error = document.get("error")
    for value in (document.get("message"), error.get("message") if isinstance(error, dict) else error,
                  document.get("detail")):
        if isinstance(value, str) and _printable(value):
            return value
    return None


def _printable(text: str) -> str:
    """``text`` on one line: terminal escape sequences removed, control and format characters (a newline,
    ESC, a bidi override) made a space, runs of spaces one space."""
    import unicodedata

    text = re.sub(r"\x1b\[[0-9;?]*[ -/]*[@-~]", "", text)
    cleaned = "".join(" " if unicodedata.category(c).startswith("C") else c for c in text)
    return " ".join(cleaned.split())


def without_secrets(text: str, url: str) -> str:
    """``text`` (something a server said) with whatever of ``url`` may be secret cut out: the URL itself, its
    user:password and password (or a user name given alone, which is a token), the HTTP Basic credentials
    made of them, its path, its query string and each value in it. Values shorter than 4 characters are left: they
    would cut ordinary words."""
    from urllib.parse import parse_qsl, unquote

    secrets = {url}
    try:
        parts = urlsplit(url)
        user, password = parts.username, parts.password
    except ValueError:
        return text.replace(url, "…")
    if "@" in parts.netloc:
        secrets.add(parts.netloc.rpartition("@")[0] + "@")
        if user and not password:  # a token given as the user name (https://TOKEN@host)
            secrets.update({user, unquote(user)})
    if password:
        secrets.update({password, unquote(password)})
        basic = f"{unquote(user or '')}:{unquote(password)}".encode("latin-1", "replace")
        secrets.add(base64.b64encode(basic).decode())
    if parts.path.strip("/"):  # a Slack or Teams webhook's token, a city's unlisted prefix
        secrets.update({parts.path, parts.path.rstrip("/"), unquote(parts.path).rstrip("/")})
    if parts.query:
        secrets.add(parts.query)
        for _, value in parse_qsl(parts.query, keep_blank_values=True):
            secrets.update({value, quote_plus(value)})
    for secret in sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, "…")
    return text


#: Seconds to wait before a POST's second and third attempts (the alarm webhook, the witness's hand-back).
RETRY_WAITS: tuple[float, ...] = (2.0, 8.0)


@dataclass(frozen=True)
class Attempts:
    """What :func:`post_until_taken` got: ``taken`` on a 2xx answer. ``tried``: what each attempt that was
    not taken got (English, Chinese); ``final``: why it was not tried again, when that was not for want of
    attempts (None then, and when taken)."""

    taken: bool
    status: int | None
    tried: list[tuple[str, str]]
    final: tuple[str, str] | None

    @property
    def count(self) -> int:
        return len(self.tried) + self.taken

    def before(self) -> tuple[str, str]:
        """' on attempt N (before: ...)' and its Chinese, for an answer taken after failed attempts; else ''."""
        if not self.tried:
            return "", ""
        return (f" on attempt {self.count} (before: {'; '.join(got for got, _ in self.tried)})",
                f"（第 {self.count} 次尝试；此前：{'；'.join(got for _, got in self.tried)}）")

    def why_not(self) -> tuple[str, str]:
        """The last attempt's answer is in ``tried[-1]``; this says why there was no other."""
        n = len(self.tried)
        return self.final or (f"after {n} attempt{'s' if n > 1 else ''}", f"共尝试 {n} 次")


class RefusedInBody(Exception):
    """A 2xx answer whose body says the request was not taken (a chat robot's ``errcode``): raised by a
    ``send`` of :func:`post_until_taken`. Not tried again: a wrong token, keyword or signature stays
    wrong, and a robot's rate limit lasts longer than the waits (DingTalk's: 10 minutes)."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


#: What one POST got: its status, the reason its answer gives ('' if none), the seconds its Retry-After asks.
Answer = tuple[int, str, float | None]


def post_until_taken(send: Callable[[], Answer], url: str, *, timeout: float, retry_waits: Sequence[float],
                     sleep: Callable[[float], None], what: str, redirect: tuple[str, str]) -> Attempts:
    """Call ``send`` (one POST to ``url``, redirects not followed: its :data:`Answer`) until it answers
    2xx, waiting ``retry_waits[i]`` before attempt ``i + 2`` after a connection error, a timeout or a
    5xx/429 answer, or longer if that answer's ``Retry-After`` asked for it (at most
    :data:`MAX_RETRY_AFTER`: an answer asking for more is not tried again). Another 4xx will not change
    by itself and a redirect is not followed (``redirect``: what to do instead): neither is tried again.
    A 2xx that ``send`` finds refused in its body (:class:`RefusedInBody`) is not taken either, nor tried
    again. Never raises."""
    import requests

    tried: list[tuple[str, str]] = []
    final: tuple[str, str] | None = None
    status: int | None = None
    asked: float | None = None  # the wait the last answer asked for (Retry-After)
    while final is None and len(tried) < len(retry_waits) + 1:
        if tried:
            sleep(max(retry_waits[len(tried) - 1], asked or 0.0))
        status, asked = None, None
        try:
            status, reason, asked = send()
        except requests.Timeout:
            tried.append((f"gave no answer within {timeout:g} s", f"{timeout:g} 秒内无应答"))
            continue
        except RefusedInBody as refused:
            status = refused.status
            why = _printable(without_secrets(refused.reason, url))[:REASON_CHARS]
            tried.append((f"answered {status} but refused the message: {why}", f"返回 {status}，但拒收消息：{why}"))
            final = ("not retried: the refusal will not change by waiting", "未重试：等待不会改变该拒收")
            continue
        except requests.ConnectionError as exc:
            why = os_reason(exc) or scrubbed(str(exc), url, what=what)
            tried.append((f"cannot be reached: {why}", f"无法连接：{why}"))
            continue
        except Exception as exc:  # noqa: BLE001 - a malformed URL, an unexpected failure: not worth a retry
            why = f"{type(exc).__name__}: {scrubbed(str(exc), url, what=what)}"
            tried.append((f"cannot be sent: {why}", f"无法发送：{why}"))
            final = ("not retried", "未重试")
            continue
        if 200 <= status < 300:
            return Attempts(True, status, tried, None)
        said, said_zh = (f" (reason: {reason})", f"（原因：{reason}）") if reason else ("", "")
        tried.append((f"answered {status}{said}", f"返回 {status}{said_zh}"))
        if 300 <= status < 400:
            final = redirect
        elif status < 500 and status != 429:
            final = ("not retried: a 4xx answer will not change by itself", "未重试：4xx 应答不会自行改变")
        elif asked is not None and asked > MAX_RETRY_AFTER and len(tried) <= len(retry_waits):
            final = (f"not retried: it asked to be tried again in {asked:.0f} s (Retry-After), more than "
                     f"{MAX_RETRY_AFTER:.0f} s", f"未重试：对方要求 {asked:.0f} 秒后再试（Retry-After），超过 "
                     f"{MAX_RETRY_AFTER:.0f} 秒")
    return Attempts(False, status, tried, final)


#: The longest wait an answer's Retry-After is granted before the next attempt; one asking for longer
#: is not tried again (a nightly job, a witness's round, must not hang on a server's say-so).
MAX_RETRY_AFTER = 60.0


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """The seconds a ``Retry-After`` header asks to wait (RFC 9110 §10.2.3: a number of seconds, or an
    HTTP date), at least 0; None when there is none or it cannot be read."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, as HTTP dates always are
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
