"""The configuration of the web application: defaults, the per-instance secret key, deadlines."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

#: Name of the file in the instance folder that holds the session-signing key (mode 0600).
SECRET_FILE = "web-secret-key"
MiB = 1024 * 1024


@dataclass(frozen=True)
class Deadlines:
    """When an item is overdue (the dashboard's "not received by its deadline").

    Paper bundles, listening discs and blank answer-card bundles must be at
    their exam site ``at_site_before_start`` before their session starts;
    filled answer cards and answer keys must be at the grading centre
    ``at_grading_after_end`` after the session ends.
    """

    at_site_before_start: timedelta = timedelta(minutes=30)
    at_grading_after_end: timedelta = timedelta(hours=24)

    @classmethod
    def from_config(cls, value: Any) -> Deadlines:
        if isinstance(value, Deadlines):
            return value
        if not value:
            return cls()
        value = dict(value)
        return cls(at_site_before_start=timedelta(minutes=float(value.get("at_site_before_start_minutes", 30))),
                   at_grading_after_end=timedelta(hours=float(value.get("at_grading_after_end_hours", 24))))


DEFAULTS: dict[str, Any] = {
    "SESSION_COOKIE_NAME": "custody_session",
    "SESSION_COOKIE_SECURE": True,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "PERMANENT_SESSION_LIFETIME": timedelta(hours=8),
    #: A session unused this long is over, whatever its lifetime.
    "SESSION_IDLE_TIMEOUT": timedelta(minutes=60),
    "MAX_CONTENT_LENGTH": 1 * MiB,
    "MAX_FORM_MEMORY_SIZE": 256 * 1024,
    "WTF_CSRF_TIME_LIMIT": None,  # the token lives as long as the session
    "WTF_CSRF_SSL_STRICT": False,  # SameSite=Lax and the token are the defence; proxies rewrite Referer
    "LOGIN_MAX_FAILURES": 5,
    #: Failed logins from one address, over every account, that lock the address: higher than an account's,
    #: since an exam site's staff share its NAT address (see web.accounts.Throttle).
    "LOGIN_MAX_ADDRESS_FAILURES": 30,
    "LOGIN_LOCK": timedelta(minutes=15),
    "STATION_CLOCK_SKEW": timedelta(minutes=5),
    "MAX_EVENTS_PER_REQUEST": 1000,
    "MAX_LABELS_PER_PDF": 5000,
    #: The largest photo of a leaked paper the investigation page accepts (its request alone may exceed
    #: MAX_CONTENT_LENGTH, by the photo and a little form text).
    "MAX_PHOTO_LENGTH": 8 * MiB,
    "DEADLINES": None,
    "BABEL_DEFAULT_LOCALE": "zh_CN",
    "BABEL_DEFAULT_TIMEZONE": "Asia/Shanghai",
    "LANGUAGES": ("zh_CN", "en"),
    "JSON_AS_ASCII": False,
    "VALIDATION_ERROR_STATUS_CODE": 400,
    "AUTO_404_RESPONSE": False,
    "INFO": {"description": "The HTTP API of custody: stations submit signed handover events and fetch "
                            "their key bundle and expected handovers; anyone may fetch checkpoints and "
                            "proofs. See docs/api.md."},
}


#: Room for the text fields of a form that also carries a photo.
FORM_ALLOWANCE = 64 * 1024


def max_request_body(config: Mapping[str, Any]) -> int:
    """The largest request body any route accepts: what the WSGI server must let through."""
    return max(int(config["MAX_CONTENT_LENGTH"]), int(config["MAX_PHOTO_LENGTH"]) + FORM_ALLOWANCE)


def content_security_policy(style_hashes: Iterable[str] = ()) -> str:
    """The pages' policy: everything from this site only, no inline script; ``style_hashes`` (base64
    SHA-256 of inline ``<style>`` blocks) let a page embed a self-contained report as it is."""
    styles = "".join(f" 'sha256-{h}'" for h in style_hashes)
    return ("default-src 'self'; img-src 'self' data:; style-src 'self'" + styles + "; script-src 'self'; "
            "frame-ancestors 'none'; form-action 'self'; base-uri 'none'")


def load_secret_key(home: Path) -> str:
    """The instance's session-signing key: read from the home folder, created (0600) on first use."""
    path = home / SECRET_FILE
    try:
        text = path.read_text(encoding="ascii").strip()
        if len(text) >= 32:
            return text
    except FileNotFoundError:
        pass
    key = secrets.token_hex(32)
    home.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{SECRET_FILE}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(key + "\n")
    try:
        # Another process may have created it meanwhile: keep theirs, so all share one key.
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    return path.read_text(encoding="ascii").strip()


def merged(config: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(DEFAULTS)
    out.update({k: v for k, v in config.items() if k.isupper()})
    return out
