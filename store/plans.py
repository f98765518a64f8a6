"""Reading plan files (CSV folder or workbook) and importing a plan into the database."""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import cast

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from custody.errors import PlanError
from custody.plan import ExamPlan, UnitKind, build_plan, plan_items, subject_rows, unit_rows
from custody.sample import SamplePerson
from store.models import Exam, Item, Person, Station, Subject, Unit

Rows = list[dict[str, str]]
SHEET_NAMES = {"subjects": ("subjects", "科目"), "units": ("units", "单位")}


def _read_csv(path: Path) -> Rows:
    """The rows under the header, blank ones included (``build_plan`` skips them but counts
    them, so that its row numbers are the spreadsheet's)."""
    data = path.read_bytes()
    # Excel saves "CSV UTF-8" with a BOM and "Unicode text" as UTF-16 with a BOM; exports from
    # older office software in China are often GB18030 (a superset of GBK).
    utf16 = data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    for encoding in ("utf-16",) if utf16 else ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise PlanError([(path.name, None, "cannot be read as text (UTF-8, UTF-16 or GB18030/GBK); "
                                           "save it from the spreadsheet as CSV")])
    # "Unicode text" separates by tabs: a header with tabs and no comma says so.
    header_line = text.partition("\n")[0]
    dialect = "excel-tab" if "\t" in header_line and "," not in header_line else "excel"
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    try:
        header = next(reader, [])
        _check_header(path.name, header)
        records = list(reader)
    except csv.Error as exc:
        raise PlanError([(path.name, reader.line_num, f"not a readable CSV file: {exc}")]) from None
    # a comma typed inside a name splits its row and shifts every cell after it
    _check_beyond_header(path.name, header, records, "a comma inside a cell? put the cell in double quotes, "
                                                      "or save the file from the spreadsheet")
    return [dict(zip(header, cells + [""] * (len(header) - len(cells)), strict=False)) for cells in records]


def _check_beyond_header(source: str, header: Sequence[str], rows: Sequence[Sequence[object]], hint: str) -> None:
    """Refuse a value in a column without a header (right of the last, or under a blank one): nothing would
    read it. ``rows``: the cells of each row under the header; ``hint``: what probably happened."""
    problems: list[tuple[str, int | None, str]] = []
    for n, cells in enumerate(rows, start=2):
        stray = next((i for i, value in enumerate(cells) if (i >= len(header) or not str(header[i]).strip())
                      and value is not None and str(value).strip()), None)
        if stray is not None:
            problems.append((source, n, f"a value in column {stray + 1}, which has no header: {hint}"))
    if problems:
        raise PlanError(problems[:20])


def _check_header(source: str, header: list[str]) -> None:
    """A column named twice would leave one of them unread (rows are mappings by name): refuse it."""
    names = [h.strip() for h in header]
    repeated = sorted({h for h in names if h and names.count(h) > 1})
    if repeated:
        raise PlanError([(source, 1, f"column {', '.join(map(repr, repeated))} appears more than once "
                                     "in the header")])


def _read_workbook(path: Path) -> tuple[dict[str, Rows], dict[str, str]]:
    """The tables by name, and where each was read ('plan.xlsx sheet 单位')."""
    from openpyxl import load_workbook

    book = load_workbook(path, read_only=True, data_only=True)
    tables: dict[str, Rows] = {}
    sources: dict[str, str] = {}
    for table, names in SHEET_NAMES.items():
        sheet = next((book[n] for n in names if n in book.sheetnames), None)
        if sheet is None:
            raise PlanError([(path.name, None, f"the workbook has no sheet named {' or '.join(names)}")])
        rows = sheet.iter_rows(values_only=True)
        header = [str(h).strip() if h is not None else "" for h in next(rows, ())]
        sources[table] = f"{path.name} sheet {sheet.title}"
        _check_header(sources[table], header)
        # Blank rows are kept (build_plan skips them but counts them, as the sheet numbers its rows),
        # except at the end, where a sheet may report many.
        cells = list(rows)
        _check_beyond_header(sources[table], header, cells, "give the column a header (备注 for remarks custody "
                                                             "does not read), or delete it")
        table_rows = [
            {h: ("" if v is None else _cell_text(v)) for h, v in zip(header, row, strict=False)} for row in cells
        ]
        while table_rows and not any(v.strip() for v in table_rows[-1].values()):
            table_rows.pop()
        tables[table] = table_rows
    return tables, sources


def _cell_text(value: object) -> str:
    if isinstance(value, datetime):
        return value.strftime("%H:%M") if value.date().year == 1900 else value.date().isoformat()
    if hasattr(value, "strftime"):
        fmt = "%H:%M" if value.__class__.__name__ == "time" else "%Y-%m-%d"
        return cast(str, value.strftime(fmt))
    return str(value)


def read_plan_files(path: Path, exam: str, name: str) -> ExamPlan:
    """Read and check a plan from a folder (``subjects.csv``, ``units.csv``) or an ``.xlsx`` workbook."""
    if path.is_dir():
        missing = [f for f in ("subjects.csv", "units.csv") if not (path / f).exists()]
        if missing:
            raise PlanError([(str(path), None, f"missing file(s) {', '.join(missing)}")])
        files = {"subjects": "subjects.csv", "units": "units.csv"}
        return _named(files, lambda: build_plan(exam, name, _read_csv(path / "subjects.csv"),
                                                _read_csv(path / "units.csv")))
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        tables, sheets = _read_workbook(path)
        return _named(sheets, lambda: build_plan(exam, name, tables["subjects"], tables["units"]))
    raise PlanError([(str(path), None, "a plan is a folder with subjects.csv and units.csv, or an .xlsx workbook")])


def _named(sources: dict[str, str], build: Callable[[], ExamPlan]) -> ExamPlan:
    """``build()``, its problems naming the file (or sheet) a table came from instead of the table."""
    try:
        return build()
    except PlanError as exc:
        raise PlanError([(sources.get(source, source), row, reason)
                         for source, row, reason in exc.problems]) from None


def write_plan_files(plan: ExamPlan, folder: Path) -> None:
    """Write a plan as the CSV folder that :func:`read_plan_files` reads."""
    folder.mkdir(parents=True, exist_ok=True)
    for file, rows in (("subjects.csv", subject_rows(plan)), ("units.csv", unit_rows(plan))):
        with (folder / file).open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


_SHARED_UNITS = ("; the exams of one instance share its units: an exam with other units belongs in an instance of "
                 "its own (custody init, with the new exam's origin)")


def import_plan(session: Session, plan: ExamPlan, now: datetime, seal_prefix: str = "FT") -> int:
    """Store the plan and every item it implies; returns the number of items.

    All or nothing: the caller's transaction is rolled back on any error.
    Units already known (from an exam imported before) must be the plan's, with the same kind,
    parent, name, candidates and subjects: the exams of one instance share its units.
    """
    if session.get(Exam, plan.exam) is not None:
        raise PlanError([("plan", None, f"exam {plan.exam} is already imported")])
    known = {u.code: u for u in session.scalars(select(Unit))}
    problems: list[tuple[str, int | None, str]] = []
    for unit in plan.units:
        old = known.get(unit.code)
        if old is None:
            continue
        if old.kind != unit.kind.value or old.parent != unit.parent:
            problems.append(("units", None, f"unit {unit.code} exists as a {old.kind} under {old.parent}; "
                                            f"the plan has a {unit.kind.value} under {unit.parent}"))
            continue
        # the exams of an instance share its units (load_plan reads them for every exam): another name,
        # room size or room subjects would silently keep the old ones while the items follow the new
        for what, was, now_ in (("name", old.name, unit.name), ("candidates", old.candidates, unit.candidates),
                                ("subjects", old.subjects, ";".join(unit.subjects))):
            if was != now_:
                problems.append(("units", None, f"unit {unit.code} exists with {what} {was!r}; the plan has "
                                                f"{now_!r}{_SHARED_UNITS}"))
    if known:
        lacking = sorted(set(known) - {u.code for u in plan.units})
        if lacking:
            problems.append(("units", None, f"the plan lacks unit(s) {', '.join(lacking[:10])}"
                                            f"{' ...' if len(lacking) > 10 else ''} of the exams imported before"
                                            f"{_SHARED_UNITS}"))
    if problems:
        raise PlanError(problems)
    session.add(Exam(code=plan.exam, name=plan.name, created_at=now))
    # Parents before children, so foreign keys hold row by row.
    order = {k: i for i, k in enumerate([UnitKind.PRINTER, UnitKind.CITY, UnitKind.COUNTY, UnitKind.ZONE,
                                         UnitKind.SITE, UnitKind.ROOM, UnitKind.SECURE_ROOM, UnitKind.GRADING])}
    new_units = [u for u in sorted(plan.units, key=lambda u: order[u.kind]) if u.code not in known]
    if new_units:
        session.execute(insert(Unit), [
            {"code": u.code, "kind": u.kind.value, "name": u.name, "parent": u.parent,
             "candidates": u.candidates, "subjects": ";".join(u.subjects)} for u in new_units])
    session.execute(insert(Subject), [
        {"exam": plan.exam, "code": s.code, "name": s.name, "name_en": s.name_en, "starts_at": s.starts_at,
         "ends_at": s.ends_at, "listening": s.listening} for s in plan.subjects])
    items = plan_items(plan, seal_prefix=seal_prefix)
    session.execute(insert(Item), [
        {"exam": plan.exam, "item_id": i.item_id, "kind": int(i.kind), "subject": i.subject,
         "destination": i.destination, "count": i.count, "seal": i.seal, "parent_box": i.parent_box}
        for i in items])
    return len(items)


def load_plan(session: Session, exam: str) -> ExamPlan:
    """Rebuild the :class:`ExamPlan` of an imported exam from the database."""
    from custody.plan import Subject as PlanSubject
    from custody.plan import Unit as PlanUnit

    row = session.get(Exam, exam)
    if row is None:
        from custody.errors import NotFound
        raise NotFound(f"no exam {exam!r} has been imported")
    subjects = tuple(PlanSubject(s.code, s.name, s.starts_at, s.ends_at, s.listening, s.name_en)
                     for s in session.scalars(select(Subject).where(Subject.exam == exam).order_by(Subject.id)))
    units = tuple(PlanUnit(u.code, UnitKind(u.kind), u.name, u.parent, u.candidates,
                           tuple(x for x in u.subjects.split(";") if x))
                  for u in session.scalars(select(Unit).order_by(Unit.code)))
    return ExamPlan(exam, row.name, subjects, units)


def import_people(session: Session, people: list[SamplePerson]) -> None:
    existing = set(session.scalars(select(Person.staff_id)))
    rows = [{"staff_id": p.staff_id, "name": p.name, "unit": p.unit} for p in people if p.staff_id not in existing]
    if rows:
        session.execute(insert(Person), rows)


def add_station(session: Session, code: str, unit: str, name: str, kid: str | None, now: datetime) -> Station:
    station = Station(code=code, unit=unit, name=name, kid=kid, registered_at=now)
    session.add(station)
    return station
