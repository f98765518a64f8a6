"""The exam plan: the sample exam's shape, the items it implies, and refused plans."""

from __future__ import annotations

from collections import Counter

import pytest

from custody.errors import PlanError
from custody.labels import ItemKind
from custody.plan import UnitKind, build_plan, plan_items, subject_rows, unit_rows
from custody.sample import sample_people, sample_plan


def test_the_city_sample_is_nanchang_sized_and_deterministic() -> None:
    plan = sample_plan("city")
    assert len(plan.of_kind(UnitKind.SITE)) == 50
    assert len(plan.of_kind(UnitKind.ROOM)) == 1900
    assert plan.candidates == 56000
    assert [s.name for s in plan.subjects] == ["语文", "物理", "数学", "化学", "英语", "思想品德与历史"]
    assert [s.code for s in plan.subjects if s.listening] == ["YY"]
    assert all(20 <= r.candidates <= 30 for r in plan.of_kind(UnitKind.ROOM))
    assert sample_plan("city") == plan
    assert plan_items(sample_plan("city")) == plan_items(plan)


def test_items_follow_the_plan() -> None:
    plan = sample_plan("tiny")
    items = plan_items(plan)
    kinds = Counter(i.kind for i in items)
    rooms, sites, counties = (plan.of_kind(k) for k in (UnitKind.ROOM, UnitKind.SITE, UnitKind.COUNTY))
    subjects = len(plan.subjects)
    assert kinds[ItemKind.PAPER_BUNDLE] == kinds[ItemKind.ANSWER_CARD_BUNDLE] == len(rooms) * subjects
    assert kinds[ItemKind.LISTENING_DISC] == len(sites)  # English only
    assert kinds[ItemKind.ANSWER_KEY] == subjects
    assert kinds[ItemKind.BACKUP_PAPER] == len(counties) * subjects
    assert kinds[ItemKind.BOX] == len(sites) * subjects
    assert len({i.item_id for i in items}) == len(items)
    assert len({i.seal for i in items}) == len(items)
    by_id = {i.item_id: i for i in items}
    for item in items:
        if item.kind is ItemKind.PAPER_BUNDLE:
            room = plan.unit(item.destination)
            assert room.kind is UnitKind.ROOM and item.count == room.candidates
            assert by_id[item.parent_box or ""].destination == room.parent
        if item.kind is ItemKind.ANSWER_KEY:
            assert plan.unit(item.destination).kind is UnitKind.GRADING
        if item.kind is ItemKind.BOX:
            assert item.count == sum(1 for i in items if i.parent_box == item.item_id)
    backup = {i.destination: i.count for i in items if i.kind is ItemKind.BACKUP_PAPER and i.subject == "YW"}
    assert sum(backup.values()) == plan.candidates


def test_the_tables_written_read_back_to_the_same_plan() -> None:
    plan = sample_plan("tiny")
    assert build_plan(plan.exam, plan.name, subject_rows(plan), unit_rows(plan)) == plan


def test_two_staff_for_every_handing_unit() -> None:
    plan = sample_plan("tiny")
    people = sample_people(plan)
    per_unit = Counter(p.unit for p in people)
    assert per_unit["360102-BMS"] == 2 and per_unit["K001-01"] == 2 and per_unit["3601-PJ"] == 2
    assert len({p.staff_id for p in people}) == len(people)


def _tables() -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    plan = sample_plan("tiny")
    return subject_rows(plan), unit_rows(plan)


def _problems(subjects: list[dict[str, str]], units: list[dict[str, str]]) -> list[tuple[str, int | None, str]]:
    with pytest.raises(PlanError) as caught:
        build_plan("zk2017", "test", subjects, units)
    return caught.value.problems


def test_a_missing_column_is_named() -> None:
    subjects, units = _tables()
    for row in units:
        del row["parent"]
    assert _problems(subjects, units) == [("units", None, "missing column 'parent' (also accepted: 上级, 上级单位)")]


def test_a_table_with_no_rows_is_named_as_such_not_as_lacking_its_columns() -> None:
    # A units.csv of its header alone was also said to lack every column that header has.
    subjects, units = _tables()
    assert _problems(subjects, []) == [("units", None, "the table has no rows (no units)")]
    assert _problems([], [{k: "" for k in units[0]}]) == [("subjects", None, "the table has no rows (no subjects)"),
                                                          ("units", None, "the table has no rows (no units)")]


def test_an_unknown_column_is_refused_and_remarks_are_not_read() -> None:
    # 考生人数 for 考生数: before, the column was dropped without a word and every room had no candidates
    subjects, units = _tables()
    misspelt = [{("考生人数" if k == "candidates" else k): v for k, v in row.items()} for row in units]
    problems = _problems(subjects, misspelt)
    assert [(t, n) for t, n, _ in problems] == [("units", 1)]
    assert problems[0][2].startswith("unknown column '考生人数': the columns are code (单位代码/代码), ")
    assert "candidates (考生数/人数)" in problems[0][2] and "备注" in problems[0][2]
    remarks = [{**row, "备注": "门卫值班", "No.": str(n)} for n, row in enumerate(units)]
    assert build_plan("zk2017", "test", subjects, remarks) == build_plan("zk2017", "test", subjects, units)


def test_a_room_under_no_site_names_its_row() -> None:
    subjects, units = _tables()
    row = next(i for i, r in enumerate(units) if r["kind"] == "room")
    units[row]["parent"] = ""
    assert ("units", row + 2, f"{units[row]['code']} is a room under no site") in _problems(subjects, units)
    units[row]["parent"] = "360102"
    assert any("a room cannot sit under a county" in p[2] for p in _problems(subjects, units))


def test_a_duplicate_room_is_refused_with_both_rows() -> None:
    subjects, units = _tables()
    first = next(i for i, r in enumerate(units) if r["kind"] == "room")
    units.append(dict(units[first]))
    problems = _problems(subjects, units)
    assert problems == [("units", len(units) + 1,
                         f"duplicate unit {units[first]['code']!r} (first on row {first + 2})")]


def test_an_unknown_subject_is_refused() -> None:
    subjects, units = _tables()
    room = next(r for r in units if r["kind"] == "room")
    room["subjects"] = "YW;SW"
    assert any("unknown subject(s) SW" in p[2] for p in _problems(subjects, units))


def test_every_problem_is_reported_at_once() -> None:
    subjects, units = _tables()
    subjects[0]["start"] = "25:00"
    subjects.append(dict(subjects[1]))
    units[-1]["kind"] = "castle"
    units[-2]["candidates"] = "many"
    problems = _problems(subjects, units)
    assert len(problems) == 4
    assert "nothing was imported" in str(PlanError(problems))


def test_chinese_headers_are_accepted() -> None:
    subjects, units = _tables()
    zh_units = [{"单位代码": r["code"], "类型": r["kind"], "名称": r["name"], "上级": r["parent"],
                 "考生数": r["candidates"]} for r in units]
    zh_subjects = [{"科目代码": r["code"], "科目": r["name"], "日期": r["date"], "开始": r["start"],
                    "结束": r["end"], "听力": "是" if r["listening"] == "yes" else "否"} for r in subjects]
    plan = build_plan("zk2017", "test", zh_subjects, zh_units)
    assert plan.candidates == sample_plan("tiny").candidates
    assert plan.subject("YY").listening


def test_values_too_long_or_large_to_store_are_refused_with_their_rows() -> None:
    """PostgreSQL refused them with a traceback (SQLite kept them, or overflowed on a huge count)."""
    subjects, units = _tables()
    subjects[0]["name"] = "语文" * 60
    rooms = [i for i, r in enumerate(units) if r["kind"] == "room"]
    units[rooms[0]]["name"] = "第01考场" + "很" * 200
    units[rooms[1]]["candidates"] = "3000000000"
    units[rooms[2]]["candidates"] = "①"  # a digit to str.isdigit, not to int()
    units[rooms[3]]["code"] = "K002\x0002"
    assert _problems(subjects, units) == [
        ("subjects", 2, "the name of subject YW is longer than 100 characters"),
        ("units", rooms[0] + 2, f"the name of {units[rooms[0]]['code']} is longer than 200 characters"),
        ("units", rooms[1] + 2, f"candidates of {units[rooms[1]]['code']} must be a whole number from 0 to 9999, "
                                "found '3000000000'"),
        ("units", rooms[2] + 2, f"candidates of {units[rooms[2]]['code']} must be a whole number from 0 to 9999, "
                                "found '①'"),
        ("units", rooms[3] + 2, "unit code must be 1-32 ASCII letters, digits and . _ : - starting with a letter or "
                                "digit (it is part of item ids), found 'K002\\x0002'"),
    ]
    subjects, units = _tables()
    with pytest.raises(PlanError) as caught:
        build_plan("E" * 33, "名" * 201, subjects, units)
    assert caught.value.problems == [
        ("plan", None, f"the exam code must be 1-32 characters without spaces, found {'E' * 33!r}"),
        ("plan", None, "the exam name must be 1-200 characters, found 201"),
    ]


def test_codes_that_cannot_be_part_of_an_item_id_are_refused() -> None:
    """语文 or 东湖区 as a code imported, and made item ids (语文-P-东湖区…) that no handover event may name:
    every scan of those items would have been refused as malformed, on exam morning."""
    from custody.events import ID

    subjects, units = _tables()
    subjects[0]["code"] = "语文"
    rooms = [i for i, r in enumerate(units) if r["kind"] == "room"]
    units[rooms[0]]["code"] = "第1考场"
    units[rooms[1]]["code"] = "K001/02"
    units[rooms[2]]["code"] = "-K003"
    problems = _problems(subjects, units)
    assert ("subjects", 2, "subject code must be 1-8 ASCII letters or digits (it is part of every item id), "
                           "found '语文'") in problems
    for i, code in ((rooms[0], "第1考场"), (rooms[1], "K001/02"), (rooms[2], "-K003")):
        assert ("units", i + 2, "unit code must be 1-32 ASCII letters, digits and . _ : - starting with a letter "
                                f"or digit (it is part of item ids), found {code!r}") in problems
    # what is accepted makes item ids the server takes; lower case stays allowed
    subjects, units = _tables()
    subjects[0]["code"] = "yw"
    units[rooms[0]]["code"] = "K9.a_b:c-" + "x" * 23  # 32 characters (a room: no unit names it as parent)
    plan = build_plan("zk2017", "test", subjects, units)
    assert all(ID.match(item.item_id) for item in plan_items(plan))


def test_full_width_codes_times_and_counts_read_as_ascii_and_names_stay_as_typed() -> None:
    """ＹＷ was a subject of its own (items ＹＷ-P-…, not found by --subject YW), 08：30 and YW；SX were refused."""
    subjects, units = _tables()
    wide = str.maketrans({chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)})
    for row in subjects:
        row.update({k: row[k].translate(wide) for k in ("code", "date", "start", "end")})
    room = next(r for r in units if r["kind"] == "room")
    room.update(code=f"\u3000{room['code'].translate(wide)}\u3000", candidates=room["candidates"].translate(wide),
                parent=room["parent"].translate(wide), subjects="ＹＷ；ＳＸ、ＹＹ", name="第０１考场（东）")
    plan = build_plan("zk2017", "test", subjects, units)
    expected = sample_plan("tiny")
    assert [s.code for s in plan.subjects] == [s.code for s in expected.subjects]
    assert [(s.starts_at, s.ends_at) for s in plan.subjects] == [(s.starts_at, s.ends_at) for s in expected.subjects]
    unit = plan.unit("K001-01")
    assert (unit.parent, unit.candidates, unit.subjects) == ("K001", expected.unit("K001-01").candidates,
                                                             ("YW", "SX", "YY"))
    assert unit.name == "第０１考场（东）"


def test_dates_and_times_as_excel_writes_them_in_a_chinese_locale() -> None:
    """2017/6/20 (the default short date) was refused although slashes were meant to be accepted."""
    expected = sample_plan("tiny").subjects
    for day, start in (("2017/6/20", "8:30"), ("2017年6月20日", "08:30:00"), ("2017-6-20", "8:30:00")):
        subjects, units = _tables()
        subjects[0].update(date=day, start=start)
        assert build_plan("zk2017", "test", subjects, units).subjects[0] == expected[0]
    subjects, units = _tables()
    subjects[0]["date"] = "2017/2/30"
    assert _problems(subjects, units) == [("subjects", 2, "subject YW: date must be YYYY-MM-DD and times HH:MM, "
                                                          "found '2017/2/30' '08:30'-'11:00'")]
