"""Cost of each operation at 10 million leaves: one batched read of O(log n) node ids.

The store here is lazy: it makes up a deterministic hash for any node id, as if a tree of
that size were stored. Proofs from it are meaningless; only the reads are counted.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence

import pytest

from custody.log.merkle import (
    NodeId,
    StreamingRoot,
    consistency_proof,
    inclusion_proof,
    inclusion_proofs,
    integrate,
    leaf_hash,
    root,
)

N = 10_000_000
LOG_N = math.ceil(math.log2(N))  # 24


class LazyStore:
    """Pretends to store every complete node of a tree of ``size`` leaves; counts reads."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.calls: list[list[NodeId]] = []

    def get_nodes(self, ids: Sequence[NodeId]) -> list[bytes]:
        self.calls.append(list(ids))
        for level, index in ids:
            assert (index + 1) << level <= self.size, f"node {(level, index)} is not complete at size {self.size}"
        return [hashlib.sha256(b"%d/%d" % node).digest() for node in ids]

    def reads(self) -> tuple[int, int]:
        """(number of calls, number of ids in the largest call), then resets the count."""
        calls, self.calls = self.calls, []
        return len(calls), max((len(c) for c in calls), default=0)


rng = random.Random(20170607)
SIZES = [N, N - 1, 2**23, 2**23 + 1, 9_999_937]
INDEXES = [0, 1, N // 2, N - 2, N - 1, *rng.sample(range(N), 20)]
OLD_SIZES = [1, 2, 3, 2**22, 2**23 - 1, N - 1, N, *rng.sample(range(1, N), 20)]


@pytest.mark.parametrize("size", SIZES)
def test_root_is_one_read_of_popcount_ids(size: int) -> None:
    store = LazyStore(size)
    root(size, store.get_nodes)
    assert store.reads() == (1, bin(size).count("1"))


@pytest.mark.parametrize("index", INDEXES)
def test_inclusion_proof_is_one_read_of_log_n_ids(index: int) -> None:
    store = LazyStore(N)
    proof = inclusion_proof(index, N, store.get_nodes)
    calls, ids = store.reads()
    assert calls == 1
    assert len(proof) <= LOG_N
    assert ids <= 2 * LOG_N


def test_a_batch_of_receipts_is_one_read() -> None:
    store = LazyStore(N)
    proofs = inclusion_proofs(range(N - 2000, N), N, store.get_nodes)
    calls, ids = store.reads()
    assert calls == 1 and len(proofs) == 2000
    assert ids <= 2 * 2000 + 2 * LOG_N  # the batch's own subtrees, and the tree to their left once


@pytest.mark.parametrize("old", OLD_SIZES)
def test_consistency_proof_is_one_read_of_log_n_ids(old: int) -> None:
    store = LazyStore(N)
    proof = consistency_proof(old, N, store.get_nodes)
    calls, ids = store.reads()
    assert calls == (0 if old == N else 1)
    assert len(proof) <= 2 * LOG_N
    assert ids <= 2 * LOG_N + 1


@pytest.mark.parametrize("k", [1, 7, 256, 1000])
def test_integrate_reads_the_border_once_and_hashes_o_of_k_nodes(k: int) -> None:
    store = LazyStore(N)
    result = integrate(N, [leaf_hash(b"%d" % i) for i in range(k)], store.get_nodes)
    assert store.reads() == (1, bin(N).count("1"))
    assert result.new_size == N + k
    # k leaves and fewer than k + log n interior nodes: never a rebuild.
    assert k <= len(result.nodes) < 2 * k + LOG_N
    assert all((index + 1) << level <= N + k and (index + 1) << level > N for level, index in result.nodes)


def test_streaming_root_keeps_a_logarithmic_state() -> None:
    acc = StreamingRoot()
    for i in range(100_000):
        acc.add(leaf_hash(i.to_bytes(4, "big")))
    assert len(acc._stack) == bin(100_000).count("1")
