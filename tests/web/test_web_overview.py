"""The dashboard's numbers: where the bundles are and what is overdue, against configurable deadlines."""

from __future__ import annotations

from datetime import timedelta

from web.overview import build_overview, load_items, load_subjects
from web.scope import Scope, UnitTree
from web.settings import Deadlines


def _inputs(exam_day):
    instance = exam_day.instance
    return load_items(instance, "zk2017"), load_subjects(instance, "zk2017"), UnitTree.load(instance)


def test_nothing_moved_means_everything_is_overdue_after_its_deadline(exam_day) -> None:
    items, subjects, tree = _inputs(exam_day)
    yw = next(s for s in subjects if s.code == "YW")
    deadlines = Deadlines()
    before = build_overview(items, {}, subjects, Scope(None, None), tree, yw.starts_at - timedelta(hours=1),
                            deadlines)
    assert before.overdue == [] and before.by_tier["YW"]["printer"] == before.by_stage["YW"]["issued"]
    at_start = build_overview(items, {}, subjects, Scope(None, None), tree, yw.starts_at - timedelta(minutes=29),
                              deadlines)
    late = {o["item"] for o in at_start.overdue}
    assert "YW-P-K001-01" in late and "YW-C-K001-01" in late and "YY-P-K001-01" not in late  # English is later
    assert all(o["why"] == "not_at_site" for o in at_start.overdue)
    after = build_overview(items, {}, subjects, Scope(None, None), tree, yw.ends_at + timedelta(hours=25), deadlines)
    cards = [o for o in after.overdue if o["item"] == "YW-C-K001-01"]
    assert cards and cards[0]["why"] == "not_at_grading"


def test_the_simulated_exam_day_has_nothing_overdue_and_counts_follow_the_scope(exam_day, app) -> None:
    items, subjects, tree = _inputs(exam_day)
    states = app.extensions["custody"].item_states("zk2017")
    end = max(s.ends_at for s in subjects) + timedelta(days=5)
    everything = build_overview(items, states, subjects, Scope(None, None), tree, end, Deadlines())
    assert everything.overdue == []
    east = Scope("360102", frozenset(tree.below("360102")))
    mine = build_overview(items, states, subjects, east, tree, end, Deadlines())
    assert 0 < mine.total < everything.total
    tight = Deadlines(at_site_before_start=timedelta(hours=30), at_grading_after_end=timedelta(0))
    assert build_overview(items, {}, subjects, east, tree, end, tight).overdue  # deadlines are configurable
    assert Deadlines.from_config({"at_site_before_start_minutes": 45}).at_site_before_start == timedelta(minutes=45)


def test_the_dashboards_of_many_scopes_share_one_read_of_the_items_and_states(exam_day, app, monkeypatch) -> None:
    # Values of all kinds shared 16 places: past 14 officers' scopes each dashboard pushed out the city's items
    # and custody states, and the next read them again (on the city demo 30 site officers waited 2.7 s, p50).
    from datetime import UTC, datetime

    from sqlalchemy import event

    from tests.web.conftest import CHEAP, PASSWORD, login, new_address
    from web.accounts import AccountError, create_account

    reads: list[str] = []
    ledger = app.extensions["custody"].ledger
    states = ledger.item_states
    monkeypatch.setattr(ledger, "item_states", lambda *a: reads.append("states") or states(*a))

    def seen(conn, cursor, statement, *rest) -> None:
        if statement.startswith("SELECT items.item_id, items.kind"):  # web.overview.load_items
            reads.append("items")
    units = sorted(UnitTree.load(exam_day.instance).units)
    assert len(units) >= 16
    for unit in units:
        try:
            create_account(exam_day.instance, f"scope-{unit}", PASSWORD, "officer", unit, datetime.now(UTC),
                           hasher=CHEAP)
        except AccountError:
            pass  # made by an earlier run on this database
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = new_address()
        assert login(client, f"scope-{unit}").status_code == 302
        event.listen(exam_day.instance.db.engine, "before_cursor_execute", seen)
        try:
            for view in ("/dashboard", "/dashboard?view=boxes"):
                assert client.get(view).status_code == 200
        finally:
            event.remove(exam_day.instance.db.engine, "before_cursor_execute", seen)
    assert sorted(reads) == ["items", "states"]
