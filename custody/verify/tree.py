"""Recomputing the Merkle tree from the leaves, and naming where a stored tree departs from it.

:class:`TreeAudit` is ``custody.log.merkle.StreamingRoot`` that also reports
every complete node it forms, so the driver can compare each one with the
stored ``log_nodes`` row, and that can resume from a saved compact range
(incremental verification). :func:`classify_leaf_mismatches` turns a list of
"leaf i hashes to F, the stored tree says R" into named tampering: a modified,
inserted, deleted or moved leaf.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from custody.errors import NodeStoreError
from custody.log.merkle import EMPTY_ROOT, HASH_SIZE, node_hash
from custody.verify.findings import Finding


def compact_levels(size: int) -> list[int]:
    """Levels of the complete subtrees covering ``[0, size)``, largest first."""
    return [level for level in range(size.bit_length() - 1, -1, -1) if size >> level & 1]


class TreeAudit:
    """The tree of the leaf hashes added so far, in O(log n) memory, with every new complete node.

    ``completed`` collects ``(level, index, hash)`` of each complete node as it
    forms (the leaf itself as level 0); the caller drains it. ``root()`` does not
    change the state.
    """

    __slots__ = ("_stack", "size", "completed")

    def __init__(self, size: int = 0, compact: Sequence[bytes] = ()):
        levels = compact_levels(size)
        if len(levels) != len(compact) or any(len(h) != HASH_SIZE for h in compact):
            raise NodeStoreError(f"a compact range of size {size} has {len(levels)} hashes of {HASH_SIZE} bytes, "
                                 f"found {len(compact)}")
        self._stack: list[tuple[int, bytes]] = list(zip(levels, compact, strict=True))
        self.size = size
        self.completed: list[tuple[int, int, bytes]] = []

    def add(self, leaf_hash: bytes) -> None:
        stack, completed = self._stack, self.completed
        n = self.size
        completed.append((0, n, leaf_hash))
        stack.append((0, leaf_hash))
        n += 1
        self.size = n
        while len(stack) >= 2 and stack[-1][0] == stack[-2][0]:
            level, right = stack.pop()
            _, left = stack.pop()
            parent = node_hash(left, right)
            level += 1
            completed.append((level, (n >> level) - 1, parent))
            stack.append((level, parent))

    def root(self) -> bytes:
        if not self._stack:
            return EMPTY_ROOT
        acc = self._stack[-1][1]
        for _, h in reversed(self._stack[:-1]):
            acc = node_hash(h, acc)
        return acc

    def compact(self) -> list[bytes]:
        """The hashes of the compact range ``[0, size)``, left to right (what resumes the audit)."""
        return [h for _, h in self._stack]


def node_ranges(start: int, end: int, max_level: int = 63) -> list[tuple[int, int, int]]:
    """``(level, first, last)`` index ranges of the complete nodes that form while leaves
    ``[start, end)`` are added (a node (L, j) forms with leaf ``(j + 1) * 2**L - 1``)."""
    out = []
    for level in range(0, max_level + 1):
        first = -(-(start + 1) >> level) - 1 if start else 0
        first = max(first, 0)
        last = (end >> level) - 1
        if last < first:
            if end >> level == 0:
                break
            continue
        out.append((level, first, last))
    return out


@dataclass(frozen=True)
class LeafMismatch:
    """Leaf ``index`` hashes to ``found``; the stored tree (``log_nodes`` level 0) says ``expected``."""

    index: int
    found: bytes
    expected: bytes | None
    item: str | None = None


def classify_leaf_mismatches(mismatches: Sequence[LeafMismatch]) -> list[Finding]:
    """Name each run of mismatching leaves: modified, inserted, deleted (shifted) or moved.

    A leaf whose hash the stored tree has at another index was moved (reordered);
    a run whose leaves each sit one place after (before) their stored position
    follows a deleted (inserted) leaf; a leaf the stored tree never had was
    modified, or inserted when the next leaf is the one the tree had here.
    """
    where = {m.expected: m.index for m in mismatches if m.expected is not None}
    by_index = {m.index: m for m in mismatches}
    out: list[Finding] = []
    for m in mismatches:
        j = where.get(m.found)
        nxt = by_index.get(m.index + 1)
        prev = by_index.get(m.index - 1)
        exp = m.expected.hex() if m.expected is not None else None
        if j is None and prev is not None and where.get(prev.found) == prev.index + 1 and m.index + 1 not in by_index:
            continue  # the last leaf of a run shifted down: the stored tree's next index is past the rows
        if j == m.index + 1:  # shifted down: a leaf before it was deleted
            if prev is not None and where.get(prev.found) == prev.index + 1:
                continue
            out.append(Finding(
                "leaf_missing",
                f"leaf {m.index} of the signed tree (hash {exp}) is gone: the leaves after it moved down by one",
                f"第 {m.index} 条日志（哈希 {exp}）被删除，其后的条目前移一位",
                index=m.index, item=m.item, expected=exp, found=f"leaf {j} of the signed tree"))
        elif j == m.index - 1 or (j is None and nxt is not None and where.get(nxt.found) == m.index):
            if j is None:
                out.append(Finding(
                    "leaf_inserted",
                    f"leaf {m.index} (hash {m.found.hex()}) was inserted: the signed tree has {exp} here, and the "
                    f"leaves after it moved up by one",
                    f"第 {m.index} 条日志是插入的（哈希 {m.found.hex()}），其后的条目后移一位",
                    index=m.index, item=m.item, expected=exp, found=m.found.hex()))
            continue
        elif j is not None:
            out.append(Finding(
                "leaf_reordered", f"leaf {m.index} holds the leaf the signed tree has at index {j}",
                f"第 {m.index} 条日志是原第 {j} 条：条目顺序被调换",
                index=m.index, item=m.item, expected=exp, found=f"leaf {j} (hash {m.found.hex()})"))
        else:
            out.append(Finding(
                "leaf_hash_mismatch",
                f"leaf {m.index} was modified: its bytes hash to {m.found.hex()}, the stored tree has {exp}",
                f"第 {m.index} 条日志被篡改：内容哈希为 {m.found.hex()}，树中记录为 {exp}",
                index=m.index, item=m.item, expected=exp, found=m.found.hex()))
    return out
