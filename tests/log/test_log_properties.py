"""Hypothesis: proofs from the node store verify against the full recompute, every single-bit
mutation is rejected, batch splits do not matter, and every text format round-trips."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custody.errors import ConsistencyProofError, InclusionProofError, TreeSizeError
from custody.log.checkpoint import Checkpoint, parse_checkpoint
from custody.log.merkle import (
    consistency_proof,
    inclusion_proof,
    inclusion_proofs,
    integrate,
    leaf_hash,
    node_hash,
    root,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from custody.log.proofs import format_consistency_proof, format_tlog_proof, parse_consistency_proof, parse_tlog_proof

MAX = 300
LEAF_HASHES = [leaf_hash(b"leaf %d" % i) for i in range(MAX)]
FULL_ROOTS = [root_from_leaf_hashes(LEAF_HASHES[:n]) for n in range(MAX + 1)]


@pytest.fixture(scope="module")
def big_store(make_store: Callable[..., Any]) -> Any:
    return make_store(MAX)


def flip(proof: list[bytes], bit: int) -> list[bytes]:
    i, bit = divmod(bit, 256)
    mutated = bytearray(proof[i])
    mutated[bit // 8] ^= 1 << (bit % 8)
    return [*proof[:i], bytes(mutated), *proof[i + 1 :]]


@given(st.data())
def test_inclusion_proofs_verify_against_the_full_recompute(big_store: Any, data: st.DataObject) -> None:
    size = data.draw(st.integers(1, MAX), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    proof = inclusion_proof(index, size, big_store.get_nodes)
    verify_inclusion(LEAF_HASHES[index], index, size, proof, FULL_ROOTS[size])
    if proof:
        bit = data.draw(st.integers(0, 256 * len(proof) - 1), label="bit")
        with pytest.raises(InclusionProofError):
            verify_inclusion(LEAF_HASHES[index], index, size, flip(proof, bit), FULL_ROOTS[size])


@given(st.data())
def test_a_batch_of_inclusion_proofs_is_each_leafs_own_proof(big_store: Any, data: st.DataObject) -> None:
    size = data.draw(st.integers(1, MAX), label="size")
    indexes = data.draw(st.lists(st.integers(0, size - 1), max_size=40), label="indexes")
    assert inclusion_proofs(indexes, size, big_store.get_nodes) == [
        inclusion_proof(i, size, big_store.get_nodes) for i in indexes]
    with pytest.raises(TreeSizeError):
        inclusion_proofs([*indexes, size], size, big_store.get_nodes)


@given(st.data())
def test_consistency_proofs_verify_against_the_full_recompute(big_store: Any, data: st.DataObject) -> None:
    new = data.draw(st.integers(0, MAX), label="new")
    old = data.draw(st.integers(0, new), label="old")
    proof = consistency_proof(old, new, big_store.get_nodes)
    verify_consistency(old, new, FULL_ROOTS[old], FULL_ROOTS[new], proof)
    if proof:
        bit = data.draw(st.integers(0, 256 * len(proof) - 1), label="bit")
        with pytest.raises(ConsistencyProofError):
            verify_consistency(old, new, FULL_ROOTS[old], FULL_ROOTS[new], flip(proof, bit))


@pytest.mark.parametrize(("index", "size"), [(0, 300), (137, 300), (299, 300), (64, 65), (200, 257)])
def test_every_single_bit_flip_of_an_inclusion_proof_is_rejected(big_store: Any, index: int, size: int) -> None:
    proof = inclusion_proof(index, size, big_store.get_nodes)
    accepted = []
    for bit in range(256 * len(proof)):
        try:
            verify_inclusion(LEAF_HASHES[index], index, size, flip(proof, bit), FULL_ROOTS[size])
        except InclusionProofError:
            continue
        accepted.append(bit)
    assert accepted == []


@pytest.mark.parametrize(("old", "new"), [(1, 300), (137, 300), (256, 300), (299, 300), (63, 65)])
def test_every_single_bit_flip_of_a_consistency_proof_is_rejected(big_store: Any, old: int, new: int) -> None:
    proof = consistency_proof(old, new, big_store.get_nodes)
    accepted = []
    for bit in range(256 * len(proof)):
        try:
            verify_consistency(old, new, FULL_ROOTS[old], FULL_ROOTS[new], flip(proof, bit))
        except ConsistencyProofError:
            continue
        accepted.append(bit)
    assert accepted == []


@st.composite
def batch_splits(draw: st.DrawFn) -> list[int]:
    size = draw(st.integers(0, MAX))
    cuts = draw(st.lists(st.integers(0, size), max_size=12))
    return sorted({0, size, *cuts})


@settings(max_examples=60)
@given(batch_splits())
def test_integrate_in_any_batch_split_gives_the_same_root_and_nodes(cuts: list[int]) -> None:
    size = cuts[-1]
    whole = integrate(0, LEAF_HASHES[:size], lambda ids: pytest.fail("empty tree: nothing to read"))
    nodes: dict[tuple[int, int], bytes] = {}
    for start, end in zip(cuts, cuts[1:], strict=False):
        part = integrate(start, LEAF_HASHES[start:end], lambda ids: [nodes[i] for i in ids])
        assert part.new_size == end and part.root == FULL_ROOTS[end]
        assert not set(part.nodes) & set(nodes)
        nodes.update(part.nodes)
    assert whole.root == FULL_ROOTS[size] and whole.new_size == size
    assert nodes == whole.nodes
    # The stored nodes are exactly the complete subtrees, each the hash of its children.
    expected_ids = {(lv, i) for lv in range(size.bit_length()) for i in range(size >> lv)}
    assert set(nodes) == expected_ids
    for (level, index), value in nodes.items():
        if level:
            assert value == node_hash(nodes[(level - 1, 2 * index)], nodes[(level - 1, 2 * index + 1)])
        else:
            assert value == LEAF_HASHES[index]
    assert root(size, lambda ids: [nodes[i] for i in ids]) == FULL_ROOTS[size]


hashes32 = st.binary(min_size=32, max_size=32)


@given(st.lists(hashes32, max_size=40))
def test_consistency_proof_text_round_trips(hashes: list[bytes]) -> None:
    assert parse_consistency_proof(format_consistency_proof(hashes)) == hashes


line_text = st.text(st.characters(exclude_categories=["Cs"], min_codepoint=0x20), min_size=1, max_size=30).filter(
    lambda s: "\n" not in s
)


@given(line_text, st.integers(0, 2**64 - 1), hashes32, st.lists(line_text, max_size=3))
def test_checkpoint_body_round_trips(origin: str, size: int, root_hash: bytes, extensions: list[str]) -> None:
    cp = Checkpoint(origin, size, root_hash, tuple(extensions))
    assert parse_checkpoint(cp.body()) == cp


@given(st.integers(0, 2**64 - 1), st.lists(hashes32, max_size=64), st.none() | st.binary(max_size=100))
def test_tlog_proof_text_round_trips(index: int, hashes: list[bytes], extra: bytes | None) -> None:
    note = "o\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n\u2014 o AAAAAQ==\n".encode()
    parsed = parse_tlog_proof(format_tlog_proof(index, hashes, note, extra))
    assert (parsed.index, list(parsed.hashes), parsed.checkpoint_note, parsed.extra) == (index, hashes, note, extra)
