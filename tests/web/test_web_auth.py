"""Logging in and out: wrong passwords, throttling, expired and stolen sessions, CSRF, redirects."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import pytest

from tests.web.conftest import CHEAP, PASSWORD, csrf_token, login, new_address
from web.accounts import AccountError, create_account


def _fresh_account(exam_day, role: str = "officer", unit: str | None = "360102") -> str:
    username = f"u{uuid.uuid4().hex[:10]}"
    create_account(exam_day.instance, username, PASSWORD, role, unit, datetime.now(UTC), hasher=CHEAP)
    return username


def test_a_wrong_password_is_refused_without_saying_which_part_was_wrong(app) -> None:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = new_address()
    wrong = login(client, "east", "not-the-password")
    unknown = login(client, "nobody-at-all", "not-the-password")
    assert wrong.status_code == unknown.status_code == 401
    assert "用户名或密码错误" in wrong.text and "用户名或密码错误" in unknown.text
    assert client.get("/dashboard").status_code == 302


def test_an_over_long_username_or_password_is_refused_with_a_message(app) -> None:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = new_address()
    for username, password in (("east" * 20, PASSWORD), ("east", "x" * 300)):
        response = login(client, username, password)
        assert response.status_code == 400 and "用户名或密码错误" in response.text
    assert client.get("/dashboard").status_code == 302


def test_five_failures_lock_the_account_and_thirty_the_address_for_a_while(app, exam_day) -> None:
    username = _fresh_account(exam_day)
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = new_address()
    for _ in range(5):
        assert login(client, username, "guess-guess-guess").status_code in (401, 429)
    locked = login(client, username)  # even the right password, now
    assert locked.status_code == 429 and "分钟后再试" in locked.text
    elsewhere = app.test_client()
    elsewhere.environ_base["REMOTE_ADDR"] = new_address()
    assert login(elsewhere, username).status_code == 429  # the account is locked, from anywhere
    # A colleague behind the same address (an exam site's NAT) still logs in: one person's typos do
    # not lock out the site...
    colleague = _fresh_account(exam_day)
    assert login(client, colleague).status_code == 302
    # ...but thirty failures from one address, over many accounts, lock the address for every account.
    client.get("/logout")
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = new_address()
    limit = app.config["LOGIN_MAX_ADDRESS_FAILURES"]
    for n in range(limit - 1):
        assert login(client, f"nobody{n}", "guess-guess-guess").status_code == 401
    assert login(client, "nobody", "guess-guess-guess").status_code == 429  # the failure that locks it
    assert login(client, "west").status_code == 429
    assert login(elsewhere, "west").status_code == 302


def test_the_lock_is_shared_by_every_app_on_the_database(app, exam_day) -> None:
    from tests.web.conftest import make_app

    username = _fresh_account(exam_day)
    address = new_address()
    first, second = app.test_client(), make_app(exam_day.instance).test_client()
    for n in range(5):
        client = first if n % 2 else second
        client.environ_base["REMOTE_ADDR"] = address
        login(client, username, "guess-guess-guess")
    second.environ_base["REMOTE_ADDR"] = new_address()
    assert login(second, username).status_code == 429


def test_an_idle_session_expires_and_leads_to_the_login_page(client_as) -> None:
    client = client_as("east")
    assert client.get("/dashboard").status_code == 200
    with client.session_transaction() as session:
        session["seen"] = int(time.time()) - 2 * 3600
    response = client.get("/dashboard")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    page = client.get(response.headers["Location"])
    assert "登录已过期" in page.text


def test_a_session_cookie_older_than_its_lifetime_is_refused(exam_day) -> None:
    from datetime import timedelta

    from tests.web.conftest import make_app

    app = make_app(exam_day.instance, PERMANENT_SESSION_LIFETIME=timedelta(seconds=1))
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = new_address()
    assert login(client, "east").status_code == 302
    time.sleep(2.1)
    response = client.get("/dashboard")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_after_logout_a_copied_session_cookie_is_worthless(client_as, app) -> None:
    client = client_as("west")
    stolen = client.get_cookie("custody_session").value
    page = client.get("/dashboard")
    assert client.post("/logout", data={"csrf_token": csrf_token(page.text)}).status_code == 302
    thief = app.test_client()
    thief.set_cookie("custody_session", stolen)
    response = thief.get("/dashboard")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_a_forged_or_missing_csrf_token_is_refused_and_nothing_is_stored(client_as, exam_day) -> None:
    from store.models import Person

    client = client_as("admin")
    for token in ("forged-token", None):
        data = {"staff_id": f"X{uuid.uuid4().hex[:8]}", "name": "王五", "unit": "K001"}
        if token:
            data["csrf_token"] = token
        response = client.post("/people", data=data)
        assert response.status_code == 400
        assert "表单已过期或并非来自本站" in response.text
        with exam_day.instance.db.session() as s:
            assert s.get(Person, data["staff_id"]) is None
    assert app_login_without_token(client) == 400


def test_a_nul_in_a_form_is_a_bad_request_and_nothing_is_stored(client_as, exam_day) -> None:
    """A person's name with a NUL was a 500 on PostgreSQL (a text column refuses it)."""
    from store.models import Person

    client = client_as("admin")
    token = csrf_token(client.get("/people").text)
    data = {"csrf_token": token, "staff_id": f"X{uuid.uuid4().hex[:8]}", "name": "王\x00五", "unit": "K001"}
    assert client.post("/people", data=data).status_code == 400
    with exam_day.instance.db.session() as s:
        assert s.get(Person, data["staff_id"]) is None


def app_login_without_token(client) -> int:
    return client.post("/login", data={"username": "east", "password": PASSWORD}).status_code


def test_login_redirects_only_to_this_site(app) -> None:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = new_address()
    for target, expected in (("/items/YW-X-K001", "/items/YW-X-K001"), ("https://evil.example/", "/dashboard"),
                             ("//evil.example/x", "/dashboard")):
        page = client.get(f"/login?next={target}")
        response = client.post("/login", data={"csrf_token": csrf_token(page.text), "username": "admin",
                                               "password": PASSWORD, "next": target})
        assert response.headers["Location"] == expected
        client.get("/dashboard")


def test_cookies_are_httponly_samesite_and_secure_when_configured(exam_day) -> None:
    from tests.web.conftest import make_app

    app = make_app(exam_day.instance, SESSION_COOKIE_SECURE=True)
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = new_address()
    response = login(client, "east")
    cookie = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("custody_session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_the_secret_key_is_kept_in_the_instance_with_mode_0600(exam_day) -> None:
    from tests.web.conftest import make_app
    from web.settings import SECRET_FILE

    first = make_app(exam_day.instance).secret_key
    path = exam_day.instance.home / SECRET_FILE
    assert path.exists() and (path.stat().st_mode & 0o777) == 0o600
    # A second app (a restart, another worker) shares the key, so sessions survive it.
    assert make_app(exam_day.instance).secret_key == first == path.read_text(encoding="ascii").strip()


def test_pages_need_a_login_and_roles_limit_what_an_account_may_do(client_as, app) -> None:
    anonymous = app.test_client()
    for path in ("/dashboard", "/items", "/items/YW-X-K001", "/keys", "/labels", "/accounts"):
        response = anonymous.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"], path
    auditor = client_as("auditor")
    assert auditor.get("/audit").status_code == 200
    assert auditor.get("/accounts").status_code == 403
    assert auditor.get("/labels").status_code == 403
    detective = client_as("detective")
    assert detective.get("/audit").status_code == 403
    page = detective.get("/people")
    response = detective.post("/people", data={"csrf_token": csrf_token(page.text), "staff_id": "Z1", "name": "x",
                                               "unit": "K001"})
    assert response.status_code == 403


def test_a_username_with_a_trailing_newline_is_refused(exam_day) -> None:
    # "admin\n" would be a second account that reads as "admin" ($ in a pattern matches before a final newline)
    with pytest.raises(AccountError, match="username"):
        create_account(exam_day.instance, "admin2\n", PASSWORD, "admin", None, datetime.now(UTC), hasher=CHEAP)


@pytest.mark.parametrize("path", ["/stations", "/people"])
def test_a_form_refused_for_its_csrf_token_is_answered_in_the_signed_in_page(client_as, path: str) -> None:
    # The CSRF check ran before the account was read: the refusal looked signed out (no navigation, a login
    # link), although the session was good and the next click went on as before.
    east = client_as("east")
    refused = east.post(path, data={"code": "ST-X", "unit": "K001", "name": "x"})
    assert refused.status_code == 400
    assert "表单已过期或并非来自本站。请刷新页面后重试。" in refused.text
    assert 'class="who">东湖区 张伟' in refused.text and 'action="/logout"' in refused.text
    assert east.get("/dashboard").status_code == 200
    nul = east.get("/items?q=%00")
    assert nul.status_code == 400 and 'class="who">东湖区 张伟' in nul.text
