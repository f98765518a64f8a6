"""What the verifier found wrong: one :class:`Finding` per broken leaf, item or checkpoint.

A finding names what it concerns (leaf index, item, checkpoint size), what was
expected and what was found, in English and Chinese. Codes are stable (the web
UI and alert hooks filter on them); messages may change. Every finding is a
failure: a clean verification has none. Notes that are not failures (what was
checked, what was skipped) go into the report's ``checks``, never here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

#: code -> (English title, Chinese title, what it means). Stable codes: never rename one.
CODES: dict[str, tuple[str, str, str]] = {
    "leaf_hash_mismatch": ("Leaf modified", "日志条目被篡改",
                           "the leaf's bytes no longer hash to the leaf hash stored with them or in the tree"),
    "leaf_missing": ("Leaf deleted", "日志条目被删除",
                     "an index below the tree size has no leaf: a leaf was deleted"),
    "leaf_inserted": ("Leaf inserted", "日志条目被插入",
                      "the leaf at this index is one the signed tree never had, and what follows is shifted"),
    "leaf_reordered": ("Leaves reordered", "日志条目顺序被调换",
                       "the leaf at this index is one the signed tree had at another index"),
    "leaf_beyond_head": ("Leaf beyond the tree", "树外的多余条目",
                         "a leaf is stored beyond the tree size: it was never logged"),
    "leaf_malformed": ("Leaf malformed", "日志条目格式错误",
                       "the leaf is not the canonical JSON of a record of a known type"),
    "leaf_row_mismatch": ("Leaf row differs from its bytes", "条目索引列与内容不符",
                          "a column stored beside the leaf (type, item, station, time) contradicts the leaf"),
    "node_mismatch": ("Tree node modified", "默克尔树节点被篡改",
                      "a stored tree node differs from the node recomputed from the leaves"),
    "node_missing": ("Tree node missing", "默克尔树节点缺失", "a complete subtree's node is not stored"),
    "node_extra": ("Unexpected tree node", "多余的树节点", "a node is stored that the tree does not have"),
    "head_mismatch": ("Tree head differs", "树头不一致",
                      "the stored head (size, root) differs from the tree recomputed from the leaves"),
    "log_truncated": ("Log truncated", "日志尾部被截断",
                      "the log has fewer leaves than a checkpoint it signed or a verification already saw"),
    "log_rolled_back": ("Database restored from an old backup", "数据库被回滚到旧备份",
                        "the database is older than a checkpoint held outside it"),
    "history_rewritten": ("History rewritten", "历史被改写",
                          "the log is not an extension of a checkpoint held outside the database: "
                          "history was rewritten, even if every hash was recomputed"),
    "checkpoint_bad_signature": ("Checkpoint forged", "检查点签名无效",
                                 "a stored checkpoint is not validly signed by the log key"),
    "checkpoint_malformed": ("Checkpoint malformed", "检查点格式错误", "a stored checkpoint cannot be parsed"),
    "checkpoint_root_mismatch": ("Checkpoint does not match the log", "检查点与日志不符",
                                 "a signed checkpoint's root differs from the root recomputed from the leaves"),
    "checkpoint_inconsistent": ("Checkpoints inconsistent", "检查点相互矛盾",
                                "a checkpoint is not consistent with the next one: the log forked"),
    "checkpoint_missing": ("Checkpoint deleted", "检查点被删除",
                           "a checkpoint that an earlier verification saw is no longer stored"),
    "checkpoint_beyond_log": ("Checkpoint beyond the log", "检查点超出日志",
                              "a checkpoint was signed for more leaves than the log holds"),
    "cosignature_bad": ("Witness cosignature invalid", "见证方副署无效",
                        "a witness cosignature on a checkpoint does not verify"),
    "witness_mismatch": ("Witness disagrees", "见证方检查点不符",
                         "a checkpoint held by a witness is not consistent with the log"),
    "item_chain_broken": ("Item chain broken", "物品哈希链断裂",
                          "a leaf's item_prev is not the hash of the same item's previous leaf"),
    "item_head_mismatch": ("Item head differs", "物品链头不一致",
                           "the stored head of an item's chain is not its last leaf"),
    "bad_station_signature": ("Station signature invalid", "交接台签名无效",
                              "a handover's station signature does not verify"),
    "revoked_key_signature": ("Signed by a revoked key", "吊销密钥的签名",
                              "a handover was signed, at the time it claims, by a key revoked before then"),
    "key_not_valid": ("Key not valid then", "密钥当时无效",
                      "a signature claims a time outside its key's validity, or the key is not the station's"),
    "unknown_key": ("Unknown key", "未知密钥", "a signature is by a key the registry and the log do not know"),
    "label_invalid": ("Label invalid", "标签无效", "a logged label does not verify or does not match its leaf"),
    "key_registry_mismatch": ("Key registry differs from the log", "密钥登记与日志不符",
                              "the key registry and the key records in the log disagree"),
    "rollover_invalid": ("Log key rollover invalid", "日志密钥交接无效",
                         "a new log key's rollover is not signed by the log key before it, or names another key"),
    "alert_missing": ("Alert missing", "告警缺失",
                      "re-running the custody rules raises an alert the alerts table lacks"),
    "alert_extra": ("Alert not explained", "多余告警",
                    "the alerts table holds an alert the custody rules do not raise"),
    "rules_failed": ("Rules could not run", "规则无法复核", "re-running the custody rules failed"),
    "receipt_invalid": ("Receipt not in the log", "回执与日志不符",
                        "a receipt kept by a station is not proved by the log"),
    "state_untrusted": ("Verification state altered", "核验状态被改动",
                        "the saved state of the last verification does not match its signed report"),
}


@dataclass(frozen=True)
class Finding:
    """One thing wrong. ``code`` is a key of :data:`CODES`."""

    code: str
    message: str
    message_zh: str = ""
    index: int | None = None
    item: str | None = None
    size: int | None = None
    expected: str | None = None
    found: str | None = None
    details: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"unknown finding code {self.code!r}")

    @property
    def title(self) -> str:
        return CODES[self.code][0]

    @property
    def title_zh(self) -> str:
        return CODES[self.code][1]

    def where(self) -> str:
        """``leaf 12 (item YW-P-K001-01)``, ``checkpoint 300``, or ``log``."""
        parts = []
        if self.index is not None:
            parts.append(f"leaf {self.index}")
        if self.item is not None:
            parts.append(f"item {self.item}")
        if self.size is not None:
            parts.append(f"checkpoint {self.size}")
        return ", ".join(parts) or "log"

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "title": self.title, "title_zh": self.title_zh,
                               "where": self.where(), "message": self.message, "message_zh": self.message_zh}
        for name in ("index", "item", "size", "expected", "found"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.details:
            out["details"] = self.details
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Finding:
        return cls(code=data["code"], message=data["message"], message_zh=data.get("message_zh", ""),
                   index=data.get("index"), item=data.get("item"), size=data.get("size"),
                   expected=data.get("expected"), found=data.get("found"), details=data.get("details") or {})


class Findings:
    """An ordered collection of findings with a cap per code, so a wholesale rewrite stays readable.

    ``count`` keeps the true number per code even when only the first ``cap`` are kept.
    """

    def __init__(self, cap: int = 200):
        self.cap = cap
        self.items: list[Finding] = []
        self.count: dict[str, int] = {}

    def add(self, finding: Finding) -> None:
        n = self.count.get(finding.code, 0)
        self.count[finding.code] = n + 1
        if n < self.cap:
            self.items.append(finding)

    def extend(self, findings: list[Finding]) -> None:
        for f in findings:
            self.add(f)

    def __len__(self) -> int:
        return sum(self.count.values())

    def __bool__(self) -> bool:
        return bool(self.count)

    def __iter__(self) -> Iterator[Finding]:
        return iter(self.items)

    def by_code(self, code: str) -> list[Finding]:
        return [f for f in self.items if f.code == code]
