"""RFC 6962 / RFC 9162 Merkle tree over stored complete-subtree nodes.

Hashes: ``leaf_hash(d) = SHA-256(0x00 || d)``, ``node_hash(l, r) = SHA-256(0x01 || l || r)``,
the empty tree's root is ``SHA-256("")``. Leaves are indexed from 0 in append order.

Storage model. A node id ``(level, index)`` names the complete subtree covering leaves
``[index * 2**level, (index + 1) * 2**level)``; level 0 nodes are the leaf hashes. A backend
stores only complete nodes, and never changes one once written (a complete subtree's hash
is fixed forever). Every function here reads nodes through a *batch reader*
``get_nodes(ids) -> hashes``: one call is meant to be one database query, it must return
the hashes in the order of ``ids``, and it is called at most once per operation with
O(log n) ids (none at all when nothing needs reading). Nothing here does I/O or keeps state.

Proofs are exactly the RFC 6962 §2.1.1 PATH and §2.1.2 PROOF lists (RFC 9162 §2.1.3 and
§2.1.4), so ``golang.org/x/mod/sumdb/tlog`` and ``transparency-dev/merkle`` accept them.
The verifiers follow RFC 9162 §2.1.3.2 and §2.1.4.2 and raise; they never return a bool.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from custody.errors import ConsistencyProofError, InclusionProofError, NodeStoreError, TreeSizeError

HASH_SIZE = 32
EMPTY_ROOT: bytes = hashlib.sha256(b"").digest()

NodeId = tuple[int, int]
"""``(level, index)``: the complete subtree over leaves ``[index << level, (index + 1) << level)``."""

NodeReader = Callable[[Sequence[NodeId]], Sequence[bytes]]
"""Batch reader: hashes of the given stored nodes, in the same order. One call, one query."""


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash: ``SHA-256(0x00 || data)``."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


# --- node arithmetic --------------------------------------------------------------------


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n >= 2``): RFC 6962's k."""
    return 1 << ((n - 1).bit_length() - 1)


def _range_nodes(start: int, end: int) -> list[NodeId]:
    """The complete nodes covering ``[start, end)``, left to right, largest first.

    ``start`` must be a multiple of the largest power of two not above ``end - start``,
    which holds for every range the RFC recursion produces and for ``[0, size)``.
    """
    ids: list[NodeId] = []
    width = end - start
    for level in range(width.bit_length() - 1, -1, -1):
        if width >> level & 1:
            ids.append((level, start >> level))
            start += 1 << level
    return ids


def _fold(hashes: Sequence[bytes]) -> bytes:
    """Hash of a range from its complete nodes, left to right: fold from the right."""
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def _read(get_nodes: NodeReader, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
    """One batched read; checks the store returned one 32-byte hash per id."""
    if not ids:
        return {}
    hashes = list(get_nodes(ids))
    if len(hashes) != len(ids):
        raise NodeStoreError(f"node store returned {len(hashes)} hashes for {len(ids)} node ids {list(ids)[:8]}")
    for node_id, h in zip(ids, hashes, strict=True):
        if len(h) != HASH_SIZE:
            raise NodeStoreError(f"node store returned {len(h)} bytes for node {node_id}, expected {HASH_SIZE}")
    return dict(zip(ids, hashes, strict=True))


def _ranges_hashes(ranges: Sequence[tuple[int, int]], get_nodes: NodeReader) -> list[bytes]:
    """Hashes of several aligned ranges with one batched read."""
    per_range = [_range_nodes(a, b) for a, b in ranges]
    ids = list(dict.fromkeys(node_id for nodes in per_range for node_id in nodes))
    known = _read(get_nodes, ids)
    return [_fold([known[node_id] for node_id in nodes]) for nodes in per_range]


# --- reading the tree -------------------------------------------------------------------


def root(size: int, get_nodes: NodeReader) -> bytes:
    """Root hash of the tree's first ``size`` leaves (``EMPTY_ROOT`` for 0).

    Reads popcount(size) nodes in one call. The store must hold the tree at ``size`` or larger.
    """
    if size < 0:
        raise TreeSizeError(f"tree size must be >= 0, got {size}")
    if size == 0:
        return EMPTY_ROOT
    return _ranges_hashes([(0, size)], get_nodes)[0]


def _inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    # RFC 6962 §2.1.1 PATH(m, D[n]), unrolled top-down; the proof lists it bottom-up.
    ranges: list[tuple[int, int]] = []
    start, m, n = 0, index, size
    while n > 1:
        k = _split(n)
        if m < k:
            ranges.append((start + k, start + n))
            n = k
        else:
            ranges.append((start, start + k))
            start, m, n = start + k, m - k, n - k
    ranges.reverse()
    return ranges


def _consistency_ranges(old: int, new: int) -> list[tuple[int, int]]:
    # RFC 6962 §2.1.2 SUBPROOF(m, D[n], b), unrolled top-down; the proof lists it bottom-up.
    ranges: list[tuple[int, int]] = []
    start, m, n, whole = 0, old, new, True
    while m != n:
        k = _split(n)
        if m <= k:
            ranges.append((start + k, start + n))
            n = k
        else:
            ranges.append((start, start + k))
            start, m, n, whole = start + k, m - k, n - k, False
    if not whole:
        ranges.append((start, start + m))
    ranges.reverse()
    return ranges


def inclusion_proof(index: int, size: int, get_nodes: NodeReader) -> list[bytes]:
    """RFC 6962 audit path for leaf ``index`` in the tree of ``size`` leaves.

    One batched read of at most ~2·log2(size) ids. Raises ``TreeSizeError`` unless
    ``0 <= index < size``.
    """
    if not 0 <= index < size:
        raise TreeSizeError(f"no leaf {index} in a tree of size {size}: expected 0 <= index < size")
    return _ranges_hashes(_inclusion_ranges(index, size), get_nodes)


def inclusion_proofs(indexes: Sequence[int], size: int, get_nodes: NodeReader) -> list[list[bytes]]:
    """:func:`inclusion_proof` for many leaves of one tree: one read, and every subtree hashed once.

    The audit paths of neighbouring leaves (a batch's receipts) share most of their subtrees.
    """
    for index in indexes:
        if not 0 <= index < size:
            raise TreeSizeError(f"no leaf {index} in a tree of size {size}: expected 0 <= index < size")
    paths, ranges = _batch_inclusion_ranges(sorted(set(indexes)), size)
    hashes = dict(zip(ranges, _ranges_hashes(ranges, get_nodes), strict=True))
    return [[hashes[r] for r in paths[index]] for index in indexes]


def _batch_inclusion_ranges(indexes: list[int], size: int) -> tuple[dict[int, list[tuple[int, int]]],
                                                                     list[tuple[int, int]]]:
    """:func:`_inclusion_ranges` of each of the sorted distinct ``indexes``, and every range once.

    One walk down the tree: a subtree's split is worked out once for all the leaves under it,
    not once per leaf (a batch's receipts are neighbours and share their upper paths).
    """
    paths: dict[int, list[tuple[int, int]]] = {index: [] for index in indexes}
    ranges: list[tuple[int, int]] = []
    todo = [(0, size, 0, len(indexes))]  # a subtree [start, start + n) and its leaves indexes[lo:hi]
    while todo:
        start, n, lo, hi = todo.pop()
        if n == 1:
            continue
        k = _split(n)
        mid = bisect_left(indexes, start + k, lo, hi)
        if lo < mid:  # leaves on the left: their sibling is the right subtree
            ranges.append(right := (start + k, start + n))
            for index in indexes[lo:mid]:
                paths[index].append(right)
            todo.append((start, k, lo, mid))
        if mid < hi:
            ranges.append(left := (start, start + k))
            for index in indexes[mid:hi]:
                paths[index].append(left)
            todo.append((start + k, n - k, mid, hi))
    for path in paths.values():
        path.reverse()  # found top-down; a proof lists them bottom-up
    return paths, ranges


def consistency_proof(old_size: int, new_size: int, get_nodes: NodeReader) -> list[bytes]:
    """RFC 6962 consistency proof from ``old_size`` to ``new_size`` leaves.

    Empty when ``old_size == new_size`` or ``old_size == 0`` (nothing to prove beyond the
    roots). One batched read of at most ~2·log2(new_size) ids. Raises ``TreeSizeError``
    unless ``0 <= old_size <= new_size``.
    """
    if not 0 <= old_size <= new_size:
        raise TreeSizeError(f"no consistency proof from size {old_size} to {new_size}: expected 0 <= old <= new")
    if old_size == 0:
        return []
    return _ranges_hashes(_consistency_ranges(old_size, new_size), get_nodes)


# --- appending --------------------------------------------------------------------------


@dataclass(frozen=True)
class Integration:
    """What an append produced: the backend stores ``nodes`` and ``new_size`` atomically.

    ``nodes`` holds every complete node that exists at ``new_size`` but not at the old
    size, leaves (level 0) included. Until the backend commits them with the leaves and
    the new size in one transaction, nothing has happened: a crash before the commit
    loses the whole batch and leaves the stored tree at its old size, still consistent.
    """

    new_size: int
    root: bytes
    nodes: dict[NodeId, bytes] = field(default_factory=dict)


def integrate(size: int, leaf_hashes: Sequence[bytes], get_nodes: NodeReader) -> Integration:
    """Append ``leaf_hashes`` to the stored tree of ``size`` leaves (tessera-style).

    Reads the old tree's right border (popcount(size) nodes, one call, none when the tree
    is empty) and hashes O(k) new nodes for k leaves; never rebuilds. The result is the
    same however a sequence of leaves is split into batches.
    """
    if size < 0:
        raise TreeSizeError(f"tree size must be >= 0, got {size}")
    for i, h in enumerate(leaf_hashes):
        if len(h) != HASH_SIZE:
            raise NodeStoreError(f"leaf hash {size + i} has {len(h)} bytes, expected {HASH_SIZE}")
    border = _range_nodes(0, size)
    known = _read(get_nodes, border)
    stack: list[tuple[int, bytes]] = [(level, known[(level, index)]) for level, index in border]
    nodes: dict[NodeId, bytes] = {}
    n = size
    for h in leaf_hashes:
        nodes[(0, n)] = h
        stack.append((0, h))
        n += 1
        # The compact range of [0, n) has strictly decreasing levels: merge equal neighbours.
        while len(stack) >= 2 and stack[-1][0] == stack[-2][0]:
            level, right = stack.pop()
            _, left = stack.pop()
            parent = node_hash(left, right)
            nodes[(level + 1, (n >> (level + 1)) - 1)] = parent
            stack.append((level + 1, parent))
    new_root = _fold([h for _, h in stack]) if stack else EMPTY_ROOT
    return Integration(new_size=n, root=new_root, nodes=nodes)


# --- full recompute ---------------------------------------------------------------------


class StreamingRoot:
    """Root of a tree fed one leaf hash at a time, in O(log n) memory.

    Keeps the compact range of the leaves seen so far; ``root()`` may be called at any
    point and does not change the state. For the nightly full recompute over millions
    of leaves read as a stream.
    """

    __slots__ = ("_stack", "_size")

    def __init__(self) -> None:
        self._stack: list[tuple[int, bytes]] = []
        self._size = 0

    @property
    def size(self) -> int:
        """Number of leaf hashes added."""
        return self._size

    def add(self, leaf_hash_: bytes) -> None:
        """Append one leaf hash (32 bytes)."""
        if len(leaf_hash_) != HASH_SIZE:
            raise NodeStoreError(f"leaf hash {self._size} has {len(leaf_hash_)} bytes, expected {HASH_SIZE}")
        stack = self._stack
        stack.append((0, leaf_hash_))
        self._size += 1
        while len(stack) >= 2 and stack[-1][0] == stack[-2][0]:
            level, right = stack.pop()
            _, left = stack.pop()
            stack.append((level + 1, node_hash(left, right)))

    def root(self) -> bytes:
        """RFC 6962 root of the leaves added so far (``EMPTY_ROOT`` if none)."""
        if not self._stack:
            return EMPTY_ROOT
        return _fold([h for _, h in self._stack])


def root_from_leaf_hashes(hashes: Iterable[bytes]) -> bytes:
    """Root recomputed from every leaf hash, streaming (any iterable, O(log n) memory)."""
    acc = StreamingRoot()
    for h in hashes:
        acc.add(h)
    return acc.root()


# --- verification -----------------------------------------------------------------------


def _check_hash(what: str, h: bytes, error: type[Exception]) -> None:
    if len(h) != HASH_SIZE:
        raise error(f"{what} has {len(h)} bytes, expected {HASH_SIZE}: {h.hex()}")


def verify_inclusion(leaf_hash_: bytes, index: int, size: int, proof: Sequence[bytes], root_: bytes) -> None:
    """Check that ``leaf_hash_`` is leaf ``index`` of the tree of ``size`` with ``root_``.

    RFC 9162 §2.1.3.2. Returns None on success; raises ``InclusionProofError`` naming the
    index, size and the expected and computed roots otherwise.
    """
    _check_hash(f"leaf hash of leaf {index}", leaf_hash_, InclusionProofError)
    _check_hash(f"root of tree size {size}", root_, InclusionProofError)
    for i, p in enumerate(proof):
        _check_hash(f"inclusion proof hash {i} for leaf {index}", p, InclusionProofError)
    if not 0 <= index < size:
        raise InclusionProofError(f"leaf index {index} is not in a tree of size {size}: expected 0 <= index < size")
    inner = (index ^ (size - 1)).bit_length()
    expected_len = inner + bin(index >> inner).count("1")
    if len(proof) != expected_len:
        raise InclusionProofError(
            f"inclusion proof for leaf {index} in tree size {size} has {len(proof)} hashes, expected {expected_len}"
        )
    fn, sn, r = index, size - 1, leaf_hash_
    for p in proof:
        if sn == 0:
            raise InclusionProofError(f"inclusion proof for leaf {index} in tree size {size} is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0 or r != root_:
        raise InclusionProofError(
            f"inclusion proof for leaf {index} (leaf hash {leaf_hash_.hex()}) in tree size {size} does not verify: "
            f"expected root {root_.hex()}, computed {r.hex()}"
        )


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    """Check that the tree of ``new_size`` with ``new_root`` extends the one of ``old_size``.

    RFC 9162 §2.1.4.2. Equal sizes need an empty proof and equal roots; size 0 needs an
    empty proof and ``old_root == EMPTY_ROOT``. Returns None on success; raises
    ``ConsistencyProofError`` naming both sizes and the expected and computed roots.
    """
    _check_hash(f"root of tree size {old_size}", old_root, ConsistencyProofError)
    _check_hash(f"root of tree size {new_size}", new_root, ConsistencyProofError)
    for i, p in enumerate(proof):
        _check_hash(f"consistency proof hash {i}", p, ConsistencyProofError)
    where = f"consistency proof from size {old_size} to {new_size}"
    if not 0 <= old_size <= new_size:
        raise ConsistencyProofError(f"{where}: expected 0 <= old size <= new size")
    if old_size == new_size or old_size == 0:
        if proof:
            raise ConsistencyProofError(f"{where} has {len(proof)} hashes, expected none")
        if old_size == 0 and old_root != EMPTY_ROOT:
            raise ConsistencyProofError(
                f"{where} does not verify: expected the empty tree's root {EMPTY_ROOT.hex()}, found {old_root.hex()}"
            )
        if old_size == new_size and old_root != new_root:
            raise ConsistencyProofError(
                f"{where} does not verify: equal sizes need equal roots, found {old_root.hex()} and {new_root.hex()}"
            )
        return
    shift = (old_size & -old_size).bit_length() - 1
    inner = ((old_size - 1) ^ (new_size - 1)).bit_length()
    border = bin((old_size - 1) >> inner).count("1")
    seeded = old_size != 1 << shift
    expected_len = int(seeded) + inner - shift + border
    if len(proof) != expected_len:
        raise ConsistencyProofError(f"{where} has {len(proof)} hashes, expected {expected_len}")
    path = list(proof) if seeded else [old_root, *proof]
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ConsistencyProofError(f"{where} is too long")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0 or fr != old_root or sr != new_root:
        raise ConsistencyProofError(
            f"{where} does not verify: expected old root {old_root.hex()}, computed {fr.hex()}; "
            f"expected new root {new_root.hex()}, computed {sr.hex()}"
        )
