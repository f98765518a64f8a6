"""The foundation commands as a user runs them: init, plan import, items, keys, labels."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli
from custody.labels import cose_from_text
from tests.factories import TEST_SECRET


@pytest.fixture
def run(tmp_path: Path, db_url: str):
    env = {"CUSTODY_HOME": str(tmp_path / "home"), "CUSTODY_DATABASE_URL": db_url,
           "CUSTODY_PASSPHRASE": TEST_SECRET.decode()}

    def invoke(*args: str, ok: bool = True):
        result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        return result
    return invoke


@pytest.fixture
def exam(run, tmp_path: Path):
    run("init")
    run("plan", "sample", "--scale", "tiny", str(tmp_path / "plan"))
    out = run("plan", "import", str(tmp_path / "plan"), "--exam", "zk2017", "--name", "2017年南昌市中考").output
    assert "80 items" in out
    out = run("labels", "issue").output
    assert "signed 80 item label(s)" in out and "80 label(s) entered in the log" in out
    return run


def test_a_reissue_enters_the_new_labels_in_the_log(exam, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stations accept a label only once the log holds it: a reissue from the command line logs it."""
    from datetime import timedelta

    import cli.main
    from cli.context import now

    before = exam("labels", "text", "YW-P-K001-01").output
    monkeypatch.setattr(cli.main, "now", lambda: now() + timedelta(seconds=2))  # labels are signed to the second
    out = exam("labels", "issue", "--reissue").output
    assert "signed 80 item label(s)" in out and "80 label(s) entered in the log" in out
    assert exam("labels", "text", "YW-P-K001-01").output != before
    assert "0 label(s) entered in the log" in exam("labels", "issue").output


def test_items_list_json_has_one_object_a_line(exam) -> None:
    lines = exam("items", "list", "--subject", "YY", "--json").output.splitlines()
    rows = [json.loads(line) for line in lines]
    assert {r["subject"] for r in rows} == {"YY"}
    assert {"id", "kind", "subject", "destination"} <= set(rows[0])
    assert sum(r["kind"] == "listening_disc" for r in rows) == 2


def test_items_list_names_an_unknown_exam_or_subject(exam) -> None:
    """A misspelt filter is a usage error that names it, as in `investigate`, not an empty list."""
    for args, named in ((["--exam", "nope"], "no exam 'nope' has been imported; exams: zk2017"),
                        (["--subject", "NOPE"], "no subject 'NOPE' in exam zk2017; subjects: YW, ")):
        result = exam("items", "list", *args, "--json", ok=False)
        assert result.exit_code == 2 and named in result.output, result.output
        assert result.stdout == ""


def test_label_text_verifies_and_prints_the_fields(exam) -> None:
    text = exam("labels", "text", "YW-P-K001-01").output.strip()
    result = json.loads(exam("labels", "verify", text).output)
    assert result["item"] == "YW-P-K001-01" and result["valid"] is True
    assert result["subject"] == "YW" and result["destination"] == "K001-01"


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_labels_png_saves_the_label_that_decodes_and_verifies(exam, tmp_path: Path, lang: str) -> None:
    from PIL import Image
    from pyzbar import pyzbar

    out = tmp_path / "label.png"
    assert "wrote" in exam("labels", "png", "YW-P-K001-01", str(out), "--lang", lang).output
    text = exam("labels", "text", "YW-P-K001-01").output.strip()
    with Image.open(out) as image:
        assert image.format == "PNG" and round(image.info["dpi"][0]) == 300
        assert [s.data.decode() for s in pyzbar.decode(image)] == [text]
    assert json.loads(exam("labels", "verify", text).output)["valid"] is True


def test_labels_png_of_an_unknown_item_is_a_usage_error_and_writes_nothing(exam, tmp_path: Path) -> None:
    out = tmp_path / "label.png"
    result = exam("labels", "png", "YW-P-K999-99", str(out), ok=False)
    assert result.exit_code == 2 and "YW-P-K999-99" in result.output
    assert not out.exists()


def test_keys_revoke_says_what_holds_and_refuses_a_bad_time(exam, tmp_path: Path) -> None:
    kid = json.loads(exam("keys", "list", "--json").output)[0]["kid"]
    first = exam("keys", "revoke", kid, "--reason", "laptop stolen", "--at", "2026-06-20T08:00:00+08:00").output
    assert first.startswith(f"revoked {kid}") and "from 2026-06-20T00:00:00+00:00: laptop stolen" in first
    # into the log at once, not with the server's next batch (after the exam there may be none for weeks)
    assert first.endswith("entered in the custody log (1 leaf)\n")
    later = exam("keys", "revoke", kid, "--reason", "again", "--at", "2026-06-21T08:00:00+08:00").output
    assert later.startswith(f"already revoked {kid}") and "from 2026-06-20T00:00:00+00:00: laptop stolen" in later
    assert later.endswith("the custody log already holds it\n")
    earlier = exam("keys", "revoke", kid, "--reason", "stolen the day before", "--at",
                   "2026-06-19T08:00:00+08:00").output
    assert earlier.startswith(f"revoked {kid}") and "from 2026-06-19T00:00:00+00:00: stolen the day before" in earlier
    assert earlier.endswith("entered in the custody log (1 leaf)\n")
    exam("export", str(tmp_path / "bundle"))
    leaves = [json.loads(base64.b64decode(json.loads(line)["leaf"]))
              for line in (tmp_path / "bundle" / "leaves.jsonl").read_text().splitlines()]
    assert [(leaf["kid"], leaf["revoked_at"]) for leaf in leaves if leaf["type"] == "revocation"] == [
        (kid, "2026-06-20T00:00:00Z"), (kid, "2026-06-19T00:00:00Z")]
    for at in ("yesterday", "2026-06-19T08:00:00"):
        refused = exam("keys", "revoke", kid, "--reason", "x", "--at", at, ok=False)
        assert refused.exit_code == 2 and "--at" in refused.output, refused.output
    row = json.loads(exam("keys", "list", "--json").output)[0]
    assert row["kid"] == kid and row["revoked_at"].startswith("2026-06-19T00:00:00")


def test_keys_rotate_logs_the_new_key_and_the_old_key_s_end_at_once(exam, tmp_path: Path) -> None:
    old = [k for k in json.loads(exam("keys", "list", "--json").output) if k["role"] == "label_issuer"]
    out = exam("keys", "rotate", "--role", "label_issuer").output
    # the new key and the old key's end (and any registry fact no batch has logged yet)
    assert out.startswith("new label_issuer key ") and re.search(r"entered in the custody log \(\d+ leaves\)", out)
    new = out.split()[3].rstrip(",")
    exam("export", str(tmp_path / "bundle"))
    leaves = [json.loads(base64.b64decode(json.loads(line)["leaf"]))
              for line in (tmp_path / "bundle" / "leaves.jsonl").read_text().splitlines()]
    row = {k["kid"]: k for k in json.loads(exam("keys", "list", "--json").output)}[old[0]["kid"]]
    [retired] = [leaf for leaf in leaves if leaf["type"] == "retirement"]
    assert retired["kid"] == old[0]["kid"] and retired["valid_until"][:19] == row["valid_until"][:19]
    assert new in {leaf["kid"] for leaf in leaves if leaf["type"] == "key"}


def test_a_key_fact_the_log_cannot_take_now_says_so_once_and_how_it_gets_there(exam, monkeypatch) -> None:
    """The registry holds the change; the log (closing, no log key) does not yet: the message says which, and
    names the registry once (it read "... in the key registry (...) but in the key registry but NOT yet")."""
    from custody.errors import CustodyError
    from store.ledger import Ledger

    def cannot(_self):
        raise CustodyError("no log key at hand")

    monkeypatch.setattr(Ledger, "log_registry", cannot)
    kid = json.loads(exam("keys", "list", "--json").output)[0]["kid"]
    revoked = exam("keys", "revoke", kid, "--reason", "laptop stolen", ok=False)
    assert revoked.exit_code == 1 and revoked.output.count("in the key registry") == 1, revoked.output
    assert ("the revocation is in the key registry (stations signing with the key are refused from now on) but NOT "
            "yet in the custody log: no log key at hand. It enters the log with the next batch the server appends, "
            "or run this command again with the passphrase.") in " ".join(revoked.output.split())
    rotated = exam("keys", "rotate", "--role", "label_issuer", ok=False)
    assert rotated.exit_code == 1 and ("the new key and the old key's end are in the key registry but NOT yet in "
                                       "the custody log: no log key at hand. It enters the log with the next batch "
                                       "the server appends.") in " ".join(rotated.output.split()), rotated.output


def test_a_refused_label_exits_non_zero_with_its_reason(exam) -> None:
    text = exam("labels", "text", "YW-P-K001-01").output.strip()
    changed = text[:-10] + ("1" if text[-10] != "1" else "2") + text[-9:]
    result = exam("labels", "verify", changed, ok=False)
    assert result.exit_code == 1
    assert json.loads(result.stdout)["valid"] is False
    not_ours = exam("labels", "verify", "SF1234567890", ok=False)
    assert not_ours.exit_code == 1 and json.loads(not_ours.stdout)["error"] == "not_a_custody_label"


def test_an_independent_cose_library_verifies_our_label(exam) -> None:
    from pycose.keys import OKPKey
    from pycose.keys.curves import Ed25519

    keys = json.loads(exam("keys", "list", "--json").output)
    issuer = next(k for k in keys if k["role"] == "label_issuer")
    text = exam("labels", "text", "SX-C-K002-02").output.strip()
    message = _pycose_decode(cose_from_text(text))
    message.key = OKPKey(crv=Ed25519, x=base64.b64decode(issuer["public_key"]))
    assert message.verify_signature()
    assert message.phdr  # EdDSA in the protected header
    assert message.uhdr[next(iter(message.uhdr))] == bytes.fromhex(issuer["kid"])
    # A label whose payload was altered fails the same independent check.
    raw = bytearray(cose_from_text(text))
    raw[40] ^= 1
    tampered = _pycose_decode(bytes(raw))
    tampered.key = message.key
    assert not tampered.verify_signature()


def _pycose_decode(data: bytes):
    """pycose's own decoder, fed as it expects: pycose 1.1 predates cbor2 6, which
    returns tuples and frozendicts inside tags, so hand it a list and a dict."""
    import cbor2
    from pycose.messages import Sign1Message

    tagged = cbor2.loads(data)
    assert tagged.tag == Sign1Message.cbor_tag
    protected, unprotected, payload, signature = tagged.value
    return Sign1Message.from_cose_obj([protected, dict(unprotected), payload, signature], True)


def test_a_bad_plan_is_refused_with_row_and_reason_and_nothing_imported(run, tmp_path: Path) -> None:
    run("init")
    run("plan", "sample", "--scale", "tiny", str(tmp_path / "plan"))
    units = tmp_path / "plan" / "units.csv"
    lines = units.read_text(encoding="utf-8").splitlines()
    lines.append(lines[-1])  # a duplicate room
    units.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run("plan", "import", str(tmp_path / "plan"), "--exam", "zk2017", "--name", "x", ok=False)
    assert result.exit_code == 2
    assert f"units.csv row {len(lines)}: duplicate unit 'K002-02'" in result.output
    assert run("items", "list", "--json").output == ""


def test_keys_list_json_describes_every_key(exam) -> None:
    keys = json.loads(exam("keys", "list", "--json").output)
    assert {k["role"] for k in keys} == {"label_issuer", "badge_issuer", "log_signer"}
    for k in keys:
        assert len(base64.b64decode(k["public_key"])) == 32
        assert {"kid", "owner", "valid_from", "valid_until", "revoked_at"} <= set(k)


def test_offline_verification_from_a_key_file(exam, tmp_path: Path) -> None:
    (tmp_path / "keys.json").write_text(exam("keys", "list", "--json").output, encoding="utf-8")
    text = exam("labels", "text", "YW-P-K001-01").output.strip()
    result = CliRunner().invoke(cli, ["labels", "verify", "--keys", str(tmp_path / "keys.json"), text],
                                env={"CUSTODY_HOME": str(tmp_path / "nowhere")})
    assert result.exit_code == 0 and json.loads(result.output)["valid"]


def test_without_an_instance_the_user_is_told_what_to_do(tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "custody", "--home", str(tmp_path / "none"), "items", "list"],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "run `custody init`" in result.stderr and "Traceback" not in result.stderr


def test_export_refuses_a_folder_that_is_not_empty(exam, tmp_path: Path) -> None:
    """A stale checkpoints/<size> left in the folder would pass for one of this log's checkpoints."""
    bundle = tmp_path / "audit"
    (bundle / "checkpoints").mkdir(parents=True)
    (bundle / "checkpoints" / "999").write_text("another log\n", encoding="utf-8")
    result = exam("export", str(bundle), ok=False)
    assert result.exit_code == 2 and "not empty" in result.output
    assert sorted(p.name for p in bundle.rglob("*")) == ["999", "checkpoints"]
    out = exam("export", str(tmp_path / "fresh")).output
    assert out.startswith("exported ") and (tmp_path / "fresh" / "leaves.jsonl").exists()


@pytest.mark.parametrize("content", [b"\xff\xfe not text", b"{bad json", b'[{"kid": "x"}]'],
                         ids=["binary", "bad-json", "entry-without-key"])
def test_an_unreadable_key_file_is_a_usage_error(exam, tmp_path: Path, content: bytes) -> None:
    (tmp_path / "keys.json").write_bytes(content)
    text = exam("labels", "text", "YW-P-K001-01").output.strip()
    result = CliRunner().invoke(cli, ["labels", "verify", "--keys", str(tmp_path / "keys.json"), text],
                                env={"CUSTODY_HOME": str(tmp_path / "nowhere")})
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "not a custody key list" in result.output


def test_a_bad_key_file_entry_is_named_by_position_kid_and_field(exam, tmp_path: Path) -> None:
    """In a key list of dozens of entries, "'public_key'" alone does not say where to look."""
    keys = json.loads(exam("keys", "list", "--json").output)
    second = keys[1]["kid"]
    del keys[1]["public_key"]
    keys[2]["valid_from"] = "yesterday"
    text = exam("labels", "text", "YW-P-K001-01").output.strip()
    for entries, named in ((keys, f"entry 2 (kid {second}) has no 'public_key'"),
                           ([keys[0], keys[2]], f"entry 2 (kid {keys[2]['kid']}): 'valid_from' is not valid"),
                           ([{"role": "label_issuer"}], "entry 1 has no 'public_key'")):
        (tmp_path / "keys.json").write_text(json.dumps(entries), encoding="utf-8")
        result = CliRunner().invoke(cli, ["labels", "verify", "--keys", str(tmp_path / "keys.json"), text],
                                    env={"CUSTODY_HOME": str(tmp_path / "nowhere")})
        assert result.exit_code == 2 and named in result.output, result.output


def test_a_folder_that_cannot_be_made_is_named_without_a_traceback(exam, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("", encoding="utf-8")
    result = exam("export", str(tmp_path / "a-file" / "audit"), ok=False)
    assert result.exit_code == 2
    assert f"cannot use {tmp_path / 'a-file' / 'audit'}" in result.output


def test_a_negative_tree_size_or_index_is_a_usage_error_naming_it(exam) -> None:
    """Sizes and indexes count from 0: -1 is a bad argument (exit 2, naming it), not a missing checkpoint."""
    for args, named in ((["checkpoint", "--size", "-1"], "'--size'"),
                        (["proof", "inclusion", "0", "--size", "-1"], "'--size'"),
                        (["proof", "inclusion", "--", "-1"], "'INDEX'"),
                        (["proof", "consistency", "--", "-1"], "'OLD'"),
                        (["proof", "consistency", "--", "0", "-1"], "'[NEW]'")):
        result = exam(*args, ok=False)
        assert result.exit_code == 2, (args, result.output)
        assert f"Invalid value for {named}: -1 is not in the range x>=0" in result.output, result.output
