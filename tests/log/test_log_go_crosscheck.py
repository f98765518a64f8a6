"""Cross-check against a second implementation: Go's golang.org/x/mod/sumdb (tlog and note).

tests/log/go_crosscheck/main.go builds trees, proofs and signed notes with Go's packages,
and checks ours. Needs ``go`` and golang.org/x/mod in GOPATH mode, no network (Debian:
``apt-get install golang-go golang-golang-x-mod-dev``; or set CUSTODY_TEST_GOPATH). Skipped
when they are missing; the published vectors in the other tests still run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
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
