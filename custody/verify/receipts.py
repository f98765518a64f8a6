"""Receipts kept by stations (c2sp.org/tlog-proof@v1 texts whose ``extra`` is the leaf) against the log."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from custody.errors import LogError
from custody.log.merkle import leaf_hash, verify_consistency
from custody.log.note import NoteVerifier
from custody.log.proofs import parse_tlog_proof, verify_tlog_proof
from custody.verify.findings import Finding


def check_receipt(name: str, text: bytes, log_keys: Sequence[NoteVerifier], leaf_hash_at: Callable[[int], bytes | None],
                  size: int, root: bytes, proof: Callable[[int, int], Sequence[bytes]]) -> list[Finding]:
    """One receipt: it verifies on its own, the log's leaf at its index is its leaf, its checkpoint is ours.

    ``size``/``root``: the tree recomputed from the leaves; ``proof(old, new)`` a
    consistency proof from the stored tree.
    """
    try:
        parsed = parse_tlog_proof(text)
    except LogError as exc:
        return [Finding("receipt_invalid", f"receipt {name} is not a tlog-proof: {exc}", f"回执 {name} 格式错误")]
    index = parsed.index
    ours = leaf_hash_at(index)
    theirs = leaf_hash(parsed.extra) if parsed.extra is not None else ours
    item = None
    if parsed.extra:
        try:
            import json

            item = json.loads(parsed.extra).get("item")
        except (ValueError, AttributeError):
            item = None
    where: dict[str, Any] = {"index": index, "item": item if isinstance(item, str) else None}
    if theirs is None:
        return [Finding("receipt_invalid", f"receipt {name} proves leaf {index}, which the log does not hold",
                        f"回执 {name} 对应的第 {index} 条日志不存在", expected=f"leaf {index}", found="no leaf",
                        **where)]
    error: Exception | None = None
    verified = None
    for key in log_keys:
        try:
            verified = verify_tlog_proof(text, theirs, key)
            break
        except LogError as exc:
            error = exc
    if verified is None:
        return [Finding("receipt_invalid", f"receipt {name} does not verify: {error}", f"回执 {name} 无法验证",
                        **where)]
    if ours != theirs:
        return [Finding("receipt_invalid",
                        f"receipt {name}: the station was given leaf {index} with hash {theirs.hex()}, the log now "
                        f"holds {ours.hex() if ours else 'nothing'} there: the leaf was changed or moved",
                        f"回执 {name}：交接台收到的第 {index} 条日志与现有日志不同", expected=theirs.hex(),
                        found=ours.hex() if ours else "no leaf", **where)]
    cp = verified.checkpoint.checkpoint
    if cp.size > size:
        return [Finding("receipt_invalid", f"receipt {name} carries a checkpoint at size {cp.size}, beyond the log's "
                        f"{size} leaves: the log was truncated or rolled back", f"回执 {name} 的检查点超出现有日志",
                        size=cp.size, expected=f"at least {cp.size} leaves", found=f"{size} leaves", **where)]
    try:
        verify_consistency(cp.size, size, cp.root_hash, root, proof(cp.size, size))
    except LogError as exc:
        return [Finding("receipt_invalid", f"receipt {name}: its checkpoint {cp.size} is not consistent with the log: "
                        f"{exc}", f"回执 {name} 的检查点与现有日志不一致", size=cp.size, **where)]
    return []
