"""The real server (waitress) driven by Debian's Chromium, headless: log in, dashboard, timeline, label PDF.

The screenshots are written to the test's temporary folder and to
/tmp/custody-dashboard.png (and -item.png) for a person to look at.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import PASSWORD, make_app

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.browser


@pytest.fixture
def live_server(exam_day) -> Iterator[str]:
    """The application on waitress, in a thread, on a free port of 127.0.0.1."""
    if exam_day.db != "sqlite":
        pytest.skip("the browser and live-server tests run once, on SQLite")
    from waitress.server import create_server

    from web.settings import DEFAULTS

    server = create_server(make_app(exam_day.instance), host="127.0.0.1", port=0, threads=4,
                           max_request_body_size=DEFAULTS["MAX_CONTENT_LENGTH"], ident="custody")
    def run() -> None:
        try:
            server.run()
        except OSError:  # the listening socket closed under select() at shutdown
            pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        server.close()
        thread.join(timeout=5)


@pytest.fixture
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Debian's Chromium is not installed at {CHROMIUM} (apt install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def test_log_in_open_the_dashboard_follow_a_timeline_and_download_labels(live_server: str, browser: Any,
                                                                          tmp_path: Path) -> None:
    context = browser.new_context(viewport={"width": 1360, "height": 900}, locale="zh-CN", accept_downloads=True)
    page = context.new_page()
    page.goto(live_server + "/")
    assert page.url.endswith("/login")
    assert page.locator("h1").inner_text() == "登录"
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard")
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    assert "考试当日" in page.locator("h1").inner_text()
    for heading in ("夜间核验", "最新检查点", "逾期", "警报"):
        assert page.locator(".card h2", has_text=heading).count() == 1
    assert page.locator("table.grid tbody tr").count() >= 6  # the six subjects
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    shutil.copy(tmp_path / "dashboard.png", "/tmp/custody-dashboard.png")

    page.click("nav >> text=物品")
    page.fill("input[name=q]", "YW-C-K001-01")
    page.click("form.filters button")
    page.click("a:text-is('YW-C-K001-01')")
    page.wait_for_url("**/items/YW-C-K001-01")
    assert page.locator("h2", has_text="交接记录").count() == 1
    entries = page.locator("ol.timeline li.entry")
    assert entries.count() >= 8
    assert "封装" in page.locator("ol.timeline").inner_text()
    page.screenshot(path=str(tmp_path / "item.png"), full_page=True)
    shutil.copy(tmp_path / "item.png", "/tmp/custody-item.png")
    with page.expect_navigation():
        entries.last.locator("a", has_text="包含证明").click()
    assert page.locator("body").inner_text().startswith("c2sp.org/tlog-proof@v1")

    page.goto(live_server + "/labels")
    page.fill("input[name=box]", "YW-X-K001")
    with page.expect_download() as download_info:
        page.click("form:has(input[name=box]) button")
    download = download_info.value
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    assert saved.name == "labels-YW-X-K001.pdf" and saved.read_bytes().startswith(b"%PDF")
    context.close()


def test_the_live_server_refuses_a_50_mb_body_without_reading_it(live_server: str) -> None:
    host, port = live_server.removeprefix("http://").split(":")
    started = time.perf_counter()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 52428800\r\n\r\n" + b"{" * 65536)
        reply = sock.recv(4096).decode("latin-1")
    assert reply.startswith("HTTP/1.1 413"), reply[:200]
    assert time.perf_counter() - started < 5


def test_the_live_server_serves_the_checkpoint_to_witnesses(live_server: str) -> None:
    import requests

    response = requests.get(live_server + "/checkpoint", timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
    assert response.text.startswith("test.exam/zk2017\n")


def test_on_a_phone_no_page_scrolls_sideways(live_server: str, browser: Any) -> None:
    """375 px wide: wide tables scroll inside themselves and two-column sections stack."""
    context = browser.new_context(viewport={"width": 375, "height": 740}, locale="zh-CN")
    page = context.new_page()
    page.goto(live_server + "/login")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard")
    for path in ("/dashboard", "/items", "/items/YW-P-K001-01", "/alerts", "/keys", "/accounts", "/audit",
                 "/labels", "/stations"):
        page.goto(live_server + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"{path} is {width} px wide on a 375 px screen"
    context.close()
