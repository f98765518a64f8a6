"""Factories for the web tests: a simulated exam day per database, apps, logged-in clients, signed requests.

``exam_day`` (one per database and test session: the tiny sample exam, every
handover simulated, accounts of every role) serves the tests that only read or
that change things no other test looks at; tests that need a pristine log use
the suite's ``tiny_exam``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher

from tests.factories import TEST_SECRET

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
#: Fast argon2 parameters for tests; verification reads them from the hash.
CHEAP = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
PASSWORD = "correct-horse-battery"
ACCOUNTS = {  # username: (role, unit)
    "admin": ("admin", None),
    "east": ("officer", "360102"),      # 东湖区中招办
    "west": ("officer", "360103"),      # 西湖区中招办
    "auditor": ("auditor", "3601"),
    "detective": ("investigator", "360102"),
}


def _databases() -> list[str]:
    import os

    return os.environ.get("CUSTODY_TEST_DATABASES", "sqlite,postgresql").split(",")


@dataclass
class ExamDay:
    instance: Any
    db: str


@pytest.fixture(scope="session", params=_databases())
def exam_day(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExamDay]:
    """The tiny exam after its whole handover flow, with an account of every role."""
    import os

    from sqlalchemy import create_engine, text

    from store import simulation
    from store.instance import init_instance
    from tests.factories import prepare_sample_exam
    from web.accounts import create_account

    tmp = tmp_path_factory.mktemp(f"exam-day-{request.param}")
    admin_url = os.environ.get("CUSTODY_TEST_PG_URL", PG_ADMIN_URL)
    name = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'custody.db'}"
    else:
        name = f"custody_web_{uuid.uuid4().hex[:12]}"
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        url = admin_url.rsplit("/", 1)[0] + "/" + name
    instance, _ = init_instance(tmp / "home", origin="test.exam/zk2017", institute="3601", now=simulation.SETUP_AT,
                                secret=TEST_SECRET, url=url)
    plan = prepare_sample_exam(instance, setup_at=simulation.SETUP_AT, labels_at=simulation.LABELS_AT)
    simulation.run(instance, plan)
    for username, (role, unit) in ACCOUNTS.items():
        create_account(instance, username, PASSWORD, role, unit, datetime.now(UTC), hasher=CHEAP,
                       display_name={"east": "东湖区 张伟"}.get(username, ""))
    try:
        yield ExamDay(instance, request.param)
    finally:
        instance.close()
        if name is not None:
            admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


def make_app(instance: Any, **config: Any) -> Any:
    from web import create_app

    return create_app({"INSTANCE": instance, "SESSION_COOKIE_SECURE": False, "PASSWORD_HASHER": CHEAP, **config})


@pytest.fixture
def app(exam_day: ExamDay) -> Any:
    return make_app(exam_day.instance)


def csrf_token(html: str) -> str:
    found = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
    assert found, "the page has no CSRF token"
    return found.group(1)


def new_address() -> str:
    """A client address of its own, so that login throttling in one test never touches another."""
    n = uuid.uuid4().int
    return f"10.{n % 250}.{(n >> 8) % 250}.{(n >> 16) % 250 + 1}"


def login(client: Any, username: str, password: str = PASSWORD) -> Any:
    page = client.get("/login")
    return client.post("/login", data={"csrf_token": csrf_token(page.text), "username": username,
                                       "password": password})


@pytest.fixture
def client_as(app: Any) -> Callable[[str], Any]:
    """Factory: a test client logged in as one of :data:`ACCOUNTS`, from an address of its own."""
    def make(username: str) -> Any:
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = new_address()
        response = login(client, username)
        assert response.status_code == 302, response.text
        return client
    return make


def signed_headers(desk_signer: Any, station: str, method: str, path: str, body: bytes,
                   now: datetime | None = None, nonce: str | None = None) -> dict[str, str]:
    from web.station_auth import sign_request

    return sign_request(method, path, body, station=station, kid=desk_signer.kid, sign=desk_signer.sign,
                        now=now or datetime.now(UTC), nonce=nonce)


def post_signed(client: Any, signer: Any, station: str, document: Any, *, raw: bytes | None = None,
                nonce: str | None = None) -> Any:
    body = raw if raw is not None else json.dumps(document).encode()
    headers = signed_headers(signer, station, "POST", "/api/v1/events", body, nonce=nonce)
    return client.post("/api/v1/events", data=body, headers={**headers, "Content-Type": "application/json"})


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    folder = tmp_path / "screenshots"
    folder.mkdir()
    return folder
