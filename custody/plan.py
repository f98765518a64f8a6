"""The exam plan: subjects and their sessions, the unit tree, and the items it implies.

An institute keeps its plan as two tables (a CSV folder or a workbook):
``subjects`` (code, name, date, start, end, listening) and ``units`` (code,
kind, name, parent, candidates, subjects). :func:`build_plan` checks them
completely and returns an :class:`ExamPlan`, or raises :class:`PlanError`
listing every problem with its table and row, so nothing half-valid is ever
imported. :func:`plan_items` derives every tracked item from a plan,
deterministically: the same plan always yields the same ids and seal numbers.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from functools import cached_property

from custody.errors import PlanError
from custody.events import ID
from custody.labels import ItemKind

#: Exam times in the plan are local times of the institute (Asia/Shanghai, no DST).
LOCAL_TZ = timezone(timedelta(hours=8), "CST")


class UnitKind(str, enum.Enum):
    PRINTER = "printer"          # 印刷厂 / province press
    CITY = "city"                # 市教育考试院
    COUNTY = "county"            # 县区中招办
    ZONE = "zone"                # 考区
    SITE = "site"                # 考点
    ROOM = "room"                # 考场
    SECURE_ROOM = "secure_room"  # 保密室
    GRADING = "grading"          # 评卷点


#: Which kinds may sit under which: the shape of the unit tree.
ALLOWED_PARENTS: dict[UnitKind, frozenset[UnitKind]] = {
    UnitKind.PRINTER: frozenset(),
    UnitKind.CITY: frozenset(),
    UnitKind.COUNTY: frozenset({UnitKind.CITY}),
    UnitKind.ZONE: frozenset({UnitKind.COUNTY}),
    UnitKind.SITE: frozenset({UnitKind.ZONE, UnitKind.COUNTY}),
    UnitKind.ROOM: frozenset({UnitKind.SITE}),
    UnitKind.SECURE_ROOM: frozenset({UnitKind.CITY, UnitKind.COUNTY, UnitKind.SITE}),
    UnitKind.GRADING: frozenset({UnitKind.CITY}),
}

UNIT_KIND_ALIASES = {
    "印刷厂": UnitKind.PRINTER, "市": UnitKind.CITY, "市教育考试院": UnitKind.CITY,
    "县区": UnitKind.COUNTY, "县区中招办": UnitKind.COUNTY, "考区": UnitKind.ZONE,
    "考点": UnitKind.SITE, "考场": UnitKind.ROOM, "保密室": UnitKind.SECURE_ROOM,
    "评卷点": UnitKind.GRADING,
}


@dataclass(frozen=True)
class Unit:
    code: str
    kind: UnitKind
    name: str
    parent: str | None
    candidates: int = 0
    #: Subject codes sat in this room; empty means every subject of the exam.
    subjects: tuple[str, ...] = ()


@dataclass(frozen=True)
class Subject:
    code: str
    name: str
    starts_at: datetime
    ends_at: datetime
    listening: bool = False
    name_en: str = ""


@dataclass(frozen=True)
class PlannedItem:
    """An item the plan calls for, before its label is signed."""

    item_id: str
    kind: ItemKind
    subject: str
    destination: str
    count: int
    seal: str | None = None
    parent_box: str | None = None


@dataclass(frozen=True)
class ExamPlan:
    exam: str
    name: str
    subjects: tuple[Subject, ...]
    units: tuple[Unit, ...]
    _index: dict[str, Unit] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {u.code: u for u in self.units})

    def unit(self, code: str) -> Unit:
        return self._index[code]

    def has_unit(self, code: str) -> bool:
        return code in self._index

    def subject(self, code: str) -> Subject:
        for s in self.subjects:
            if s.code == code:
                return s
        raise KeyError(code)

    def ancestors(self, code: str) -> list[Unit]:
        """The unit and its ancestors, nearest first."""
        chain = []
        unit: Unit | None = self._index[code]
        while unit is not None:
            chain.append(unit)
            unit = self._index[unit.parent] if unit.parent else None
        return chain

    def nearest(self, code: str, kind: UnitKind) -> Unit | None:
        return next((u for u in self.ancestors(code) if u.kind is kind), None)

    def is_within(self, code: str, ancestor: str) -> bool:
        return any(u.code == ancestor for u in self.ancestors(code))

    @cached_property
    def children(self) -> dict[str, list[Unit]]:
        kids: dict[str, list[Unit]] = {}
        for u in self.units:
            if u.parent:
                kids.setdefault(u.parent, []).append(u)
        return kids

    def of_kind(self, kind: UnitKind) -> list[Unit]:
        return [u for u in self.units if u.kind is kind]

    def of_kind_site(self) -> list[Unit]:
        return self.of_kind(UnitKind.SITE)

    def rooms(self) -> list[Unit]:
        return self.of_kind(UnitKind.ROOM)

    def room_subjects(self, room: Unit) -> list[Subject]:
        if not room.subjects:
            return list(self.subjects)
        return [s for s in self.subjects if s.code in room.subjects]

    @property
    def candidates(self) -> int:
        return sum(u.candidates for u in self.units if u.kind is UnitKind.ROOM)


# --- reading the tables -------------------------------------------------------

SUBJECT_COLUMNS = {
    "code": ("code", "科目代码", "代码"),
    "name": ("name", "科目", "科目名称", "名称"),
    "date": ("date", "日期", "考试日期"),
    "start": ("start", "开始", "开始时间"),
    "end": ("end", "结束", "结束时间"),
}
SUBJECT_OPTIONAL = {"listening": ("listening", "听力"), "name_en": ("name_en", "英文名称")}
UNIT_COLUMNS = {
    "code": ("code", "单位代码", "代码"),
    "kind": ("kind", "类型", "单位类型"),
    "name": ("name", "名称", "单位名称"),
    "parent": ("parent", "上级", "上级单位"),
}
UNIT_OPTIONAL = {"candidates": ("candidates", "考生数", "人数"), "subjects": ("subjects", "科目")}

#: The longest texts and the largest count a plan may hold (the database's columns are this wide).
MAX_EXAM_CODE, MAX_UNIT_CODE, MAX_SUBJECT_CODE = 32, 32, 8
#: Subject and unit codes make the item ids (``YW-P-K001-01``), which every handover event names and
#: the server takes only as ``custody.events.ID`` allows: a unit code is such an id (as the web's unit
#: form asks too), a subject code ASCII letters and digits. A plan with 语文 or 东湖区 as a code
#: imported, and every scan of its items was then refused as malformed.
SUBJECT_CODE = re.compile(rf"[A-Za-z0-9]{{1,{MAX_SUBJECT_CODE}}}\Z")
MAX_EXAM_NAME = MAX_UNIT_NAME = MAX_ROOM_SUBJECTS = 200
MAX_SUBJECT_NAME = 100
MAX_CANDIDATES = 9999

TRUE_WORDS = {"1", "yes", "y", "true", "是", "有"}
FALSE_WORDS = {"", "0", "no", "n", "false", "否", "无"}


#: Columns a plan may carry for its readers that custody does not read (matched ignoring case).
IGNORED_COLUMNS = frozenset({"序号", "备注", "说明", "no", "no.", "#", "note", "notes", "remark", "remarks",
                             "comment", "comments"})


def _columns(
    table: str, rows: Sequence[Mapping[str, str]], required: Mapping[str, tuple[str, ...]],
    optional: Mapping[str, tuple[str, ...]], problems: list[tuple[str, int | None, str]],
) -> dict[str, str]:
    """Map our field names to the header the file used (English or Chinese).

    A column that is none of them is refused, unless it is a remark or row-number column
    (:data:`IGNORED_COLUMNS`): a misspelt optional column (``考生人数`` for ``考生数``) would otherwise
    be dropped without a word, and every room would have no candidates."""
    headers = {h.strip(): h for row in rows[:1000] for h in row.keys() if h is not None}
    found: dict[str, str] = {}
    known = {**required, **optional}
    for name, aliases in known.items():
        match = next((headers[a] for a in aliases if a in headers), None)
        if match is not None:
            found[name] = match
        elif name in required:
            problems.append((table, None, f"missing column {name!r} (also accepted: {', '.join(aliases[1:])})"))
    read = {alias for aliases in known.values() for alias in aliases}
    for header in headers:
        if header and header not in read and header.lower() not in IGNORED_COLUMNS:
            columns = ", ".join(f"{aliases[0]} ({'/'.join(aliases[1:])})" for aliases in known.values())
            problems.append((table, 1, f"unknown column {header!r}: the columns are {columns}; a column of "
                                       "remarks custody does not read may be named 备注 or note"))
    return found


#: Full-width forms (ＹＷ, ２９, 08：30, ；) as a Chinese input method types them, to their ASCII letters.
FULL_WIDTH = {0xFF01 + i: 0x21 + i for i in range(0x5E)} | {0x3000: 0x20}


def _cell(row: Mapping[str, str], columns: dict[str, str], name: str) -> str:
    """The cell's text, stripped; in every column but the names, full-width forms become ASCII."""
    column = columns.get(name)
    value = row.get(column, "") if column else ""
    text = "" if value is None else str(value)
    if name not in ("name", "name_en"):
        text = text.translate(FULL_WIDTH)
    return text.strip()


def _is_blank(row: Mapping[str, str]) -> bool:
    """A row with no text in any cell: spreadsheets export these (blank lines, trailing ``,,,,``)."""
    return not any(v is not None and str(v).strip() for v in row.values())


#: 2017-06-20, and as Excel in a Chinese locale writes dates to CSV: 2017/6/20, 2017年6月20日.
DATE_FORMS = re.compile(r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?")


def _parse_time(day: str, clock: str) -> datetime:
    parts = DATE_FORMS.fullmatch(day)
    d = date(*(int(p) for p in parts.groups())) if parts else date.fromisoformat(day)
    t = time.fromisoformat("0" + clock if clock[1:2] == ":" else clock)  # 8:30 as Excel writes it
    return datetime.combine(d, t, LOCAL_TZ)


def build_plan(
    exam: str, name: str,
    subject_rows: Sequence[Mapping[str, str]],
    unit_rows: Sequence[Mapping[str, str]],
) -> ExamPlan:
    """Check both tables and return the plan, or raise :class:`PlanError` with every problem.

    Row numbers count the header as row 1, as a spreadsheet shows them; blank rows are
    skipped but counted, so readers pass them on to keep the numbers right.
    """
    problems: list[tuple[str, int | None, str]] = []
    if not exam or len(exam) > MAX_EXAM_CODE or not exam.isprintable() or any(c.isspace() for c in exam):
        problems.append(("plan", None, f"the exam code must be 1-{MAX_EXAM_CODE} characters without spaces, "
                                       f"found {exam!r}"))
    if not name.strip() or len(name) > MAX_EXAM_NAME:
        problems.append(("plan", None, f"the exam name must be 1-{MAX_EXAM_NAME} characters, "
                                       f"found {len(name)}"))
    # A table with no rows is named as such, and its columns are not judged: a header alone (no rows to
    # read the columns from) was also said to lack every column it has.
    no_subjects = all(_is_blank(row) for row in subject_rows)
    no_units = all(_is_blank(row) for row in unit_rows)
    if no_subjects:
        problems.append(("subjects", None, "the table has no rows (no subjects)"))
    if no_units:
        problems.append(("units", None, "the table has no rows (no units)"))
    scols = {} if no_subjects else _columns("subjects", subject_rows, SUBJECT_COLUMNS, SUBJECT_OPTIONAL, problems)
    ucols = {} if no_units else _columns("units", unit_rows, UNIT_COLUMNS, UNIT_OPTIONAL, problems)
    if problems:
        raise PlanError(problems)

    subjects: list[Subject] = []
    for n, row in enumerate(subject_rows, start=2):
        if _is_blank(row):
            continue
        code, sname = _cell(row, scols, "code"), _cell(row, scols, "name")
        if not SUBJECT_CODE.match(code):
            problems.append(("subjects", n, f"subject code must be 1-{MAX_SUBJECT_CODE} ASCII letters or digits "
                                            f"(it is part of every item id), found {code!r}"))
            continue
        if any(s.code == code for s in subjects):
            problems.append(("subjects", n, f"duplicate subject {code!r}"))
            continue
        if not sname:
            problems.append(("subjects", n, f"subject {code} has no name"))
        for field_name in ("name", "name_en"):
            if len(_cell(row, scols, field_name)) > MAX_SUBJECT_NAME:
                problems.append(("subjects", n, f"the {field_name} of subject {code} is longer than "
                                                f"{MAX_SUBJECT_NAME} characters"))
        try:
            starts = _parse_time(_cell(row, scols, "date"), _cell(row, scols, "start"))
            ends = _parse_time(_cell(row, scols, "date"), _cell(row, scols, "end"))
        except ValueError:
            problems.append(("subjects", n, f"subject {code}: date must be YYYY-MM-DD and times HH:MM, found "
                             f"{_cell(row, scols, 'date')!r} "
                             f"{_cell(row, scols, 'start')!r}-{_cell(row, scols, 'end')!r}"))
            continue
        if ends <= starts:
            problems.append(("subjects", n, f"subject {code} ends before it starts"))
        listening_word = _cell(row, scols, "listening").lower()
        if listening_word not in TRUE_WORDS | FALSE_WORDS:
            problems.append(("subjects", n, f"listening must be yes or no, found {listening_word!r}"))
        subjects.append(Subject(code, sname, starts, ends, listening_word in TRUE_WORDS, _cell(row, scols, "name_en")))
    subject_codes = {s.code for s in subjects}

    units: list[Unit] = []
    rows_of: dict[str, int] = {}
    for n, row in enumerate(unit_rows, start=2):
        if _is_blank(row):
            continue
        code = _cell(row, ucols, "code")
        kind_text = _cell(row, ucols, "kind")
        if not (ID.match(code) and len(code) <= MAX_UNIT_CODE):
            problems.append(("units", n, f"unit code must be 1-{MAX_UNIT_CODE} ASCII letters, digits and . _ : - "
                                         f"starting with a letter or digit (it is part of item ids), found {code!r}"))
            continue
        if code in rows_of:
            problems.append(("units", n, f"duplicate unit {code!r} (first on row {rows_of[code]})"))
            continue
        try:
            kind = UNIT_KIND_ALIASES.get(kind_text) or UnitKind(kind_text.lower())
        except ValueError:
            problems.append(("units", n, f"unknown unit kind {kind_text!r} for {code}; expected one of "
                             f"{', '.join(k.value for k in UnitKind)}"))
            continue
        candidates_text = _cell(row, ucols, "candidates") or "0"
        # (length first: int() refuses more than 4,300 digits)
        if not candidates_text.isdecimal() or len(candidates_text) > 9 or int(candidates_text) > MAX_CANDIDATES:
            problems.append(("units", n, f"candidates of {code} must be a whole number from 0 to {MAX_CANDIDATES}, "
                                         f"found {candidates_text!r}"))
            continue
        candidates = int(candidates_text)
        if len(_cell(row, ucols, "name")) > MAX_UNIT_NAME:
            problems.append(("units", n, f"the name of {code} is longer than {MAX_UNIT_NAME} characters"))
        subjects_text = _cell(row, ucols, "subjects").replace(",", ";").replace("、", ";")
        room_subjects = tuple(s.strip() for s in subjects_text.split(";") if s.strip())
        unknown = [s for s in room_subjects if s not in subject_codes]
        if unknown:
            problems.append(("units", n, f"unknown subject(s) {', '.join(unknown)} for {code}"))
        elif len(";".join(room_subjects)) > MAX_ROOM_SUBJECTS:
            problems.append(("units", n, f"the subjects of {code} are longer than {MAX_ROOM_SUBJECTS} characters"))
        if kind is UnitKind.ROOM and candidates == 0:
            problems.append(("units", n, f"room {code} has no candidates"))
        if kind is not UnitKind.ROOM and (candidates or room_subjects):
            problems.append(("units", n, f"only rooms have candidates and subjects; {code} is a {kind.value}"))
        rows_of[code] = n
        units.append(Unit(code, kind, _cell(row, ucols, "name") or code, _cell(row, ucols, "parent") or None,
                          candidates, room_subjects))

    kinds = {u.code: u.kind for u in units}
    for u in units:
        n = rows_of[u.code]
        allowed = ALLOWED_PARENTS[u.kind]
        if u.parent is None:
            if allowed:
                what = "a room under no site" if u.kind is UnitKind.ROOM else f"a {u.kind.value} with no parent"
                problems.append(("units", n, f"{u.code} is {what}"))
        elif u.parent not in kinds:
            problems.append(("units", n, f"{u.code} names parent {u.parent!r}, which is not in the table"))
        elif kinds[u.parent] not in allowed:
            problems.append(("units", n, f"a {u.kind.value} cannot sit under a {kinds[u.parent].value} "
                             f"({u.code} under {u.parent})"))
    cities = [u for u in units if u.kind is UnitKind.CITY]
    if len(cities) != 1:
        problems.append(("units", None, f"the plan needs exactly one city institute, found {len(cities)}"))
    if not any(u.kind is UnitKind.GRADING for u in units):
        problems.append(("units", None, "the plan has no grading centre"))
    if not any(u.kind is UnitKind.ROOM for u in units):
        problems.append(("units", None, "the plan has no exam rooms"))
    if problems:
        raise PlanError(problems)
    return ExamPlan(exam, name, tuple(subjects), tuple(units))


# --- items --------------------------------------------------------------------

KIND_LETTER = {
    ItemKind.PAPER_BUNDLE: "P", ItemKind.ANSWER_CARD_BUNDLE: "C", ItemKind.LISTENING_DISC: "D",
    ItemKind.ANSWER_KEY: "A", ItemKind.BACKUP_PAPER: "B", ItemKind.BOX: "X",
}


def item_id(subject: str, kind: ItemKind, unit: str) -> str:
    """``{subject}-{kind letter}-{unit}``: readable, and unique within an exam."""
    return f"{subject}-{KIND_LETTER[kind]}-{unit}"


def plan_items(plan: ExamPlan, seal_prefix: str = "FT") -> list[PlannedItem]:
    """Every item the plan calls for, in a stable order, with seal numbers.

    Per room and subject: a paper bundle and an answer-card bundle. Per site
    and subject: a box holding that site's bundles (and, for a listening
    subject, the site's listening disc). Per subject: an answer key for each
    grading centre. Per county and subject: a backup paper (副题) crate sized
    to the county's candidates.
    """
    items: list[PlannedItem] = []
    sites = plan.of_kind(UnitKind.SITE)
    rooms_by_site: dict[str, list[Unit]] = {}
    for room in plan.of_kind(UnitKind.ROOM):
        rooms_by_site.setdefault(room.parent or "", []).append(room)
    for subject in plan.subjects:
        for site in sites:
            rooms = [r for r in rooms_by_site.get(site.code, []) if subject in plan.room_subjects(r)]
            if not rooms:
                continue
            box = item_id(subject.code, ItemKind.BOX, site.code)
            contents: list[PlannedItem] = []
            for room in rooms:
                for kind in (ItemKind.PAPER_BUNDLE, ItemKind.ANSWER_CARD_BUNDLE):
                    contents.append(PlannedItem(item_id(subject.code, kind, room.code), kind, subject.code,
                                                room.code, room.candidates, parent_box=box))
            if subject.listening:
                contents.append(PlannedItem(item_id(subject.code, ItemKind.LISTENING_DISC, site.code),
                                            ItemKind.LISTENING_DISC, subject.code, site.code, 1, parent_box=box))
            items.append(PlannedItem(box, ItemKind.BOX, subject.code, site.code, len(contents)))
            items.extend(contents)
        for grading in plan.of_kind(UnitKind.GRADING):
            items.append(PlannedItem(item_id(subject.code, ItemKind.ANSWER_KEY, grading.code),
                                     ItemKind.ANSWER_KEY, subject.code, grading.code, 1))
        for county in plan.of_kind(UnitKind.COUNTY):
            count = sum(r.candidates for r in plan.of_kind(UnitKind.ROOM)
                        if plan.is_within(r.code, county.code) and subject in plan.room_subjects(r))
            if count:
                items.append(PlannedItem(item_id(subject.code, ItemKind.BACKUP_PAPER, county.code),
                                         ItemKind.BACKUP_PAPER, subject.code, county.code, count))
    width = max(7, len(str(len(items))))
    return [
        PlannedItem(i.item_id, i.kind, i.subject, i.destination, i.count,
                    f"{seal_prefix}{n:0{width}d}", i.parent_box)
        for n, i in enumerate(items, start=1)
    ]


def unit_rows(plan: ExamPlan) -> list[dict[str, str]]:
    """The units table of a plan, as written to a CSV (the inverse of reading it)."""
    return [
        {"code": u.code, "kind": u.kind.value, "name": u.name, "parent": u.parent or "",
         "candidates": str(u.candidates) if u.kind is UnitKind.ROOM else "", "subjects": ";".join(u.subjects)}
        for u in plan.units
    ]


def subject_rows(plan: ExamPlan) -> list[dict[str, str]]:
    """The subjects table of a plan, in local time."""
    rows = []
    for s in plan.subjects:
        start, end = s.starts_at.astimezone(LOCAL_TZ), s.ends_at.astimezone(LOCAL_TZ)
        rows.append({"code": s.code, "name": s.name, "name_en": s.name_en, "date": start.date().isoformat(),
                     "start": start.strftime("%H:%M"), "end": end.strftime("%H:%M"),
                     "listening": "yes" if s.listening else "no"})
    return rows


def iter_units(plan: ExamPlan, kinds: Iterable[UnitKind]) -> list[Unit]:
    wanted = set(kinds)
    return [u for u in plan.units if u.kind in wanted]
