"""Instances, keys and plan import, on SQLite and PostgreSQL."""

from __future__ import annotations

import stat
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from custody.errors import KeyRevoked, MissingKey, NotFound, PlanError, WrongPassphrase
from custody.keyring import Role
from custody.labels import verify_label
from custody.sample import EXAM, sample_plan
from keys.files import read_private_key
from store.instance import init_instance, open_instance
from store.issuance import issue_item_labels
from store.models import Item, KeyRecord, Unit
from store.plans import import_plan, read_plan_files, write_plan_files
from store.queries import label_text_of
from tests.factories import T0, TEST_SECRET


def test_init_creates_encrypted_keys_and_is_idempotent(make_instance, tmp_path: Path) -> None:
    instance = make_instance()
    files = sorted((instance.home / "keys").iterdir())
    assert len(files) == 3
    for f in files:
        assert f.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
        with pytest.raises(WrongPassphrase):
            read_private_key(f, b"not-the-passphrase")
    again, done = init_instance(instance.home, origin="other", institute="9999", now=T0, secret=TEST_SECRET,
                                url=instance.db.url)
    assert not any("created" in line for line in done)
    assert again.origin == "test.exam/zk2017"
    again.close()
    with instance.db.session() as s:
        assert s.scalar(select(func.count()).select_from(KeyRecord)) == 3


def test_a_setting_read_in_a_writers_session_sees_what_that_session_changed(make_instance) -> None:
    """Read in the caller's transaction: a value that session changed and has not flushed yet, else the
    stored one (read in the driver's own SQL), else the default."""
    from store.models import Setting

    instance = make_instance()
    instance.set_setting("exam", "zk2017")
    with instance.db.write_session() as s:
        assert instance.setting("exam", session=s) == "zk2017"
        assert instance.setting("no such", "fallback", session=s) == "fallback"
        s.get(Setting, "exam").value = "zk2018"  # pending, not flushed
        assert instance.current_exam(s) == "zk2018"
        s.add(Setting(name="late", value="added"))
        assert instance.setting("late", session=s) == "added"
    assert instance.current_exam() == "zk2018" and instance.setting("late") == "added"


def test_import_is_all_or_nothing(make_instance, tmp_path: Path) -> None:
    instance = make_instance()
    plan = sample_plan("tiny")
    with instance.db.write_session() as s:
        assert import_plan(s, plan, T0) == 80
    with pytest.raises(PlanError, match="already imported"):
        with instance.db.write_session() as s:
            import_plan(s, plan, T0)
    # A plan whose unit contradicts a stored one changes nothing at all.
    from dataclasses import replace

    units = tuple(replace(u, parent="360103-Q1") if u.code == "K001" else u for u in plan.units)
    other = replace(plan, exam="zk2018", units=units)
    with pytest.raises(PlanError, match="K001 exists as a site under 360102-Q1"):
        with instance.db.write_session() as s:
            import_plan(s, other, T0)
    with instance.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Item)) == 80
        assert s.get(Unit, "K001").parent == "360102-Q1"
    # another room size, or a unit left out: before, the old unit rows stayed while the items followed the
    # new plan (a room of 29 with 30 papers), and load_plan gave the new exam the old exam's units
    room = next(u for u in plan.units if u.kind.value == "room")
    resized = replace(plan, exam="zk2018", units=tuple(replace(u, candidates=u.candidates - 1) if u is room else u
                                                       for u in plan.units))
    with pytest.raises(PlanError, match=f"unit {room.code} exists with candidates {room.candidates}; the plan has "
                                        f"{room.candidates - 1}; the exams of one instance share its units"):
        with instance.db.write_session() as s:
            import_plan(s, resized, T0)
    fewer = replace(plan, exam="zk2018", units=tuple(u for u in plan.units if u is not room))
    with pytest.raises(PlanError, match=f"the plan lacks unit\\(s\\) {room.code} of the exams imported before"):
        with instance.db.write_session() as s:
            import_plan(s, fewer, T0)
    with instance.db.write_session() as s:  # the same units under another exam code (a mock exam) are fine
        assert import_plan(s, replace(plan, exam="zk2018"), T0) == 80


def test_plan_files_round_trip_through_csv(tmp_path: Path) -> None:
    plan = sample_plan("tiny")
    write_plan_files(plan, tmp_path / "plan")
    assert read_plan_files(tmp_path / "plan", plan.exam, plan.name) == plan


def test_blank_rows_of_a_spreadsheet_export_are_skipped_but_counted(tmp_path: Path) -> None:
    """Excel writes empty rows as ``,,,,,`` (and people leave blank lines): they are not units, and
    the rows after them keep the numbers the spreadsheet shows."""
    plan = sample_plan("tiny")
    write_plan_files(plan, tmp_path / "plan")
    units = tmp_path / "plan" / "units.csv"
    lines = units.read_text(encoding="utf-8").splitlines()
    lines.insert(5, "")
    lines += [",,,,,", ",,,,,"]
    units.write_bytes("\r\n".join(lines).encode("gb18030") + b"\r\n")
    assert read_plan_files(tmp_path / "plan", plan.exam, plan.name) == plan
    lines.insert(len(lines) - 2, "K002-03,room,第03考场,K002,many,")
    units.write_bytes("\r\n".join(lines).encode("gb18030") + b"\r\n")
    with pytest.raises(PlanError) as caught:
        read_plan_files(tmp_path / "plan", plan.exam, plan.name)
    assert caught.value.problems == [("units.csv", len(lines) - 2,
                                      "candidates of K002-03 must be a whole number from 0 to 9999, found 'many'")]


def test_excel_unicode_text_is_read_and_a_file_that_is_not_text_is_named(tmp_path: Path) -> None:
    """Excel's "Unicode text" is UTF-16 with a BOM, separated by tabs; bytes that are no text at all
    (a workbook renamed .csv) are refused with the file's name, not a UnicodeDecodeError."""
    plan = sample_plan("tiny")
    write_plan_files(plan, tmp_path / "plan")
    for file in ("subjects.csv", "units.csv"):
        text = (tmp_path / "plan" / file).read_text(encoding="utf-8")
        (tmp_path / "plan" / file).write_bytes(text.replace(",", "\t").replace("\n", "\r\n").encode("utf-16"))
    assert read_plan_files(tmp_path / "plan", plan.exam, plan.name) == plan
    (tmp_path / "plan" / "units.csv").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(PlanError) as caught:
        read_plan_files(tmp_path / "plan", plan.exam, plan.name)
    assert caught.value.problems == [("units.csv", None, "cannot be read as text (UTF-8, UTF-16 or GB18030/GBK); "
                                                         "save it from the spreadsheet as CSV")]


def test_a_column_named_twice_is_refused_by_name(tmp_path: Path) -> None:
    """A second 'code' column (here in place of the room subjects) shadowed the first: every unit was
    refused as having an empty code, which pointed at the wrong thing."""
    plan = sample_plan("tiny")
    write_plan_files(plan, tmp_path / "plan")
    units = tmp_path / "plan" / "units.csv"
    text = units.read_text(encoding="utf-8")
    units.write_text(text.replace("candidates,subjects", "candidates, code ", 1), encoding="utf-8")
    with pytest.raises(PlanError) as caught:
        read_plan_files(tmp_path / "plan", plan.exam, plan.name)
    assert caught.value.problems == [("units.csv", 1, "column 'code' appears more than once in the header")]
    units.write_text(text.replace("candidates,subjects", "candidates,subjects,,", 1), encoding="utf-8")
    assert read_plan_files(tmp_path / "plan", plan.exam, plan.name) == plan  # empty headers are no columns


def test_a_value_beyond_the_header_is_refused_with_its_row(tmp_path: Path) -> None:
    """A room's subjects typed with a comma (YW,SX for YW;SX) split the row: SX fell beyond the header,
    where nothing read it, and the room sat YW alone."""
    plan = sample_plan("tiny")
    write_plan_files(plan, tmp_path / "plan")
    units = tmp_path / "plan" / "units.csv"
    lines = units.read_text(encoding="utf-8").splitlines()
    assert lines[0].endswith(",subjects")
    row = next(n for n, line in enumerate(lines) if line.startswith("K001-01,"))
    lines[row] = lines[row].rsplit(",", 1)[0] + ",YW,SX"
    units.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(PlanError) as caught:
        read_plan_files(tmp_path / "plan", plan.exam, plan.name)
    assert caught.value.problems == [("units.csv", row + 1, "a value in column 7, which has no header: a comma "
                                      "inside a cell? put the cell in double quotes, or save the file from the "
                                      "spreadsheet")]
    lines[row] = lines[row].rsplit(",", 2)[0] + ',"YW,SX"'  # quoted, as a spreadsheet writes it: one cell
    units.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert read_plan_files(tmp_path / "plan", plan.exam, plan.name).unit("K001-01").subjects == ("YW", "SX")


def test_plan_workbook_is_read(tmp_path: Path) -> None:
    from openpyxl import Workbook

    from custody.plan import subject_rows, unit_rows

    plan = sample_plan("tiny")
    book = Workbook()
    book.remove(book.active)
    for title, rows in (("科目", subject_rows(plan)), ("单位", unit_rows(plan))):
        sheet = book.create_sheet(title)
        sheet.append(list(rows[0]))
        for row in rows:
            sheet.append([int(v) if v.isdigit() and k == "candidates" else v for k, v in row.items()])
    book.save(tmp_path / "plan.xlsx")
    assert read_plan_files(tmp_path / "plan.xlsx", plan.exam, plan.name) == plan
    book["单位"].append(["K002-03", "room", "第03考场", "K002", 0])
    book.save(tmp_path / "plan.xlsx")
    with pytest.raises(PlanError) as caught:
        read_plan_files(tmp_path / "plan.xlsx", plan.exam, plan.name)
    assert caught.value.problems == [("plan.xlsx sheet 单位", len(plan.units) + 2, "room K002-03 has no candidates")]
    book["单位"].append(["K002-04", "room", "第04考场", "K002", 30, "", "", "一楼"])  # a value under no header
    book.save(tmp_path / "plan.xlsx")
    with pytest.raises(PlanError) as caught:
        read_plan_files(tmp_path / "plan.xlsx", plan.exam, plan.name)
    assert ("plan.xlsx sheet 单位", len(plan.units) + 3, "a value in column 8, which has no header: give the column "
            "a header (备注 for remarks custody does not read), or delete it") in caught.value.problems


def test_labels_issued_in_bulk_verify_against_the_registry(tiny_exam) -> None:
    ring = tiny_exam.keys.keyring()
    with tiny_exam.db.session() as s:
        rows = s.scalars(select(Item)).all()
    assert rows and all(r.label_text for r in rows)
    for row in rows[:20]:
        label = verify_label(row.label_text, ring)
        assert (label.payload.item_id, label.payload.count, label.payload.seal) == (row.item_id, row.count, row.seal)
    with pytest.raises(NotFound):
        label_text_of(tiny_exam, EXAM, "nope")


def test_a_log_key_rotation_is_vouched_for_by_the_old_key_and_no_other_rotation_is(tiny_exam) -> None:
    """The old log key signs a rollover naming its successor, kept with the new key's row (what stations and
    witnesses follow); a label key's rotation has none, and a revoked log key vouches for nothing."""
    from custody.log.note import verifier_key
    from custody.log.rollover import follow_rollovers
    from store.ledger import Ledger

    ledger = Ledger(tiny_exam)
    first = ledger.log_key()
    later = T0 + timedelta(days=3)
    tiny_exam.keys.rotate(Role.LABEL_ISSUER, "3601", later)
    assert ledger.log_key_rollovers() == []
    second = tiny_exam.keys.rotate(Role.LOG_SIGNER, "3601", later)
    third = tiny_exam.keys.rotate(Role.LOG_SIGNER, "3601", later + timedelta(days=1))
    keys = [first, *(verifier_key(tiny_exam.origin, k.public_raw) for k in (second, third))]
    assert ledger.log_key() == keys[2]
    assert follow_rollovers(first, ledger.log_key_rollovers()) == keys
    tiny_exam.keys.revoke(third.kid_hex, later + timedelta(days=2), "log key file copied")
    fourth = tiny_exam.keys.rotate(Role.LOG_SIGNER, "3601", later + timedelta(days=2))
    assert verifier_key(tiny_exam.origin, fourth.public_raw) not in follow_rollovers(first, ledger.log_key_rollovers())
    ledger.close()


def test_rotation_and_revocation_through_the_manager(tiny_exam) -> None:
    old_text = label_text_of(tiny_exam, EXAM, "YW-P-K001-01")
    later = T0 + timedelta(days=3)
    new_key = tiny_exam.keys.rotate(Role.LABEL_ISSUER, "3601", later)
    issue_item_labels(tiny_exam, EXAM, later + timedelta(minutes=1), reissue=True, item_ids=["YW-P-K001-01"])
    new_text = label_text_of(tiny_exam, EXAM, "YW-P-K001-01")
    ring = tiny_exam.keys.keyring()
    assert verify_label(old_text, ring).key.kid != new_key.kid
    assert verify_label(new_text, ring).key.kid == new_key.kid
    # Revoking the new key an hour in voids the label it signed after that hour only.
    tiny_exam.keys.revoke(new_key.kid_hex, later + timedelta(seconds=30), "station laptop stolen")
    with pytest.raises(KeyRevoked, match="station laptop stolen"):
        verify_label(new_text, tiny_exam.keys.keyring())
    assert verify_label(old_text, tiny_exam.keys.keyring())
    with pytest.raises(MissingKey):
        tiny_exam.keys.signer(Role.LABEL_ISSUER, "3601", later + timedelta(hours=1))
    with pytest.raises(NotFound):
        tiny_exam.keys.revoke("00" * 8, later, "no such key")


def test_a_wrong_passphrase_is_refused_before_anything_is_signed(tiny_exam) -> None:
    reopened = open_instance(tiny_exam.home, secret=b"wrong-passphrase", url=tiny_exam.db.url)
    try:
        with pytest.raises(WrongPassphrase):
            issue_item_labels(reopened, EXAM, T0 + timedelta(hours=1), reissue=True)
    finally:
        reopened.close()
    with tiny_exam.db.session() as s:
        assert {r for r in s.scalars(select(Item.issued_at))} == {T0}


def test_a_wrong_passphrase_creates_no_key_and_retires_none(tiny_exam) -> None:
    """A rotation under a mistyped passphrase would leave a current key nobody can open: refused first."""
    keys_before = sorted(p.name for p in (tiny_exam.home / "keys").iterdir())
    current = tiny_exam.keys.current(Role.LABEL_ISSUER, "3601", T0 + timedelta(hours=1))
    reopened = open_instance(tiny_exam.home, secret=b"wrong-passphrase", url=tiny_exam.db.url)
    try:
        with pytest.raises(WrongPassphrase):
            reopened.keys.rotate(Role.LABEL_ISSUER, "3601", T0 + timedelta(hours=1))
    finally:
        reopened.close()
    assert sorted(p.name for p in (tiny_exam.home / "keys").iterdir()) == keys_before
    with tiny_exam.db.session() as s:
        assert s.scalar(select(func.count()).select_from(KeyRecord)) == 3
        assert s.get(KeyRecord, current.id).valid_until is None
    # the instance's own passphrase still rotates
    tiny_exam.keys.rotate(Role.LABEL_ISSUER, "3601", T0 + timedelta(hours=1))
    assert tiny_exam.keys.signer(Role.LABEL_ISSUER, "3601", T0 + timedelta(hours=2)).kid != bytes.fromhex(current.kid)


def test_a_short_passphrase_is_refused_for_new_keys_and_told_it_does_not_open_old_ones(tiny_exam, tmp_path: Path,
                                                                                      monkeypatch) -> None:
    """The length rule is for a passphrase keys are written under; a short mistyped one for existing keys
    is told it does not open them (it was told how long a passphrase must be)."""
    from custody.errors import KeyStoreError

    monkeypatch.setenv("CUSTODY_PASSPHRASE", "short")
    reopened = open_instance(tiny_exam.home, url=tiny_exam.db.url)
    try:
        with pytest.raises(WrongPassphrase, match="does not open"):
            issue_item_labels(reopened, EXAM, T0 + timedelta(hours=1), reissue=True)
    finally:
        reopened.close()
    with pytest.raises(KeyStoreError, match="at least 8 characters"):
        init_instance(tmp_path / "new", origin="test.exam/zk2017", institute="3601", now=T0, secret=b"short",
                      url=f"sqlite:///{tmp_path / 'new.db'}")
    assert not (tmp_path / "new" / "keys").exists() or not any((tmp_path / "new" / "keys").iterdir())


def test_a_new_instance_asks_for_its_passphrase_twice_at_a_terminal(tmp_path: Path, monkeypatch) -> None:
    """A typo in the passphrase of an instance's first keys would lock them for good: asked twice."""
    from custody.errors import KeyStoreError

    answers = iter(["a-passphrase", "a-passphrasf"])
    monkeypatch.delenv("CUSTODY_PASSPHRASE", raising=False)
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    with pytest.raises(KeyStoreError, match="differ"):
        init_instance(tmp_path / "new", origin="test.exam/zk2017", institute="3601", now=T0,
                      url=f"sqlite:///{tmp_path / 'new.db'}")
    assert not (tmp_path / "new" / "keys").exists() or not any((tmp_path / "new" / "keys").iterdir())


def test_a_station_code_with_a_trailing_newline_is_refused_and_nothing_is_stored(tiny_exam) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from store.models import Station
    from store.stations import register_station

    public = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    with pytest.raises(ValueError, match="station code"):
        register_station(tiny_exam, "ST-9\n", "3601", "ST-9", public, T0)
    with tiny_exam.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Station)) == 0
