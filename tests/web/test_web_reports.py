"""The verification reports page and the investigation page: languages, roles, the audit trail, bad input.

The verification tests run ``custody verify`` on the shared exam day and add
two signed reports of their own (one with findings, one altered after
signing); ``verified`` removes all of it afterwards, so that the other tests
still see an exam day that was never verified.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import delete, func, select

from store.accounts import AuditEntry
from tests.web.conftest import CHEAP, PASSWORD, csrf_token, login, make_app, new_address

LEAKED = "YW-P-K001-01"
CITY_DETECTIVE = "city-detective"  # an investigator of the institute (3601), unlike the county's "detective"


# --- helpers ----------------------------------------------------------------------------------


def audit_rows(instance: Any, action: str, after: int = 0) -> list[AuditEntry]:
    with instance.db.session() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action, AuditEntry.id > after)
                              .order_by(AuditEntry.id)))


def last_audit_id(instance: Any) -> int:
    with instance.db.session() as s:
        return s.scalar(select(func.max(AuditEntry.id))) or 0


def no_trace(response: Any) -> None:
    assert "Traceback" not in response.text and 'File "' not in response.text


# --- verification reports ---------------------------------------------------------------------


@dataclass
class Runs:
    clean: int
    failed: int
    altered: int


def _signed_failure(instance: Any, now: datetime, *, alter: bool = False) -> dict[str, Any]:
    """A failed report with one finding, signed by the log key (and changed afterwards with ``alter``)."""
    from custody.keyring import Role
    from custody.verify.findings import Finding
    from custody.verify.report import build_report, sign_report
    from store.ledger import Ledger

    finding = Finding("leaf_hash_mismatch", "leaf 7 no longer hashes to its stored hash",
                      "第 7 条记录的内容与其哈希不符", index=7, item=LEAKED, expected="aa11", found="bb22")
    report = build_report(origin=instance.origin, mode="full", started_at=now.isoformat(), finished_at=now.isoformat(),
                          log_size=40, verified_from=0, verified_to=40, checkpoint=None, findings=[finding],
                          finding_counts={"leaf_hash_mismatch": 1},
                          checks=[{"name": "tree", "name_zh": "默克尔树", "ok": False, "detail": "40 leaves"}],
                          stats={"events_per_second": 1000.0, "workers": 1}, previous=None, state_digest=None)
    key = instance.keys.private_key(Role.LOG_SIGNER, instance.institute, now)
    signed = sign_report(report, key.sign, Ledger(instance).verifier())
    if alter:
        signed = {**signed, "ok": True, "summary": "Verified: the log holds; every check passed."}
    return signed


def _store_run(instance: Any, report: dict[str, Any], now: datetime) -> int:
    from custody.verify.report import report_digest
    from store.verification_models import VerificationRun

    with instance.db.write_session() as s:
        row = VerificationRun(started_at=now, finished_at=now, mode=report["mode"], ok=report["ok"],
                              log_size=report["log_size"], verified_from=0, verified_to=report["verified_to"],
                              finding_count=sum(report["finding_counts"].values()),
                              digest=report_digest(report),
                              report=json.dumps(report, ensure_ascii=False), report_path=None)
        s.add(row)
        s.flush()
        return int(row.id)


@pytest.fixture
def verified(exam_day: Any) -> Iterator[Runs]:
    """The exam day verified once (a clean run), plus a failed run and an altered one; all removed after."""
    from store.verification import VerifyOptions, reports_dir, verify_instance
    from store.verification_models import VerificationRun, VerificationState

    instance = exam_day.instance
    folder = reports_dir(instance.home)
    files_before = set(folder.glob("*")) if folder.exists() else set()
    with instance.db.session() as s:
        first_new = (s.scalar(select(func.max(VerificationRun.id))) or 0) + 1
        had_state = s.get(VerificationState, 1) is not None
    try:
        outcome = verify_instance(instance, VerifyOptions(workers=0))
        assert outcome.ok, outcome.report["findings"]
        now = datetime.now(UTC)
        with instance.db.session() as s:
            clean = s.scalar(select(func.max(VerificationRun.id)))
        failed = _store_run(instance, _signed_failure(instance, now), now)
        altered = _store_run(instance, _signed_failure(instance, now, alter=True), now)
        yield Runs(clean, failed, altered)
    finally:
        with instance.db.write_session() as s:
            s.execute(delete(VerificationRun).where(VerificationRun.id >= first_new))
            if not had_state:
                s.execute(delete(VerificationState))
        for path in set(folder.glob("*")) - files_before if folder.exists() else ():
            path.unlink()


def test_the_verification_reports_in_chinese_then_english(verified: Runs, client_as: Any) -> None:
    client = client_as("auditor")
    listing = client.get("/verification")
    assert listing.status_code == 200
    text = listing.text
    assert "日志核验报告" in text and "通过" in text and "未通过" in text and "全量核验" in text
    runs = [int(n) for n in re.findall(r'href="/verification/(\d+)"', text)]
    assert runs[:3] == [verified.altered, verified.failed, verified.clean]  # newest first

    clean = client.get(f"/verification/{verified.clean}").text
    assert "验证通过" in clean and "刚刚用日志公钥验证" in clean  # the signature checks out under the log key
    assert "默克尔树" in clean and "没有发现问题" in clean
    assert f'href="/verification/{verified.clean}/report.json"' in clean

    failed = client.get(f"/verification/{verified.failed}").text
    assert "验证通过" in failed and "leaf_hash_mismatch" in failed and "日志条目被篡改" in failed
    row = failed[failed.index("<td><code>leaf_hash_mismatch"):]
    row = row[:row.index("</tr>")]
    assert ">7<" in row and f"/items/{LEAKED}" in row and "aa11" in row and "bb22" in row
    assert row.index("第 7 条记录的内容与其哈希不符") < row.index("leaf 7 no longer hashes")  # Chinese first

    client.get("/lang/en")
    english = client.get(f"/verification/{verified.failed}").text
    assert "Verification report" in english and "FAILED" in english and "verifies" in english
    assert "Leaf" in english and "Expected" in english and 'lang="en"' in english
    assert "Verification reports" in client.get("/verification").text


def test_a_report_changed_after_signing_does_not_verify(verified: Runs, client_as: Any) -> None:
    page = client_as("admin").get(f"/verification/{verified.altered}").text
    assert "验证失败" in page and "does not verify under the log key" in page


def test_the_signed_json_downloads_as_stored_and_verifies(verified: Runs, client_as: Any, exam_day: Any) -> None:
    from custody.verify.report import verify_report
    from store.models import KeyRecord
    from store.verification import log_verifiers

    response = client_as("auditor").get(f"/verification/{verified.clean}/report.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert re.search(r'attachment; filename="verify-\d{8}T\d{6}Z-[0-9a-f]{8}\.json"',
                     response.headers["Content-Disposition"])
    report = json.loads(response.data)
    assert report["ok"] and report["signature"]["alg"] == "Ed25519"
    with exam_day.instance.db.session() as s:
        registry = list(s.scalars(select(KeyRecord)))
    verify_report(report, log_verifiers(exam_day.instance.origin, registry))


def test_the_dashboard_card_links_to_the_reports(verified: Runs, client_as: Any) -> None:
    assert 'href="/verification">夜间核验</a>' in client_as("auditor").get("/dashboard").text
    officer = client_as("east").get("/dashboard").text
    assert "夜间核验" in officer and 'href="/verification"' not in officer


def test_unit_officers_may_not_see_verification_reports(verified: Runs, client_as: Any, app: Any) -> None:
    officer = client_as("east")
    for path in ("/verification", f"/verification/{verified.clean}", f"/verification/{verified.clean}/report.json"):
        response = officer.get(path)
        assert response.status_code == 403, path
        no_trace(response)
    for name in ("admin", "auditor"):
        assert client_as(name).get("/verification").status_code == 200
    # an investigator bound to a county: the reports name items of every county, so not for it; told why
    county = client_as("detective")
    dashboard = county.get("/dashboard").text
    assert 'href="/verification">夜间核验</a>' not in dashboard
    # nor does the navigation lead to pages that answer it 403
    assert 'href="/verification"' not in dashboard and 'href="/investigations"' not in dashboard
    assert 'href="/verification"' in client_as("auditor").get("/dashboard").text
    for path in ("/verification", f"/verification/{verified.clean}", f"/verification/{verified.clean}/report.json"):
        response = county.get(path)
        assert response.status_code == 403 and "只有考试院的账号才能查看" in response.text, path
        no_trace(response)
    anonymous = app.test_client().get("/verification")
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    assert client_as("auditor").get("/verification/999999").status_code == 404


@pytest.mark.parametrize("run_id", [2**31, 2**63, 10**23])
def test_a_run_id_beyond_the_column_is_not_found(run_id: int, verified: Runs, client_as: Any) -> None:
    """Past PostgreSQL's INTEGER (or SQLite's 64 bits) the id names no run: 404, not a 500 from the driver."""
    auditor = client_as("auditor")
    for path in (f"/verification/{run_id}", f"/verification/{run_id}/report.json"):
        response = auditor.get(path)
        assert response.status_code == 404, path
        assert "此处没有内容" in response.text
        no_trace(response)


def test_viewing_and_downloading_a_report_is_audited(verified: Runs, client_as: Any, exam_day: Any) -> None:
    before = last_audit_id(exam_day.instance)
    client = client_as("auditor")
    client.get("/verification")
    client.get(f"/verification/{verified.failed}")
    client.get(f"/verification/{verified.failed}/report.json")
    rows = audit_rows(exam_day.instance, "view_verification", before)
    target = f"run {verified.failed}"
    assert [(r.username, r.role, r.target, r.detail.split()[0]) for r in rows] == [
        ("auditor", "auditor", target, "page"), ("auditor", "auditor", target, "json")]
    assert rows[0].address


# --- investigations ---------------------------------------------------------------------------


@pytest.fixture
def investigator(exam_day: Any, app: Any) -> Any:
    """A client logged in as an investigator of the institute (3601)."""
    from web.accounts import AccountError, create_account

    try:
        create_account(exam_day.instance, CITY_DETECTIVE, PASSWORD, "investigator", "3601", datetime.now(UTC),
                       hasher=CHEAP)
    except AccountError:
        pass  # made by an earlier test on this database
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = new_address()
    assert login(client, CITY_DETECTIVE).status_code == 302
    return client


def investigate(client: Any, **fields: Any) -> Any:
    token = csrf_token(client.get("/investigations").text)
    return client.post("/investigations", data={"csrf_token": token, **fields}, content_type="multipart/form-data")


def downloads(page: str) -> dict[str, str]:
    return {fmt: html.unescape(link) for link, fmt in
            re.findall(r'href="(/investigations/report\.(pdf|json|html)\?[^"]+)"', page)}


def pinned(page: str) -> str:
    """`` size=N now=T``: the checkpoint and end of windows of the report a page shows, as its downloads give them."""
    args = parse_qs(urlsplit(downloads(page)["json"]).query)
    return f" size={args['size'][0]}" + (f" now={args['now'][0]}" if "now" in args else "")


def test_an_investigation_in_chinese_shows_the_report_in_the_page(investigator: Any, exam_day: Any) -> None:
    form = investigator.get("/investigations")
    assert form.status_code == 200 and "失泄密调查" in form.text and 'name="csrf_token"' in form.text
    assert "语文 (YW)" in form.text and 'enctype="multipart/form-data"' in form.text
    before = last_audit_id(exam_day.instance)
    response = investigate(investigator, subject="YW", leak_time="2017-06-19T23:30")
    assert response.status_code == 200, response.text
    frame = re.search(r'<iframe class="report" sandbox srcdoc="([^"]*)"', response.text)
    assert frame, "the report is shown in the page"
    report = html.unescape(frame.group(1))
    assert report.startswith("<!doctype html>") and "失泄密调查报告" in report and "<svg" in report
    assert "东湖区中招办（360102）" in report and "c2sp.org/tlog-proof@v1" in report
    style = re.search(r"<style>(.*?)</style>", report, re.S).group(1)  # type: ignore[union-attr]
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    policy = response.headers["Content-Security-Policy"]
    assert f"'sha256-{digest}'" in policy and "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert set(downloads(response.text)) == {"pdf", "json", "html"}
    (row,) = audit_rows(exam_day.instance, "view_investigation", before)
    assert (row.username, row.role, row.target) == (CITY_DETECTIVE, "investigator", "YW")
    assert row.detail == "page subject=YW leak_time=2017-06-19T15:30:00Z" + pinned(response.text)


@pytest.mark.parametrize("fields", [{"subject": "YW\x00"}, {"subject": "YW", "item": "YW-P-K001-01\x00"},
                                    {"subject": "YW", "unit": "K0\x0001"}, {"subject": "YW", "leak_time": "2017\x00"},
                                    {"subject": "YW", "note\x00": "x"}])
def test_a_nul_in_the_investigation_form_is_a_400_and_nothing_is_audited(investigator: Any, exam_day: Any,
                                                                           fields: dict[str, str]) -> None:
    # The form is multipart (it may carry a photo), which the application-wide NUL check leaves to the view:
    # a NUL in the subject was a 500 on PostgreSQL.
    before = last_audit_id(exam_day.instance)
    response = investigate(investigator, **fields)
    assert response.status_code == 400, response.text[:300]
    assert audit_rows(exam_day.instance, "view_investigation", before) == []


def test_the_downloads_are_the_report_shown_whatever_was_logged_since(investigator: Any, exam_day: Any) -> None:
    from store.models import LogCheckpoint

    response = investigate(investigator, subject="YW", item=LEAKED)
    assert response.status_code == 200, response.text
    link = downloads(response.text)["json"]
    shown = parse_qs(urlsplit(link).query)
    latest = investigator.get(link).get_json()
    assert latest["log"]["tree_size"] == int(shown["size"][0]) and latest["until"] == shown["now"][0]
    # A download names its checkpoint: an earlier one gives the report as it stood then, not the latest.
    with exam_day.instance.db.session() as s:
        earlier = s.scalars(select(LogCheckpoint.size).where(LogCheckpoint.size < latest["log"]["tree_size"])
                            .order_by(LogCheckpoint.size.desc()).limit(1)).one()
    then = investigator.get(link.replace(f"size={shown['size'][0]}", f"size={earlier}")).get_json()
    assert then["log"]["tree_size"] == earlier and then["until"] == latest["until"]
    before = last_audit_id(exam_day.instance)
    beyond = latest["log"]["tree_size"] + 1
    for query, message in (("size=7x", "请求无法识别"), ("size=%D9%A3", "请求无法识别"),
                           (f"size={beyond}", f"no signed checkpoint at size {beyond}"),
                           ("now=2999-01-01T00:00Z", "请求无法识别")):
        bad = investigator.get(f"/investigations/report.json?subject=YW&{query}")
        assert bad.status_code == 400 and message in bad.text, (query, bad.text)
    assert last_audit_id(exam_day.instance) == before


def test_the_json_download_is_written_as_the_command_line_writes_it(investigator: Any) -> None:
    # Indented, a city-wide subject's report took json's pure-Python encoder seconds and was a third larger.
    body = investigator.get("/investigations/report.json?subject=YW").data
    assert body == (json.dumps(json.loads(body), ensure_ascii=False) + "\n").encode()


def test_an_investigation_in_english_and_its_downloads(client_as: Any, exam_day: Any) -> None:
    from custody.log.merkle import leaf_hash
    from custody.log.note import parse_verifier_key
    from custody.log.proofs import verify_tlog_proof

    client = client_as("admin")
    client.get("/lang/en")
    before = last_audit_id(exam_day.instance)
    response = investigate(client, subject="YW", item=LEAKED, unit="360102")
    assert response.status_code == 200, response.text
    assert "Leak investigation" in response.text and "Leak investigation report" in html.unescape(response.text)
    links = downloads(response.text)
    assert "item=YW-P-K001-01" in links["pdf"] and "lang=en" in links["pdf"]

    pdf = client.get(links["pdf"])
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF")
    assert "investigation-YW-" in pdf.headers["Content-Disposition"]
    data = client.get(links["json"]).get_json()
    assert data["format"] == "custody-investigation/v1" and data["focus"] == [LEAKED]
    assert data["query"]["leaked_unit"] == "360102" and data["events"]
    key = parse_verifier_key(data["log"]["verifier_key"])
    for event in data["events"][::7]:
        proof = event["proof"]
        assert proof.startswith("c2sp.org/tlog-proof@v1\n")
        digest = leaf_hash(event["leaf"].encode())  # the leaf as given, hashed here: verifiable offline
        assert digest.hex() == event["leaf_hash"]
        assert verify_tlog_proof(proof, digest, key).index == event["index"]
    page = client.get(links["html"])
    assert page.status_code == 200 and "attachment" in page.headers["Content-Disposition"]
    assert page.text.startswith("<!doctype html>") and "Leak investigation report" in page.text

    rows = audit_rows(exam_day.instance, "view_investigation", before)
    query = "subject=YW item=YW-P-K001-01 unit=360102" + pinned(response.text)
    assert [(r.username, r.target, r.detail) for r in rows] == [
        ("admin", "YW", f"page {query}"), ("admin", "YW", f"pdf {query}"), ("admin", "YW", f"json {query}"),
        ("admin", "YW", f"html {query}")]


def test_a_photo_of_the_bag_opens_its_item(investigator: Any, exam_day: Any, tmp_path: Path) -> None:
    if exam_day.db != "sqlite":
        pytest.skip("decoding a photo does not depend on the database")
    from printing.png import label_png
    from store.queries import printable_labels

    (label,) = printable_labels(exam_day.instance, "zk2017", item=LEAKED)
    photo = io.BytesIO()
    label_png(label, dpi=200).save(photo, format="PNG")
    before = last_audit_id(exam_day.instance)
    response = investigate(investigator, subject="", photo=(io.BytesIO(photo.getvalue()), "bag.png"))
    assert response.status_code == 200, response.text
    assert "照片中的标签" in html.unescape(response.text)
    (row,) = audit_rows(exam_day.instance, "view_investigation", before)
    digest = hashlib.sha256(photo.getvalue()).hexdigest()
    assert row.detail == f"page subject=YW item={LEAKED}{pinned(response.text)} photo=sha256:{digest}"

    links = downloads(response.text)
    assert "evidence=" in links["json"]
    data = investigator.get(links["json"]).get_json()
    assert data["focus"] == [LEAKED] and [(p["item"], p["verified"]) for p in data["photo"]] == [(LEAKED, True)]
    forged = re.sub(r"evidence=[^&]+", "evidence=eyJmb3JnZWQiOnRydWV9.AAAA", links["json"])
    refused = investigator.get(forged)
    assert refused.status_code == 400 and "照片证据无效" in refused.text

    blank = io.BytesIO()
    label_png(label, dpi=200).crop((0, 0, 40, 40)).save(blank, format="PNG")
    nothing = investigate(investigator, subject="YW", photo=(io.BytesIO(blank.getvalue()), "blank.png"))
    assert nothing.status_code == 400 and "照片中没有找到签名有效的" in nothing.text


@pytest.mark.parametrize("name", ["east", "auditor", "detective"])
def test_only_investigators_of_the_institute_may_investigate(name: str, client_as: Any, exam_day: Any) -> None:
    client = client_as(name)
    before = last_audit_id(exam_day.instance)
    for response in (client.get("/investigations"),
                     client.post("/investigations", data={"subject": "YW"}),
                     client.get("/investigations/report.json?subject=YW")):
        assert response.status_code == 403
        no_trace(response)
        if name == "detective":  # the right role, but bound to a county: told why
            assert "只有考试院的调查人员才能进行" in response.text and "360102" in response.text
    assert not audit_rows(exam_day.instance, "view_investigation", before)
    assert "/investigations" not in client_as("east").get("/dashboard").text  # not in an officer's navigation


def test_an_investigation_without_the_csrf_token_is_refused(investigator: Any, exam_day: Any) -> None:
    before = last_audit_id(exam_day.instance)
    response = investigator.post("/investigations", data={"subject": "YW"}, content_type="multipart/form-data")
    assert response.status_code == 400 and "表单已过期" in response.text
    forged = investigator.post("/investigations", data={"subject": "YW", "csrf_token": "forged"})
    assert forged.status_code == 400
    assert not audit_rows(exam_day.instance, "view_investigation", before)


@pytest.mark.parametrize(("fields", "message"), [
    ({"subject": "ZZ"}, "本次考试没有科目 ZZ"),
    ({"subject": "YW", "item": "NOPE-1"}, "本次考试没有物品 NOPE-1"),
    ({"subject": "SX", "item": LEAKED}, f"物品 {LEAKED} 不属于科目 SX"),
    ({"subject": "YW", "unit": "999999"}, "没有单位 999999"),
    ({"subject": "YW", "leak_time": "yesterday"}, "yesterday 不是有效的时间"),
    ({"subject": "YW", "as_of": "2017-13-40T99:00"}, "不是有效的时间"),
    ({"subject": "YW", "as_of": "2001-01-01T00:00"}, "无法生成调查报告"),  # no checkpoint was signed by then
    ({"subject": "YW", "item": "<script>alert(1)</script>"}, "只能使用字母"),
    ({"subject": ""}, "请选择科目"),
    ({"subject": "YW", "photo": (b"%PDF-1.4 not a photo", "leak.png")}, "该文件不是照片"),
    ({"subject": "YW", "photo": (b"", "empty.jpg")}, "该文件不是照片"),
], ids=["unknown-subject", "unknown-item", "item-of-another-subject", "unknown-unit", "bad-leak-time",
        "impossible-as-of", "before-any-checkpoint", "html-in-item", "no-subject", "not-an-image", "empty-file"])
def test_bad_input_is_refused_with_a_clear_message(fields: dict[str, Any], message: str, investigator: Any,
                                                   exam_day: Any) -> None:
    if exam_day.db != "sqlite" and "photo" in fields:
        pytest.skip("reading the upload does not depend on the database")
    if "photo" in fields:
        data, name = fields["photo"]
        fields = {**fields, "photo": (io.BytesIO(data), name)}
    before = last_audit_id(exam_day.instance)
    response = investigate(investigator, **fields)
    assert response.status_code == 400
    assert message in response.text
    assert "<script>alert" not in response.text
    no_trace(response)
    assert last_audit_id(exam_day.instance) == before  # nothing stored, not even a view


def test_bad_download_addresses_are_refused(investigator: Any, exam_day: Any) -> None:
    before = last_audit_id(exam_day.instance)
    for query, message in (("subject=YW&as_of=yesterday", "不是有效的时间"), ("item=" + LEAKED, "请选择科目"),
                           ("subject=YW&item=NOPE", "本次考试没有物品 NOPE"), ("subject=" + "Y" * 20, "请求无法识别")):
        response = investigator.get(f"/investigations/report.json?{query}")
        assert response.status_code == 400 and message in response.text, query
        no_trace(response)
    assert investigator.get("/investigations/report.xml?subject=YW").status_code == 404
    assert last_audit_id(exam_day.instance) == before


def test_a_photo_over_the_limit_is_refused_before_it_is_decoded(exam_day: Any) -> None:
    if exam_day.db != "sqlite":
        pytest.skip("the upload limit does not depend on the database")
    from web.accounts import AccountError, create_account

    try:
        create_account(exam_day.instance, CITY_DETECTIVE, PASSWORD, "investigator", "3601", datetime.now(UTC),
                       hasher=CHEAP)
    except AccountError:
        pass
    client = make_app(exam_day.instance, MAX_PHOTO_LENGTH=32 * 1024).test_client()
    client.environ_base["REMOTE_ADDR"] = new_address()
    login(client, CITY_DETECTIVE)
    before = last_audit_id(exam_day.instance)
    over_the_photo_limit = investigate(client, subject="YW", photo=(io.BytesIO(b"\xff" * 40_000), "big.jpg"))
    over_the_body_limit = investigate(client, subject="YW", photo=(io.BytesIO(b"\xff" * 400_000), "huge.jpg"))
    for response in (over_the_photo_limit, over_the_body_limit):
        assert response.status_code == 413
        assert "照片超过 32 KB" in response.text
        no_trace(response)
    assert last_audit_id(exam_day.instance) == before
