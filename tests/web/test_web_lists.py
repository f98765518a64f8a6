"""The registry lists at city scale (a station and a key per room, ~4,000 people): paged in the database,
searchable, and still only the officer's own units; the audit trail, paged to its oldest entry."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import pytest

from store.models import KeyRecord, Person, Station
from tests.factories import T0

EAST_UNITS = {"360102", "360102-Q1", "360102-BMS", "K001", "K001-01", "K001-02"}  # 东湖区, the officer's county
ROW = re.compile(r"<tr[^>]*><td><code>([^<]+)</code>")


@dataclass
class Crowded:
    """The tiny exam with more stations, station keys and people than a page shows, in both counties."""

    instance: Any
    admin: Any
    east: Any  # the officer of 东湖区
    east_stations: list[str]
    west_stations: list[str]


def _key(code: str) -> KeyRecord:
    raw = hashlib.sha256(code.encode()).digest()
    return KeyRecord(kid=hashlib.sha256(raw).hexdigest()[:16], public_raw=raw, role="station", owner=code,
                     valid_from=T0)


@pytest.fixture
def crowded(tiny_exam: Any) -> Crowded:
    from datetime import UTC, datetime

    from tests.web.conftest import CHEAP, PASSWORD, login, make_app, new_address
    from web.accounts import create_account
    from web.registry import PAGE

    east = [f"ST-E{n:03d}" for n in range(PAGE + 50)]
    west = [f"ST-W{n:03d}" for n in range(30)]
    rows: list[Any] = []
    for county, site, codes in (("东湖", "K001", east), ("西湖", "K002", west)):
        for n, code in enumerate(codes):  # rooms 01 and 02 in turn
            unit = f"{site}-0{n % 2 + 1}"
            rows += [Station(code=code, unit=unit, name=f"{county} {n} 号台", kid=_key(code).kid, registered_at=T0),
                     _key(code), Person(staff_id=f"{code[3]}-{n:03d}", name=f"{county} {n}", unit=unit)]
    for person in rows:
        if isinstance(person, Person) and person.staff_id in ("E-141", "W-029"):  # E-141: on the second page
            person.name = person.name.split()[0] + " 王小明"
    with tiny_exam.db.write_session() as s:
        s.add_all(rows)
    clients = []
    for name, role, unit in (("admin", "admin", None), ("east", "officer", "360102")):
        create_account(tiny_exam, name, PASSWORD, role, unit, datetime.now(UTC), hasher=CHEAP)
        client = make_app(tiny_exam).test_client()
        client.environ_base["REMOTE_ADDR"] = new_address()
        assert login(client, name).status_code == 302
        clients.append(client)
    return Crowded(tiny_exam, clients[0], clients[1], east, west)


def listed(client: Any, path: str) -> list[str]:
    page = client.get(path)
    assert page.status_code == 200, path
    return ROW.findall(page.text)


def every_page(client: Any, path: str) -> list[str]:
    """The rows of every page of a list, following its pager's "next" links."""
    found: list[str] = []
    while True:
        html = client.get(path).text
        found += ROW.findall(html)
        following = re.search(r'<a href="([^"]+)">[^<]+ ›</a>', html)
        if following is None:
            return found
        path = following.group(1).replace("&amp;", "&")


def test_the_stations_are_paged_in_the_database(crowded: Crowded) -> None:
    # Every station of the city was listed on one page: 1,965 rows, 490 KiB, a quarter of a second.
    from web.registry import PAGE

    stations = sorted(crowded.east_stations + crowded.west_stations)
    first = crowded.admin.get("/stations").text
    assert ROW.findall(first) == stations[:PAGE]
    assert f"共 {len(stations)} 个交接台" in first and "1 / 2" in first
    assert listed(crowded.admin, "/stations?page=2") == stations[PAGE:]
    for junk in ("abc", "0", "-3", "1.5", ""):  # read as the first page, as the other lists do
        assert listed(crowded.admin, f"/stations?page={junk}") == stations[:PAGE], junk
    # a page past the end (a kept link, a typed number) is the last page, not an empty table
    assert listed(crowded.admin, "/stations?page=99999999") == stations[PAGE:]
    assert "2 / 2" in crowded.admin.get("/stations?page=3").text
    assert every_page(crowded.admin, "/stations") == stations


def test_the_station_search_finds_one_among_many_and_the_pager_keeps_it(crowded: Crowded) -> None:
    admin = crowded.admin
    assert "ST-E140" not in listed(admin, "/stations")
    assert listed(admin, "/stations?q=st-e140") == ["ST-E140"]  # a code, in any case
    assert listed(admin, "/stations?q=%20ST-E140%20") == ["ST-E140"]  # spaces dropped
    assert listed(admin, "/stations?q=K002-02") == crowded.west_stations[1::2]  # a unit's code
    assert every_page(admin, "/stations?q=第02考场") == (crowded.east_stations[1::2]  # a unit's name: room 02
                                                         + crowded.west_stations[1::2])
    assert listed(admin, "/stations?q=%25") == [] and listed(admin, "/stations?q=_") == []  # not wildcards
    page = admin.get("/stations?q=ST-E").text
    assert "共 150 个交接台" in page
    assert re.search(r'href="/stations\?page=2&amp;q=ST-E"', page)
    assert every_page(admin, "/stations?q=ST-E") == crowded.east_stations
    hostile = admin.get("/stations?q=%22%3E%3Cscript%3Ealert(1)%3C/script%3E").text
    assert "<script>alert(1)" not in hostile and 'value="&#34;&gt;&lt;script&gt;alert(1)' in hostile
    nothing = admin.get("/stations?q=" + "没有" * 40).text
    assert "没有符合查询条件的交接台。" in nothing and 'value="' + "没有" * 32 + '"' in nothing  # cut to 64


def test_an_officer_lists_and_finds_only_their_own_stations(crowded: Crowded) -> None:
    east = crowded.east
    assert every_page(east, "/stations") == crowded.east_stations
    assert listed(east, "/stations?q=ST-W") == listed(east, "/stations?q=ST-W001") == []
    assert listed(east, "/stations?q=K002") == listed(east, "/stations?q=西湖") == []
    assert every_page(east, "/stations?q=第02考场") == crowded.east_stations[1::2]  # not K002-02's, of that name too


def test_people_are_paged_in_the_database(crowded: Crowded) -> None:
    # Every person of the city was listed on one page: 3,956 rows, 662 KiB, a third of a second.
    from web.registry import PAGE

    with crowded.instance.db.session() as s:
        everyone = [p.staff_id for p in sorted(s.query(Person).all(), key=lambda p: (p.unit, p.staff_id))]
    assert len(everyone) > 2 * PAGE
    first = crowded.admin.get("/people").text
    assert ROW.findall(first) == everyone[:PAGE] and f"共 {len(everyone)} 人" in first and "1 / 3" in first
    assert listed(crowded.admin, "/people?page=3") == everyone[2 * PAGE:]
    for junk in ("abc", "0", "-3"):
        assert listed(crowded.admin, f"/people?page={junk}") == everyone[:PAGE], junk
    assert listed(crowded.admin, "/people?page=99999999") == everyone[2 * PAGE:]
    assert every_page(crowded.admin, "/people") == everyone


def test_the_people_search_finds_one_among_many_and_the_pager_keeps_it(crowded: Crowded) -> None:
    admin = crowded.admin
    assert "E-141" not in listed(admin, "/people")
    assert listed(admin, "/people?q=e-141") == ["E-141"]  # a staff id
    assert sorted(listed(admin, "/people?q=王小明")) == ["E-141", "W-029"]  # a name
    page = admin.get("/people?q=东湖").text  # 东湖区's units by name, and the people named 东湖
    assert re.search(r'href="/people\?page=2&amp;q=%E4%B8%9C%E6%B9%96"', page)
    assert set(every_page(admin, "/people?q=东湖")) >= {f"E-{n:03d}" for n in range(150)}
    assert "没有符合查询条件的人员。" in admin.get("/people?q=nobody").text


def test_an_officer_lists_and_finds_only_their_own_people(crowded: Crowded) -> None:
    with crowded.instance.db.session() as s:
        theirs = {p.staff_id for p in s.query(Person).filter(Person.unit.in_(EAST_UNITS))}
    east = crowded.east
    everything = every_page(east, "/people")
    assert len(everything) == len(theirs) and set(everything) == theirs
    assert "E-141" not in listed(east, "/people") and listed(east, "/people?q=王小明") == ["E-141"]
    assert listed(east, "/people?q=W-0") == listed(east, "/people?q=西湖") == listed(east, "/people?q=K002") == []


def kids(codes: list[str]) -> list[str]:
    return [_key(code).kid for code in codes]


def test_the_keys_are_paged_in_the_database(crowded: Crowded) -> None:
    # The whole registry was listed on one page: 1,968 keys, 277 KiB, 134 ms at city scale.
    from web.admin import KEYS_PAGE

    with crowded.instance.db.session() as s:
        institute = [k.kid for k in s.query(KeyRecord).filter(KeyRecord.role != "station").order_by(KeyRecord.id)]
    registry = institute + kids(crowded.east_stations) + kids(crowded.west_stations)
    first = crowded.admin.get("/keys").text
    assert ROW.findall(first) == registry[:KEYS_PAGE] and f"共 {len(registry)} 个密钥" in first and "1 / 2" in first
    assert listed(crowded.admin, "/keys?page=2") == registry[KEYS_PAGE:]
    for junk in ("abc", "0", "-3"):
        assert listed(crowded.admin, f"/keys?page={junk}") == registry[:KEYS_PAGE], junk
    assert listed(crowded.admin, "/keys?page=99999999") == registry[KEYS_PAGE:]
    assert every_page(crowded.admin, "/keys") == registry


def test_the_key_search_finds_one_among_many_and_the_pager_keeps_it(crowded: Crowded) -> None:
    admin = crowded.admin
    kid = _key("ST-E140").kid
    assert kid not in listed(admin, "/keys")
    assert listed(admin, f"/keys?q={kid}") == listed(admin, f"/keys?q={kid.upper()}") == [kid]  # by key id
    assert listed(admin, "/keys?q=st-e14") == kids(crowded.east_stations[140:150])  # by owner
    page = admin.get("/keys?q=ST-E").text
    assert "共 150 个密钥" in page and re.search(r'href="/keys\?page=2&amp;q=ST-E"', page)
    assert every_page(admin, "/keys?q=ST-E") == kids(crowded.east_stations)
    assert "没有符合查询条件的密钥。" in admin.get("/keys?q=ST-X").text


def test_an_officer_lists_and_finds_only_the_keys_of_their_stations(crowded: Crowded) -> None:
    east = crowded.east
    everything = every_page(east, "/keys")
    assert everything[3:] == kids(crowded.east_stations) and len(everything) == 3 + len(crowded.east_stations)
    west = _key("ST-W001").kid
    assert listed(east, "/keys?q=ST-W") == listed(east, f"/keys?q={west}") == []
    assert listed(east, "/keys?q=ST-E140") == kids(["ST-E140"])


def test_an_officer_revokes_a_key_of_their_station_on_a_later_page_and_no_other(crowded: Crowded) -> None:
    from tests.web.conftest import csrf_token
    from web.admin import KEYS_PAGE

    east = crowded.east
    token = csrf_token(east.get("/keys").text)
    for code in ("ST-W001", "ST-NOWHERE"):
        refused = east.post("/keys/revoke", data={"csrf_token": token, "kid": _key(code).kid, "reason": "lost"})
        assert refused.status_code == 404, code
    kid = _key("ST-E140").kid
    done = east.post("/keys/revoke", data={"csrf_token": token, "kid": kid, "reason": "desk stolen"})
    assert done.status_code == 303
    with crowded.instance.db.session() as s:
        revoked = {k.owner for k in s.query(KeyRecord).filter(KeyRecord.revoked_at.is_not(None))}
    assert revoked == {"ST-E140"}
    assert "desk stolen" in east.get(f"/keys?q={kid}").text
    invalid = east.post("/keys/revoke", data={"csrf_token": token, "kid": "xyz", "reason": ""})
    assert invalid.status_code == 400 and ROW.findall(invalid.text) == every_page(east, "/keys")[:KEYS_PAGE]


def test_the_audit_trail_is_paged_to_its_oldest_entry(tiny_exam: Any) -> None:
    # It showed the newest 300 entries and nothing older, filter or not.
    from datetime import UTC, datetime, timedelta

    from tests.web.conftest import CHEAP, PASSWORD, login, make_app, new_address
    from web.accounts import create_account
    from web.admin import AUDIT_PAGE
    from web.audit import record

    views = 3 * AUDIT_PAGE + 20
    at = datetime(2017, 6, 20, 0, 0, tzinfo=UTC)
    for n in range(views):
        record(tiny_exam, "detective", "view_item", f"T-{n:03d}", now=at + timedelta(seconds=n))
    record(tiny_exam, "east", "download_labels", "subject=YW", now=at + timedelta(seconds=views))
    create_account(tiny_exam, "auditor", PASSWORD, "auditor", "3601", at, hasher=CHEAP)
    auditor = make_app(tiny_exam).test_client()
    auditor.environ_base["REMOTE_ADDR"] = new_address()
    assert login(auditor, "auditor").status_code == 302
    newest_first = [f"T-{n:03d}" for n in reversed(range(views))]
    target = re.compile(r"<td>(T-\d{3})</td>")

    first = auditor.get("/audit").text
    assert first.count("<tr><td>") == AUDIT_PAGE and "1 / 4" in first  # and the auditor's own login
    assert "下载标签" in first and "T-000" not in first
    page = auditor.get("/audit?action=view_item").text
    assert target.findall(page) == newest_first[:AUDIT_PAGE] and f"共 {views} 条记录" in page
    assert re.search(r'href="/audit\?page=2&amp;action=view_item&amp;target="', page)
    last = auditor.get("/audit?action=view_item&page=4").text
    assert target.findall(last) == newest_first[3 * AUDIT_PAGE:] and "T-000" in last
    for junk in ("abc", "0", "-3"):
        assert target.findall(auditor.get(f"/audit?action=view_item&page={junk}").text) == newest_first[:AUDIT_PAGE]
    assert target.findall(auditor.get("/audit?action=view_item&page=99999999").text) == newest_first[3 * AUDIT_PAGE:]
    oldest = auditor.get("/audit?target=T-000").text
    assert target.findall(oldest) == ["T-000"] and "共 1 条记录" in oldest


@pytest.mark.parametrize("path", ["/items?q=YW%00", "/items?subject=%00", "/alerts?code=%00late", "/audit?target=%00",
                                  "/stations?q=%00", "/people?q=%00", "/keys?q=%00", "/items/YW%00",
                                  "/labels/pdf?subject=%00", "/labels/pdf?unit=K001%00", "/items?%00=1"])
def test_a_nul_in_the_path_or_the_query_is_a_bad_request_not_a_server_error(client_as, path: str) -> None:
    # PostgreSQL refuses a NUL in a query: ?q=%00 on the item list, /items/YW%00 and /labels/pdf?subject=%00
    # were a 500 there
    assert client_as("admin").get(path).status_code == 400
