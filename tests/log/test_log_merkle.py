"""RFC 6962 tree: known-answer vectors, named tamper cases, edge cases of the verifiers."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest

from custody.errors import (
    ConsistencyProofError,
    InclusionProofError,
    LogError,
    NodeStoreError,
    TreeSizeError,
)
from custody.log.merkle import (
    EMPTY_ROOT,
    StreamingRoot,
    consistency_proof,
    inclusion_proof,
    integrate,
    leaf_hash,
    node_hash,
    root,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def h(x: str) -> bytes:
    return bytes.fromhex(x)


def flip(b: bytes, bit: int) -> bytes:
    out = bytearray(b)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# --- hashing ----------------------------------------------------------------------------


def test_hashes_have_the_rfc_6962_domain_prefixes() -> None:
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    assert node_hash(b"L" * 32, b"R" * 32) == hashlib.sha256(b"\x01" + b"L" * 32 + b"R" * 32).digest()
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


# --- the reference tree -----------------------------------------------------------------


def test_appending_one_leaf_at_a_time_gives_every_published_root(reference_tree: dict[str, Any]) -> None:
    store: dict[tuple[int, int], bytes] = {}
    size = 0
    assert root(0, lambda ids: []) == h(reference_tree["roots_by_size"][0])
    for data, expected in zip(reference_tree["leaves"], reference_tree["roots_by_size"][1:], strict=True):
        result = integrate(size, [leaf_hash(data)], lambda ids: [store[i] for i in ids])
        store.update(result.nodes)
        size = result.new_size
        assert result.root == h(expected)


def test_stored_nodes_are_the_published_complete_subtrees(reference_tree: dict[str, Any]) -> None:
    expected = {
        (level, index): h(x) for level, row in enumerate(reference_tree["node_hashes"]) for index, x in enumerate(row)
    }
    assert reference_tree["store"].nodes == expected


def test_root_at_every_size_from_the_stored_nodes(reference_tree: dict[str, Any]) -> None:
    get = reference_tree["store"].get_nodes
    for size, expected in enumerate(reference_tree["roots_by_size"]):
        assert root(size, get) == h(expected)


def test_streaming_root_matches_every_published_root(reference_tree: dict[str, Any]) -> None:
    acc = StreamingRoot()
    assert acc.root() == EMPTY_ROOT
    for data, expected in zip(reference_tree["leaves"], reference_tree["roots_by_size"][1:], strict=True):
        acc.add(leaf_hash(data))
        assert acc.root() == h(expected)
    assert acc.size == 8
    full = root_from_leaf_hashes(leaf_hash(d) for d in reference_tree["leaves"])
    assert full == h(reference_tree["roots_by_size"][8])


@pytest.mark.parametrize("case", range(5))
def test_published_inclusion_proofs(reference_tree: dict[str, Any], case: int) -> None:
    vec = reference_tree["inclusion_proofs"][case]
    index, size, expected = vec["index"], vec["size"], [h(x) for x in vec["proof"]]
    proof = inclusion_proof(index, size, reference_tree["store"].get_nodes)
    assert proof == expected
    lh = leaf_hash(reference_tree["leaves"][index])
    verify_inclusion(lh, index, size, proof, h(reference_tree["roots_by_size"][size]))


@pytest.mark.parametrize("case", range(5))
def test_published_consistency_proofs(reference_tree: dict[str, Any], case: int) -> None:
    vec = reference_tree["consistency_proofs"][case]
    old, new, expected = vec["old"], vec["new"], [h(x) for x in vec["proof"]]
    assert consistency_proof(old, new, reference_tree["store"].get_nodes) == expected
    roots = reference_tree["roots_by_size"]
    verify_consistency(old, new, h(roots[old]), h(roots[new]), expected)


def test_every_proof_of_the_reference_tree_verifies(reference_tree: dict[str, Any]) -> None:
    get = reference_tree["store"].get_nodes
    roots = [h(x) for x in reference_tree["roots_by_size"]]
    for new in range(9):
        for index in range(new):
            lh = leaf_hash(reference_tree["leaves"][index])
            verify_inclusion(lh, index, new, inclusion_proof(index, new, get), roots[new])
        for old in range(new + 1):
            verify_consistency(old, new, roots[old], roots[new], consistency_proof(old, new, get))


# --- tamper cases, named as transparency-dev/merkle names its corruptions ---------------


def inclusion_tampers(index: int, size: int, proof: list[bytes], root_: bytes, lh: bytes) -> dict[str, tuple[Any, ...]]:
    cases: dict[str, tuple[Any, ...]] = {
        "wrong-index-minus-1": (lh, index - 1, size, proof, root_),
        "wrong-index-plus-1": (lh, index + 1, size, proof, root_),
        "wrong-index-xor-2": (lh, index ^ 2, size, proof, root_),
        "wrong-size-times-2": (lh, index, size * 2, proof, root_),
        "wrong-size-div-2": (lh, index, size // 2, proof, root_),
        "wrong-leaf": (leaf_hash(b"WrongLeaf"), index, size, proof, root_),
        "empty-root": (lh, index, size, proof, EMPTY_ROOT),
        "random-root": (lh, index, size, proof, SOME_HASH),
        "trailing-garbage": (lh, index, size, [*proof, b""], root_),
        "trailing-root": (lh, index, size, [*proof, root_], root_),
        "preceding-garbage": (lh, index, size, [b"", *proof], root_),
        "preceding-root": (lh, index, size, [root_, *proof], root_),
    }
    for i in range(len(proof)):
        cases[f"bit-flip-in-proof[{i}]"] = (lh, index, size, [*proof[:i], flip(proof[i], 3), *proof[i + 1 :]], root_)
    if proof:
        cases["truncated-tail"] = (lh, index, size, proof[:-1], root_)
    if len(proof) > 1:
        cases["inserted-component"] = (lh, index, size, [proof[0], SOME_HASH, *proof[1:]], root_)
    return cases


@pytest.mark.parametrize("case", [1, 2, 3, 4])
def test_inclusion_tampers_are_rejected(reference_tree: dict[str, Any], case: int) -> None:
    vec = reference_tree["inclusion_proofs"][case]
    index, size, proof = vec["index"], vec["size"], [h(x) for x in vec["proof"]]
    root_, lh = h(reference_tree["roots_by_size"][size]), leaf_hash(reference_tree["leaves"][index])
    accepted = []
    for name, args in inclusion_tampers(index, size, proof, root_, lh).items():
        try:
            verify_inclusion(*args)
        except InclusionProofError:
            continue
        accepted.append(name)
    assert accepted == []


def consistency_tampers(old: int, new: int, r1: bytes, r2: bytes, proof: list[bytes]) -> dict[str, tuple[Any, ...]]:
    cases: dict[str, tuple[Any, ...]] = {
        "wrong-old-size-minus-1": (old - 1, new, r1, r2, proof),
        "wrong-old-size-plus-1": (old + 1, new, r1, r2, proof),
        "wrong-old-size-xor-2": (old ^ 2, new, r1, r2, proof),
        "wrong-new-size-times-2": (old, new * 2, r1, r2, proof),
        "wrong-new-size-div-2": (old, new // 2, r1, r2, proof),
        "wrong-old-root": (old, new, SOME_HASH, r2, proof),
        "wrong-new-root": (old, new, r1, SOME_HASH, proof),
        "swapped-roots": (old, new, r2, r1, proof),
        "empty-proof": (old, new, r1, r2, []),
        "trailing-garbage": (old, new, r1, r2, [*proof, b""]),
        "trailing-old-root": (old, new, r1, r2, [*proof, r1]),
        "trailing-new-root": (old, new, r1, r2, [*proof, r2]),
        "preceding-garbage": (old, new, r1, r2, [b"", *proof]),
        "preceding-old-root": (old, new, r1, r2, [r1, *proof]),
        "preceding-new-root": (old, new, r1, r2, [r2, *proof]),
        "preceding-proof[0]": (old, new, r1, r2, [proof[0], *proof]),
        "truncated-tail": (old, new, r1, r2, proof[:-1]),
    }
    for i in range(len(proof)):
        cases[f"bit-flip-in-proof[{i}]"] = (old, new, r1, r2, [*proof[:i], flip(proof[i], 4), *proof[i + 1 :]])
    return cases


@pytest.mark.parametrize("case", [1, 2, 3, 4])
def test_consistency_tampers_are_rejected(reference_tree: dict[str, Any], case: int) -> None:
    vec = reference_tree["consistency_proofs"][case]
    old, new, proof = vec["old"], vec["new"], [h(x) for x in vec["proof"]]
    roots = reference_tree["roots_by_size"]
    accepted = []
    for name, args in consistency_tampers(old, new, h(roots[old]), h(roots[new]), proof).items():
        try:
            verify_consistency(*args)
        except ConsistencyProofError:
            continue
        accepted.append(name)
    assert accepted == []


def test_swapped_leaves_change_the_root_and_break_the_proofs(reference_tree: dict[str, Any]) -> None:
    leaves = list(reference_tree["leaves"])
    leaves[3], leaves[4] = leaves[4], leaves[3]
    published = h(reference_tree["roots_by_size"][8])
    assert root_from_leaf_hashes(leaf_hash(d) for d in leaves) != published
    get = reference_tree["store"].get_nodes
    with pytest.raises(InclusionProofError):
        verify_inclusion(leaf_hash(leaves[3]), 3, 8, inclusion_proof(3, 8, get), published)


# --- edge cases -------------------------------------------------------------------------


def test_single_leaf_tree_proves_with_an_empty_path() -> None:
    lh = leaf_hash(b"data")
    verify_inclusion(lh, 0, 1, [], lh)
    with pytest.raises(InclusionProofError):
        verify_inclusion(lh, 0, 1, [], EMPTY_ROOT)
    with pytest.raises(InclusionProofError):
        verify_inclusion(b"", 0, 1, [], lh)


@pytest.mark.parametrize(("index", "size"), [(0, 0), (1, 0), (2, 1), (-1, 5)])
def test_inclusion_outside_the_tree_is_rejected(index: int, size: int) -> None:
    with pytest.raises(InclusionProofError, match=f"leaf index {index}"):
        verify_inclusion(SOME_HASH, index, size, [], EMPTY_ROOT)


R1, R2 = leaf_hash(b"1"), leaf_hash(b"2")


@pytest.mark.parametrize(
    ("old", "new", "r1", "r2", "proof", "ok"),
    [
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, [], True),
        (0, 5, EMPTY_ROOT, R2, [], True),
        (0, 5, R1, R2, [], False),  # an empty tree's root is SHA-256("")
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),
        (0, 0, R1, R1, [], False),
        (3, 3, R1, R1, [], True),
        (3, 3, R1, R2, [], False),
        (3, 3, R1, R1, [R1], False),
        (1, 0, R1, R2, [], False),
        (2, 1, R1, R2, [], False),
        (1, 2, R1, R2, [], False),
    ],
)
def test_consistency_edge_cases(old: int, new: int, r1: bytes, r2: bytes, proof: list[bytes], ok: bool) -> None:
    if ok:
        verify_consistency(old, new, r1, r2, proof)
    else:
        with pytest.raises(ConsistencyProofError):
            verify_consistency(old, new, r1, r2, proof)


def test_errors_say_what_was_expected_and_found(reference_tree: dict[str, Any]) -> None:
    vec = reference_tree["inclusion_proofs"][2]
    proof = [h(x) for x in vec["proof"]]
    lh = leaf_hash(reference_tree["leaves"][5])
    with pytest.raises(InclusionProofError) as exc:
        verify_inclusion(lh, 5, 8, proof, SOME_HASH)
    message = str(exc.value)
    assert "leaf 5" in message and "size 8" in message and SOME_HASH.hex() in message
    assert reference_tree["roots_by_size"][8] in message  # the computed root
    with pytest.raises(InclusionProofError, match="has 2 hashes, expected 3"):
        verify_inclusion(lh, 5, 8, proof[:2], SOME_HASH)
    roots = reference_tree["roots_by_size"]
    with pytest.raises(ConsistencyProofError) as cexc:
        verify_consistency(6, 8, SOME_HASH, h(roots[8]), consistency_proof(6, 8, reference_tree["store"].get_nodes))
    assert "from size 6 to 8" in str(cexc.value) and SOME_HASH.hex() in str(cexc.value) and roots[6] in str(cexc.value)


def test_proofs_for_indexes_and_sizes_the_tree_does_not_have_are_usage_errors(make_store: Callable[..., Any]) -> None:
    store = make_store(8)
    for call in (
        lambda: inclusion_proof(8, 8, store.get_nodes),
        lambda: inclusion_proof(0, 0, store.get_nodes),
        lambda: consistency_proof(5, 3, store.get_nodes),
        lambda: root(-1, store.get_nodes),
    ):
        with pytest.raises(TreeSizeError) as exc:
            call()
        assert exc.value.exit_code == 2 and isinstance(exc.value, LogError)


def test_a_store_answering_badly_is_refused() -> None:
    with pytest.raises(NodeStoreError, match="returned 1 hashes for 2 node ids"):
        root(3, lambda ids: [SOME_HASH])
    with pytest.raises(NodeStoreError, match="returned 31 bytes for node"):
        root(1, lambda ids: [SOME_HASH[:31]])


def test_integrating_nothing_changes_nothing_and_reads_only_the_border(make_store: Callable[..., Any]) -> None:
    store = make_store(5)
    result = integrate(5, [], store.get_nodes)
    assert (result.new_size, result.root, result.nodes) == (5, root(5, store.get_nodes), {})
    empty = integrate(0, [], lambda ids: pytest.fail("an empty tree has nothing to read"))
    assert (empty.new_size, empty.root, empty.nodes) == (0, EMPTY_ROOT, {})
    with pytest.raises(NodeStoreError):
        integrate(5, [b"short"], store.get_nodes)
