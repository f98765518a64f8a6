"""Station signatures checked in worker processes: the same verdicts as in the server, registry changes seen."""

from __future__ import annotations

import copy
import os
import signal
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody.events import Action
from custody.keyring import Role
from keys.files import public_raw
from store.ledger import Ledger
from store.verifier_pool import WORKER_NICENESS, VerifierPool, check
from tests.store.ledger_helpers import Desk

T = datetime(2017, 6, 12, 2, 0, tzinfo=UTC)


@pytest.fixture
def desk(tiny_exam: Any) -> Desk:
    return Desk(tiny_exam, "3601", T - timedelta(days=10))


@pytest.fixture
def pool(tiny_exam: Any) -> Any:
    pool = VerifierPool(tiny_exam.db.url, 1)
    yield pool
    pool.close()


def _mixed(desk: Desk) -> list[Any]:
    """Good submissions and every way of being bad that a signature check decides."""
    good = desk.receive_events(4, T)
    forged = copy.deepcopy(good[0])
    forged["event"]["count"] = 99
    stranger = Ed25519PrivateKey.generate()
    unknown = {**good[1], "kid": public_raw(stranger).hex()[:32]}
    claims = copy.deepcopy(good[2])
    claims["event"]["station"] = "ST-360102"  # signed by another station's key
    return good + [forged, unknown, claims, {"event": "not an object"}, "junk", {**good[3], "sig": "%%%"}]


def test_workers_give_the_verdicts_the_server_would(tiny_exam: Any, desk: Desk, pool: VerifierPool) -> None:
    submissions = _mixed(desk)
    keys = tiny_exam.keys.keyring()
    inline = [check(s, keys) for s in submissions]
    assert [v.error_code for v in inline][:4] == [None] * 4 and all(v.error_code for v in inline[4:])
    checked = pool.check(submissions, 1)
    assert checked == inline
    # an event comes back as plain values, rebuilt around the caller's own submitted object
    for verdict, submission, same in zip(checked[:4], submissions, inline, strict=False):
        assert verdict.event.raw is submission["event"]
        assert verdict.event.canonical() == same.event.canonical()
        assert verdict.event.handed_by == same.event.handed_by and verdict.event.action is same.event.action


def test_a_new_generation_makes_the_workers_read_the_registry_again(tiny_exam: Any, desk: Desk,
                                                                    pool: VerifierPool) -> None:
    good = desk.receive_events(4, T)
    assert [v.error_code for v in pool.check(good, 1)] == [None] * 4
    tiny_exam.keys.revoke(desk.signers[desk.code].kid.hex(), T - timedelta(hours=1), "laptop stolen")
    assert [v.error_code for v in pool.check(good, 1)] == [None] * 4  # the same generation: its copy
    assert all(v.event is None and "revoked" in (v.error or "") for v in pool.check(good, 2))


def test_a_broken_pool_is_replaced_and_nothing_is_lost(tiny_exam: Any, desk: Desk, pool: VerifierPool) -> None:
    good = desk.receive_events(4, T)
    assert pool.check(good, 1) is not None
    executor = pool._executor
    assert executor is not None
    for process in list(executor._processes.values()):  # a worker killed (out of memory, an operator)
        os.kill(process.pid, signal.SIGKILL)
        process.join()
    assert pool.check(good, 1) is None  # the caller checks them itself
    assert [v.error_code for v in pool.check(good, 1)] == [None] * 4  # new workers


def test_a_ledger_with_workers_accepts_and_refuses_as_one_without(tiny_exam: Any, desk: Desk) -> None:
    clock = {"now": T + timedelta(minutes=10)}
    with_workers = Ledger(tiny_exam, clock=lambda: clock["now"], verify_workers=1)
    try:
        with_workers.record_labels("zk2017")
        submissions = _mixed(desk)
        results = with_workers.submit(submissions)
        assert [r["status"] for r in results] == ["accepted"] * 4 + ["refused"] * 6
        assert [r["status"] for r in with_workers.submit(submissions[:4])] == ["duplicate"] * 4

        # a station registered by another process after the ledger read the registry: looked up again
        key = Ed25519PrivateKey.generate()
        tiny_exam.keys.register(public_raw(key), Role.STATION, "ST-360102", T - timedelta(days=1))
        other = Desk(tiny_exam, "360102", T - timedelta(days=10))
        other.code = "ST-360102"
        other.signers = {**other.signers, "ST-360102": _Signer(key)}
        later = [other.event(i, Action.RECEIVE, T + timedelta(seconds=n), frm="3601", to="360102")
                 for n, i in enumerate(_top_items(other, 4))]
        assert [r["status"] for r in with_workers.submit(later)] == ["accepted"] * 4
    finally:
        with_workers.close()


class _Signer:
    def __init__(self, key: Ed25519PrivateKey):
        from custody.keyring import key_id

        self.kid = key_id(public_raw(key))
        self.sign = key.sign


def _top_items(desk: Desk, n: int) -> list[str]:
    return sorted(i for i, r in desk.items.items() if r.parent_box is None)[:n]


def test_workers_ignore_ctrl_c_and_end_with_their_server(tiny_exam: Any, tmp_path: Any) -> None:
    """Ctrl+C at the terminal reaches the workers too (no traceback from them: the server stops them);
    a server killed outright leaves no worker behind."""
    import subprocess
    import sys
    import time

    script = (
        "import os, sys\n"
        "from store.verifier_pool import VerifierPool\n"
        "pool = VerifierPool(sys.argv[1], 1)\n"
        "pool.start()\n"
        "print(' '.join(str(p) for p in pool._executor._processes), flush=True)\n"
        "sys.stdin.readline()\n"
        "os._exit(0)\n")  # no shutdown: as if killed
    server = subprocess.Popen([sys.executable, "-c", script, tiny_exam.db.url], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    (worker,) = (int(p) for p in server.stdout.readline().split())
    os.kill(worker, signal.SIGINT)
    time.sleep(0.5)
    os.kill(worker, 0)  # still there: it ignored the interrupt
    server.stdin.write("\n")
    server.stdin.flush()
    server.wait(timeout=30)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"worker {worker} outlived its server")
    assert "Traceback" not in server.stderr.read()


def test_workers_give_way_to_the_writer(pool: VerifierPool) -> None:
    # the writer cannot run in parallel: when the cores are busy, the workers are the ones to wait
    pool.start()
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    theirs = pool._pool().submit(os.getpriority, os.PRIO_PROCESS, 0).result()
    assert theirs == min(19, ours + WORKER_NICENESS)
