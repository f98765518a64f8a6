"""Factories for the log-core tests: in-memory node stores, fixed test keys, vector files."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody.log.merkle import Integration, NodeId, integrate, leaf_hash

VECTORS = Path(__file__).parent / "vectors"


class MemoryNodeStore:
    """A node store in a dict, as a database backend would keep it, counting batched reads."""

    def __init__(self) -> None:
        self.nodes: dict[NodeId, bytes] = {}
        self.size = 0
        self.calls: list[list[NodeId]] = []

    def get_nodes(self, ids: Sequence[NodeId]) -> list[bytes]:
        self.calls.append(list(ids))
        return [self.nodes[i] for i in ids]

    def append(self, leaf_hashes: Sequence[bytes]) -> Integration:
        result = integrate(self.size, leaf_hashes, self.get_nodes)
        assert not set(result.nodes) & set(self.nodes), "integrate must only return new nodes"
        self.nodes.update(result.nodes)
        self.size = result.new_size
        return result


def leaf_data(i: int) -> bytes:
    """Distinct leaf contents for generated trees."""
    return b"leaf %d" % i


@pytest.fixture(scope="session")
def make_store() -> Callable[..., MemoryNodeStore]:
    """Factory: a store holding ``size`` generated leaves (or the given leaf contents)."""

    def factory(size: int = 0, leaves: Sequence[bytes] | None = None) -> MemoryNodeStore:
        store = MemoryNodeStore()
        data = list(leaves) if leaves is not None else [leaf_data(i) for i in range(size)]
        if data:
            store.append([leaf_hash(d) for d in data])
        store.calls.clear()
        return store

    return factory


@pytest.fixture(scope="session")
def make_key() -> Callable[[str], Ed25519PrivateKey]:
    """Factory: a deterministic Ed25519 key from a label (SHA-256 of the label is the seed)."""

    def factory(label: str) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())

    return factory


@pytest.fixture(scope="session")
def vector() -> Callable[[str], Any]:
    """Loader: a file under tests/log/vectors/ (JSON parsed, anything else as bytes)."""

    def load(name: str) -> Any:
        path = VECTORS / name
        if name.endswith(".json"):
            return json.loads(path.read_text(encoding="utf-8"))
        return path.read_bytes()

    return load


@pytest.fixture(scope="session")
def reference_tree(vector: Callable[[str], Any], make_store: Callable[..., MemoryNodeStore]) -> dict[str, Any]:
    """The RFC 6962 reference tree vectors, with a store built from its 8 leaves."""
    data: dict[str, Any] = vector("rfc6962_reference_tree.json")
    data["leaves"] = [bytes.fromhex(x) for x in data["leaves_hex"]]
    data["store"] = make_store(leaves=data["leaves"])
    return data
