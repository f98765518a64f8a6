"""Jurisdiction: a county officer sees only their county; asking for more is "not found"."""

from __future__ import annotations

import pytest

from store.accounts import AuditEntry
from tests.web.conftest import csrf_token

EAST_ITEM, WEST_ITEM = "YW-P-K001-01", "YW-P-K002-01"  # K001 is in 东湖区 (360102), K002 in 西湖区 (360103)


@pytest.mark.parametrize("path", ["/items/{}", "/api/v1/items/{}"])
def test_a_county_officer_asking_for_another_countys_item_gets_404(client_as, path: str) -> None:
    east = client_as("east")
    assert east.get(path.format(EAST_ITEM)).status_code == 200
    other = east.get(path.format(WEST_ITEM))
    missing = east.get(path.format("NO-SUCH-ITEM"))
    assert other.status_code == missing.status_code == 404
    assert f"<h1>{WEST_ITEM}" not in other.text and "FT17" not in other.text
    if path.startswith("/api"):
        assert other.json == missing.json  # indistinguishable from an item that does not exist


def test_the_institute_sees_every_county(client_as) -> None:
    admin = client_as("admin")
    assert admin.get(f"/items/{EAST_ITEM}").status_code == 200
    assert admin.get(f"/items/{WEST_ITEM}").status_code == 200


def test_lists_and_the_dashboard_show_only_the_officers_county(client_as) -> None:
    east = client_as("east")
    items = east.get("/items?subject=YW").text
    assert EAST_ITEM in items and WEST_ITEM not in items
    dashboard = east.get("/dashboard").text
    assert "东湖区中招办 及下属单位" in dashboard
    people = east.get("/people").text
    assert "K001" in people and "K002" not in people
    stations = east.get("/stations").text
    assert "ST-K001" in stations and "ST-K002" not in stations


def test_the_item_search_ignores_case_on_both_databases_and_keeps_to_the_county(client_as) -> None:
    # LIKE ignores ASCII case on SQLite but not on PostgreSQL: yw-p found the east county's bundles on one
    # database and nothing on the other
    east = client_as("east")
    for q in (EAST_ITEM, EAST_ITEM.lower()):
        found = east.get(f"/items?q={q}").text
        assert EAST_ITEM in found and WEST_ITEM not in found, q
    assert WEST_ITEM not in east.get(f"/items?q={WEST_ITEM.lower()}").text


def test_an_officers_registry_pages_read_only_their_units(client_as, app) -> None:
    # Filtered after reading, every page view of a site officer read the city's ~4,000 people, ~2,000
    # stations and their keys.
    from sqlalchemy import event

    engine = app.extensions["custody"].instance.db.engine
    statements: list[str] = []

    def seen(conn, cursor, statement, *rest) -> None:
        statements.append(" ".join(statement.split()))

    east = client_as("east")
    event.listen(engine, "before_cursor_execute", seen)
    try:
        pages = [east.get(path) for path in ("/people", "/stations", "/keys")]
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert [page.status_code for page in pages] == [200, 200, 200]
    reads = [s for s in statements if any(f"FROM {table} " in s + " " for table in ("people", "stations", "keys"))]
    assert len(reads) >= 4  # people; stations and their keys; keys
    for statement in reads:
        assert "people.unit IN" in statement or "stations.unit IN" in statement, statement
    assert "ST-K001" in pages[1].text and "ST-K002" not in pages[1].text


def test_alerts_are_scoped_too(client_as, app) -> None:
    ledger = app.extensions["custody"].ledger
    west_units = {"360103", "360103-BMS", "360103-Q1", "K002", "K002-01", "K002-02"}
    west_alerts = [a for a in ledger.alerts(limit=1000) if a["unit"] in west_units and a["item"]]
    assert west_alerts  # the simulation planted some in 西湖区
    client = client_as("east")
    for page in (client.get("/dashboard").text, client.get("/alerts").text):
        for alert in west_alerts:
            assert f'href="/items/{alert["item"]}"' not in page
    everything = client_as("admin").get("/alerts?severity=warning").text
    assert any(f'href="/items/{a["item"]}"' in everything for a in west_alerts if a["severity"] == "warning")


def test_labels_of_another_county_cannot_be_downloaded(client_as) -> None:
    east = client_as("east")
    assert east.get("/labels/pdf?unit=K002").status_code == 404
    assert east.get("/labels/pdf?box=YW-X-K002").status_code == 404
    mine = east.get("/labels/pdf?subject=YW")
    assert mine.status_code == 200 and mine.data.startswith(b"%PDF")


def test_item_views_and_label_downloads_are_audited(client_as, exam_day) -> None:
    from sqlalchemy import select

    detective = client_as("detective")
    detective.get(f"/items/{EAST_ITEM}")
    client_as("east").get("/labels/pdf?subject=SX&unit=K001")
    with exam_day.instance.db.session() as s:
        views = s.scalars(select(AuditEntry).where(AuditEntry.username == "detective",
                                                   AuditEntry.action == "view_item")).all()
        downloads = s.scalars(select(AuditEntry).where(AuditEntry.username == "east",
                                                       AuditEntry.action == "download_labels")).all()
    assert any(v.target == EAST_ITEM and v.role == "investigator" for v in views)
    assert any(d.target == "subject=SX,unit=K001" for d in downloads)
    page = client_as("auditor").get("/audit?action=view_item").text
    assert "detective" in page
    # actions and roles by name in the page's language; the filter keeps the stable codes as values
    assert "<td>查看物品</td>" in page and '<option value="view_item" selected>查看物品</option>' in page
    assert '<span class="muted">调查人员</span>' in page and ">view_item<" not in page


def test_a_county_auditor_reads_only_what_the_accounts_of_its_county_did(client_as, exam_day) -> None:
    """Every auditor read the whole institute's trail: which items and investigations the other
    counties' officers looked at, and failed logins under any name."""
    from datetime import UTC, datetime

    from tests.web.conftest import CHEAP, PASSWORD
    from web.accounts import create_account
    from web.audit import record

    instance = exam_day.instance
    at = datetime(2017, 6, 20, tzinfo=UTC)
    create_account(instance, "east-audit", PASSWORD, "auditor", "360102", at, hasher=CHEAP)
    record(instance, "east", "view_item", EAST_ITEM, now=at)
    record(instance, "detective", "view_investigation", "leak-YW-east", now=at)
    record(instance, "west", "view_item", WEST_ITEM, now=at)
    record(instance, "admin", "rotate_key", "log_signer", now=at)
    record(instance, "nobody", "login_failed", "nobody", now=at)

    county = client_as("east-audit").get("/audit").text
    assert EAST_ITEM in county and "leak-YW-east" in county  # the detective is of 东湖区 too
    assert WEST_ITEM not in county and "log_signer" not in county and "nobody" not in county
    assert "仅限本单位及下属单位账户的操作" in county
    assert client_as("east-audit").get(f"/audit?target={WEST_ITEM}").text.count("<tr><td>") == 0
    city = client_as("auditor").get("/audit").text
    assert all(t in city for t in (EAST_ITEM, "leak-YW-east", WEST_ITEM, "log_signer", "nobody"))
    assert "仅限本单位" not in city


def test_an_officer_cannot_register_a_station_outside_their_county(client_as, exam_day) -> None:
    from store.models import Station

    east = client_as("east")
    page = east.get("/stations")
    response = east.post("/stations", data={"csrf_token": csrf_token(page.text), "code": "ST-EVIL",
                                            "unit": "K002", "name": "x", "public_key": "00" * 32})
    assert response.status_code == 400  # K002 is not among the units the form offers
    with exam_day.instance.db.session() as s:
        assert s.get(Station, "ST-EVIL") is None
