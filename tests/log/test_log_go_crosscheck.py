"""Cross-check against a second implementation: Go's golang.org/x/mod/sumdb (tlog and note).

tests/log/go_crosscheck/main.go builds trees, proofs and signed notes with Go's packages,
and checks ours. Needs ``go`` and golang.org/x/mod in GOPATH mode, no network (Debian:
``apt-get install golang-go golang-golang-x-mod-dev``; or set CUSTODY_TEST_GOPATH). Skipped
when they are missing; the published vectors in the other tests still run.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from custody.log.merkle import consistency_proof, inclusion_proof, leaf_hash, root
from custody.log.note import open_note, parse_verifier_key, sign_note, verifier_key

GOPATH = os.environ.get("CUSTODY_TEST_GOPATH", "/usr/share/gocode")
PROGRAM = Path(__file__).parent / "go_crosscheck" / "main.go"
N = 70

# test.sh installs Go and golang.org/x/mod (scripts/bootstrap.sh), so in CI the cross-check
# always runs; elsewhere it is skipped when they are absent.
pytestmark = pytest.mark.skipif(
    not os.environ.get("CI")
    and (shutil.which("go") is None or not (Path(GOPATH) / "src/golang.org/x/mod/sumdb/tlog").is_dir()),
    reason="Go toolchain or golang.org/x/mod (GOPATH mode) not installed",
)


@pytest.fixture(scope="module")
def run_go(tmp_path_factory: pytest.TempPathFactory) -> Callable[[dict[str, Any]], dict[str, Any]]:
    cache = tmp_path_factory.mktemp("gocache")
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": GOPATH, "GOCACHE": str(cache), "GOFLAGS": ""}
    binary = tmp_path_factory.mktemp("gobin") / "crosscheck"
    subprocess.run(["go", "build", "-o", str(binary), str(PROGRAM)], env=env, check=True, timeout=300)

    def run(request: dict[str, Any]) -> dict[str, Any]:
        out = subprocess.run(
            [str(binary)], input=json.dumps(request), capture_output=True, text=True, check=True, timeout=120
        )
        return json.loads(out.stdout)  # type: ignore[no-any-return]

    return run


@pytest.fixture(scope="module")
def tree(make_store: Callable[..., Any]) -> Any:
    return make_store(leaves=[b"go %d" % i for i in range(N)])


def test_roots_and_proofs_are_byte_for_byte_those_of_go(tree: Any, run_go: Callable[..., dict[str, Any]]) -> None:
    inclusion = [(i, n) for n in range(1, 41) for i in range(n)] + [(i, N) for i in range(N)]
    consistency = [(m, n) for n in range(1, 41) for m in range(1, n + 1)] + [(m, N) for m in range(1, N + 1)]
    answer = run_go(
        {
            "leaves": [(b"go %d" % i).hex() for i in range(N)],
            "roots": list(range(1, N + 1)),
            "inclusion": inclusion,
            "consistency": consistency,
        }
    )
    for size in range(1, N + 1):
        assert root(size, tree.get_nodes).hex() == answer["roots"][str(size)], size
    for (i, n), theirs in zip(inclusion, answer["inclusion"], strict=True):
        assert [h.hex() for h in inclusion_proof(i, n, tree.get_nodes)] == theirs, (i, n)
    for (m, n), theirs in zip(consistency, answer["consistency"], strict=True):
        assert [h.hex() for h in consistency_proof(m, n, tree.get_nodes)] == theirs, (m, n)


def test_go_accepts_our_proofs_and_refuses_tampered_ones(tree: Any, run_go: Callable[..., dict[str, Any]]) -> None:
    get = tree.get_nodes
    checks, expect_ok = [], []
    for i, n in [(0, 1), (5, 8), (37, 70), (69, 70), (64, 65)]:
        proof = [h.hex() for h in inclusion_proof(i, n, get)]
        base = {"index": i, "size": n, "leaf_hash": leaf_hash(b"go %d" % i).hex(), "root": root(n, get).hex()}
        checks.append({**base, "proof": proof})
        expect_ok.append(True)
        if proof:
            checks.append({**base, "proof": [("0" if proof[0][0] != "0" else "1") + proof[0][1:], *proof[1:]]})
            expect_ok.append(False)
        checks.append({**base, "index": (i + 1) % n, "proof": proof})
        expect_ok.append(n == 1)
    cons, cons_ok = [], []
    for m, n in [(1, 2), (6, 8), (37, 70), (64, 70), (69, 70)]:
        proof = [h.hex() for h in consistency_proof(m, n, get)]
        base = {"old": m, "new": n, "old_root": root(m, get).hex(), "new_root": root(n, get).hex()}
        cons += [{**base, "proof": proof}, {**base, "proof": proof[:-1]}]
        cons_ok += [True, False]
    answer = run_go({"check_inclusion": checks, "check_consistency": cons})
    assert [err == "" for err in answer["check_inclusion"]] == expect_ok
    assert [err == "" for err in answer["check_consistency"]] == cons_ok


def test_go_opens_our_signed_checkpoints(
    vector: Callable[[str], Any], make_key: Callable[[str], Any], run_go: Callable[..., dict[str, Any]]
) -> None:
    cps = vector("checkpoints.json")
    key = make_key("go crosscheck log")
    ours = sign_note(b"example.org/log\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", "example.org/log", key)
    vkey = verifier_key("example.org/log", key.public_key().public_bytes_raw())
    answer = run_go(
        {
            "open_notes": [
                {"note": cps["custody-checkpoint-8"], "vkeys": [cps["custody-log-vkey"]]},
                # Go ignores the cosignature line (an unknown key to it) and verifies the log's.
                {"note": cps["custody-checkpoint-8-cosigned"], "vkeys": [cps["custody-log-vkey"]]},
                {"note": ours.decode(), "vkeys": [vkey]},
                {"note": ours.decode().replace("\n3\n", "\n4\n"), "vkeys": [vkey]},
            ]
        }
    )
    opened = answer["open_notes"]
    log = parse_verifier_key(cps["custody-log-vkey"])
    assert opened[0] == {
        "err": "",
        "text": cps["custody-checkpoint-8"].split("\n\n")[0] + "\n",
        "sigs": [[log.name, f"{log.key_id:08x}"]],
    }
    assert opened[1]["err"] == "" and len(opened[1]["sigs"]) == 1
    assert opened[2]["err"] == ""
    assert "invalid signature" in opened[3]["err"]


def test_we_open_notes_signed_by_go(run_go: Callable[..., dict[str, Any]]) -> None:
    body = "example.org/go-log\n12\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n"
    answer = run_go({"sign_name": "example.org/go-log", "sign_text": body})
    key = parse_verifier_key(answer["signed_vkey"])
    opened = open_note(answer["signed_note"].encode(), [key])
    assert opened.body == body.encode() and opened.signatures[0].verifier == key


def _tlog_proof_hashes(text: str, index: int) -> tuple[list[str], str]:
    """The audit path (hex) and the checkpoint of a c2sp.org/tlog-proof@v1 text, read by hand."""
    head, _, checkpoint = text.partition("\n\n")
    lines = head.split("\n")
    assert lines[0] == "c2sp.org/tlog-proof@v1" and f"index {index}" in lines[1:3]
    at = lines.index(f"index {index}")
    return [base64.b64decode(line).hex() for line in lines[at + 1:]], checkpoint


def test_an_export_is_verified_by_go_from_its_files_alone(tiny_exam: Any, tmp_path: Path,
                                                          run_go: Callable[..., dict[str, Any]]) -> None:
    """Issue 3's outside verifier: from `custody export` and the proof commands' output only, Go's tlog and
    note packages recompute every signed root from the leaves, open every checkpoint (under the log key
    of its time: the key is rotated half-way), and check inclusion and consistency proofs; a leaf changed
    in the bundle no longer matches its checkpoint."""
    from click.testing import CliRunner

    from cli.main import cli
    from custody.keyring import Role
    from store.ledger import Ledger
    from tests.factories import TEST_SECRET
    from tests.store.ledger_helpers import Desk

    t0 = datetime(2017, 6, 12, 2, 0, tzinfo=UTC)
    clock = {"now": t0}
    ledger = Ledger(tiny_exam, clock=lambda: clock["now"])
    ledger.record_labels("zk2017")
    desk = Desk(tiny_exam, "3601", t0 - timedelta(days=10))
    for k in range(5):
        if k == 3:  # `custody keys rotate --role log_signer`: later checkpoints are signed by the new key
            tiny_exam.keys.rotate(Role.LOG_SIGNER, "3601", t0 + timedelta(minutes=k, seconds=30))
        clock["now"] = t0 + timedelta(minutes=k + 1)
        assert {r["status"] for r in ledger.submit(desk.receive_events(3 + k, t0 + timedelta(minutes=k)))} == {
            "accepted"}
    ledger.close()

    env = {"CUSTODY_DATABASE_URL": tiny_exam.db.url, "CUSTODY_PASSPHRASE": TEST_SECRET.decode()}

    def custody(*args: str) -> str:
        result = CliRunner().invoke(cli, ["--home", str(tiny_exam.home), *args], env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    bundle = tmp_path / "bundle"
    custody("export", str(bundle))
    # From here on: the bundle's files, the standards, and Go.
    lines = [json.loads(line) for line in (bundle / "leaves.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [line["index"] for line in lines] == list(range(len(lines)))
    leaves = [base64.b64decode(line["leaf"]) for line in lines]
    notes = {int(p.name): p.read_text(encoding="utf-8") for p in (bundle / "checkpoints").iterdir()}
    sizes = sorted(notes)
    assert len(sizes) >= 6 and sizes[-1] == len(leaves)
    assert (bundle / "checkpoint").read_text(encoding="utf-8") == notes[sizes[-1]]
    log_vkey = (bundle / "log.vkey").read_text(encoding="utf-8").strip()
    origin = log_vkey.split("+")[0]
    log_keys = [k["public_key"] for k in json.loads((bundle / "keys.json").read_text(encoding="utf-8"))
                if k["role"] == Role.LOG_SIGNER.value]
    assert len(log_keys) == 2

    def leaf_hash_hex(data: bytes) -> str:  # RFC 6962: SHA-256(0x00 || leaf)
        return hashlib.sha256(b"\x00" + data).hexdigest()

    inclusion, consistency = [], []
    for n in sizes:
        for i in sorted({0, n // 2, n - 1}):
            path, checkpoint = _tlog_proof_hashes(custody("proof", "inclusion", str(i), "--size", str(n)), i)
            assert checkpoint == notes[n]
            inclusion.append({"index": i, "size": n, "leaf_hash": leaf_hash_hex(leaves[i]), "proof": path})
    for m, n in [*itertools.pairwise(sizes), (sizes[0], sizes[-1])]:
        text = custody("proof", "consistency", str(m), str(n))
        consistency.append({"old": m, "new": n, "proof": [base64.b64decode(h).hex() for h in text.split()]})

    answer = run_go({
        "leaves": [leaf.hex() for leaf in leaves], "roots": sizes,
        "open_notes": [{"note": notes[n], "vkeys": [], "raw_keys": log_keys, "name": origin} for n in sizes]
        + [{"note": notes[sizes[-1]], "vkeys": [log_vkey]}, {"note": notes[sizes[0]], "vkeys": [log_vkey]}],
    })
    roots = {}
    for n, opened in zip(sizes, answer["open_notes"], strict=False):
        assert opened["err"] == "", (n, opened["err"])
        body = opened["text"].split("\n")
        assert body[0] == origin and int(body[1]) == n
        roots[n] = base64.b64decode(body[2]).hex()
        assert roots[n] == answer["roots"][str(n)], f"the checkpoint at {n} does not sign the leaves' root"
    assert answer["open_notes"][-2]["err"] == ""  # log.vkey is the latest checkpoint's key...
    assert answer["open_notes"][-1]["err"] != ""  # ...and not the first's (signed before the rotation)

    for check in inclusion:
        check["root"] = roots[check["size"]]
    for check in consistency:
        check["old_root"], check["new_root"] = roots[check["old"]], roots[check["new"]]
    verdicts = run_go({"check_inclusion": inclusion, "check_consistency": consistency})
    assert verdicts["check_inclusion"] == [""] * len(inclusion)
    assert verdicts["check_consistency"] == [""] * len(consistency)

    # A leaf altered in the bundle: Go's root over the leaves no longer matches the checkpoint
    altered = [*leaves]
    altered[1] = altered[1].replace(b'"type":"', b'"type":"x', 1)
    tampered = run_go({"leaves": [leaf.hex() for leaf in altered], "roots": [sizes[-1]]})
    assert tampered["roots"][str(sizes[-1])] != roots[sizes[-1]]
