"""A deterministic sample exam shaped like Nanchang's 2017 secondary-school entrance exam.

``city`` is Nanchang-sized: 12 counties and districts, about 50 exam sites,
1,900 rooms, 56,000 candidates and the six subjects of 2017. ``tiny`` keeps
the same shape with two counties, two sites and four rooms, for fast tests.
The same scale always yields the same plan, names and people.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from custody.plan import LOCAL_TZ, ExamPlan, Subject, Unit, UnitKind, build_plan, subject_rows, unit_rows

EXAM = "zk2017"
EXAM_NAME = "2017年南昌市中等学校招生考试"
CITY = "3601"
GRADING = "3601-PJ"
PRINTER = "36-YS"

#: The counties, districts and development zones of Nanchang in 2017 (GB/T 2260 codes where they have one).
COUNTIES = [
    ("360102", "东湖区"), ("360103", "西湖区"), ("360104", "青云谱区"), ("360105", "湾里区"),
    ("360111", "青山湖区"), ("360112", "新建区"), ("360121", "南昌县"), ("360123", "安义县"),
    ("360124", "进贤县"), ("360191", "红谷滩新区"), ("360192", "经济技术开发区"), ("360193", "高新技术开发区"),
]

#: The six subjects of 2017, with their sessions (local time, 20-22 June 2017).
SUBJECTS = [
    ("YW", "语文", "Chinese", "2017-06-20", "08:30", "11:00", False),
    ("WL", "物理", "Physics", "2017-06-20", "14:30", "16:00", False),
    ("SX", "数学", "Mathematics", "2017-06-21", "08:30", "10:30", False),
    ("HX", "化学", "Chemistry", "2017-06-21", "14:30", "16:00", False),
    ("YY", "英语", "English", "2017-06-22", "08:30", "10:30", True),
    ("ZL", "思想品德与历史", "Ethics and History", "2017-06-22", "14:30", "16:30", False),
]

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蔡蒋余万熊"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰红鹏辉建国文斌志宏海燕俊峰晓雪琳"
SCHOOL_WORDS = ["第一中学", "第二中学", "第三中学", "实验中学", "外国语学校", "育新学校", "师大附中",
                "第十中学", "第十九中学", "八一中学", "立德学校", "雷式学校", "铁路第一中学", "豫章中学"]


@dataclass(frozen=True)
class Scale:
    sites: int
    rooms: int
    candidates: int
    counties: int


SCALES = {
    "city": Scale(sites=50, rooms=1900, candidates=56000, counties=12),
    "tiny": Scale(sites=2, rooms=4, candidates=118, counties=2),
}


def _split(total: int, parts: int, rng: random.Random, minimum: int = 1) -> list[int]:
    """``total`` split into ``parts`` positive shares that vary around the mean."""
    weights = [rng.uniform(0.6, 1.4) for _ in range(parts)]
    raw = [max(minimum, int(total * w / sum(weights))) for w in weights]
    raw[-1] += total - sum(raw)
    return raw


def sample_plan(scale: str = "city") -> ExamPlan:
    """The sample exam plan at ``scale`` (``city`` or ``tiny``), built through the real importer."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose {' or '.join(SCALES)}")
    s = SCALES[scale]
    rng = random.Random(f"custody-sample-{scale}-2017")
    rows: list[dict[str, str]] = [
        {"code": PRINTER, "kind": "printer", "name": "省教育考试院指定印刷厂", "parent": ""},
        {"code": CITY, "kind": "city", "name": "南昌市教育考试院", "parent": ""},
        {"code": f"{CITY}-BMS", "kind": "secure_room", "name": "市教育考试院保密室", "parent": CITY},
        {"code": GRADING, "kind": "grading", "name": "南昌市中考评卷点", "parent": CITY},
    ]
    counties = COUNTIES[: s.counties]
    sites_per_county = _split(s.sites, len(counties), rng)
    rooms_per_site = _split(s.rooms, s.sites, rng, minimum=2)
    site_no = 0
    for (code, name), n_sites in zip(counties, sites_per_county, strict=True):
        rows.append({"code": code, "kind": "county", "name": f"{name}中招办", "parent": CITY})
        rows.append({"code": f"{code}-BMS", "kind": "secure_room", "name": f"{name}保密室", "parent": code})
        zone = f"{code}-Q1"
        rows.append({"code": zone, "kind": "zone", "name": f"{name}考区", "parent": code})
        for _ in range(n_sites):
            site_no += 1
            site = f"K{site_no:03d}"
            school = f"{name.removesuffix('区').removesuffix('县')}{rng.choice(SCHOOL_WORDS)}"
            rows.append({"code": site, "kind": "site", "name": f"{school}考点", "parent": zone})
            for room in range(1, rooms_per_site[site_no - 1] + 1):
                rows.append({"code": f"{site}-{room:02d}", "kind": "room", "name": f"第{room:02d}考场",
                             "parent": site})
    rooms = [r for r in rows if r["kind"] == "room"]
    # Rooms hold 30 at most: spread the candidates evenly, the remainder one each.
    base, extra = divmod(s.candidates, len(rooms))
    fuller = set(rng.sample(range(len(rooms)), extra))
    per_room = [base + (i in fuller) for i in range(len(rooms))]
    for row, n in zip(rooms, per_room, strict=True):
        row["candidates"] = str(n)
    subjects = [
        {"code": c, "name": n, "name_en": e, "date": d, "start": a, "end": b, "listening": "yes" if li else "no"}
        for c, n, e, d, a, b, li in SUBJECTS
    ]
    return build_plan(EXAM, EXAM_NAME, subjects, rows)


def person_name(rng: random.Random) -> str:
    given = rng.choice(GIVEN) + (rng.choice(GIVEN) if rng.random() < 0.6 else "")
    return rng.choice(SURNAMES) + given


@dataclass(frozen=True)
class SamplePerson:
    staff_id: str
    name: str
    unit: str


def sample_people(plan: ExamPlan) -> list[SamplePerson]:
    """Two named officers for every unit that hands over (双人), deterministic."""
    rng = random.Random(f"custody-people-{plan.exam}")
    people = []
    for unit in plan.units:
        if unit.kind in (UnitKind.ROOM, UnitKind.ZONE):
            continue
        for n in (1, 2):
            people.append(SamplePerson(f"{unit.code}-S{n}", person_name(rng), unit.code))
    # Two invigilators per room open the bundles and seal the answer cards.
    for unit in plan.of_kind(UnitKind.ROOM):
        for n in (1, 2):
            people.append(SamplePerson(f"{unit.code}-S{n}", person_name(rng), unit.code))
    return people


__all__ = ["sample_plan", "sample_people", "subject_rows", "unit_rows", "Subject", "Unit", "LOCAL_TZ"]
