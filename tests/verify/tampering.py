"""What someone with write access to the database (or the log key) could do to the stored log.

Each function makes one kind of tampering on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, delete, insert, select, text, update

from custody.keyring import Role
from custody.log.checkpoint import Checkpoint
from custody.log.jcs import canonical_json
from custody.log.merkle import integrate, leaf_hash, root
from custody.log.note import sign_note
from store.instance import Instance
from store.models import ItemHead, LogCheckpoint, LogHead, LogLeaf, LogNode

NOW = datetime(2017, 7, 1, tzinfo=UTC)


def log_key(instance: Instance) -> Any:
    return instance.keys.private_key(Role.LOG_SIGNER, instance.institute, NOW)


def modify_leaf(instance: Instance, idx: int) -> None:
    """Change a handover's count in its stored bytes (the hash column and the tree stay)."""
    with instance.db.write_session() as s:
        row = s.get(LogLeaf, idx)
        leaf = json.loads(row.data)
        leaf["event"]["count"] = (leaf["event"]["count"] or 0) + 1
        row.data = canonical_json(leaf)


def insert_leaf(instance: Instance, k: int) -> bytes:
    """Shift every leaf from ``k`` up by one and put a forged leaf at ``k``."""
    with instance.db.write_session() as s:
        template = json.loads(s.get(LogLeaf, k).data)
        template["event"]["id"] = template["event"]["id"] + "-forged"
        data = canonical_json(template)
        s.execute(update(LogLeaf).where(LogLeaf.idx >= k).values(idx=LogLeaf.idx + 10_000_000))
        s.execute(update(LogLeaf).where(LogLeaf.idx >= 10_000_000).values(idx=LogLeaf.idx - 9_999_999))
        s.execute(insert(LogLeaf).values(idx=k, data=data, hash=leaf_hash(data), type="handover",
                                         item=template["item"], event_key=None, station=template["event"]["station"],
                                         received_at=NOW))
    return data


def swap_leaves(instance: Instance, i: int, j: int) -> None:
    """Exchange two leaf rows, every column but the index."""
    cols = ("data", "hash", "type", "item", "event_key", "station", "received_at")
    with instance.db.write_session() as s:
        a, b = s.get(LogLeaf, i), s.get(LogLeaf, j)
        va, vb = {c: getattr(a, c) for c in cols}, {c: getattr(b, c) for c in cols}
        a.event_key = None
        s.flush()
        for c in cols:
            setattr(b, c, va[c])
        s.flush()
        for c in cols:
            setattr(a, c, vb[c])


def truncate_tail(instance: Instance, count: int) -> int:
    """Delete the last ``count`` leaves (only the leaves). Returns the new number of leaves."""
    with instance.db.write_session() as s:
        size = s.get(LogHead, 1).size
        s.execute(delete(LogLeaf).where(LogLeaf.idx >= size - count))
    return size - count


def forge_checkpoint(instance: Instance, size: int) -> None:
    """Replace the stored checkpoint at ``size`` by one signed with another key under the log's name."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    note = sign_note(Checkpoint(instance.origin, size, b"\x07" * 32).body(), instance.origin,
                     Ed25519PrivateKey.generate())
    with instance.db.write_session() as s:
        s.get(LogCheckpoint, size).note = note.decode()


def inconsistent_checkpoint(instance: Instance, size: int) -> None:
    """An insider with the log key signs another root at ``size`` in place of the real checkpoint."""
    note = sign_note(Checkpoint(instance.origin, size, b"\x09" * 32).body(), instance.origin, log_key(instance))
    with instance.db.write_session() as s:
        s.get(LogCheckpoint, size).note = note.decode()


def rewrite_history(instance: Instance, k: int) -> None:
    """An insider with the log key changes leaf ``k`` and recomputes everything: chains, hashes,
    nodes, head, and re-signs every checkpoint. The database is self-consistent afterwards."""
    with instance.db.write_session() as s:
        rows = list(s.execute(select(LogLeaf.idx, LogLeaf.data).order_by(LogLeaf.idx)))
        heads: dict[str, bytes] = {}
        new: list[bytes] = []
        for idx, data in rows:
            leaf = json.loads(data)
            if idx == k:
                leaf["received_at"] = "2017-06-01T00:00:00Z"
            item = leaf.get("item")
            if isinstance(item, str) and "item_prev" in leaf:
                prev = heads.get(item)
                leaf["item_prev"] = prev.hex() if prev else None
            data = canonical_json(leaf)
            if isinstance(item, str):
                heads[item] = leaf_hash(data)
            new.append(data)
        for (idx, _), data in zip(rows, new, strict=True):
            s.execute(update(LogLeaf).where(LogLeaf.idx == idx).values(data=data, hash=leaf_hash(data)))
        result = integrate(0, [leaf_hash(d) for d in new], lambda ids: [])
        s.execute(delete(LogNode))
        s.execute(insert(LogNode), [{"level": lv, "idx": i, "hash": h} for (lv, i), h in result.nodes.items()])
        s.get(LogHead, 1).root = result.root
        key = log_key(instance)
        for row in s.scalars(select(LogCheckpoint)):
            r = root(row.size, lambda ids: [result.nodes[i] for i in ids])
            row.note = sign_note(Checkpoint(instance.origin, row.size, r).body(), instance.origin, key).decode()
        for item, h in heads.items():
            s.execute(update(ItemHead).where(ItemHead.item == item).values(leaf_hash=h))


# --- backups --------------------------------------------------------------------------------

def backup(instance: Instance, where: Path) -> str:
    """Copy the whole database (a SQLite file, or a PostgreSQL database from a template)."""
    instance.db.dispose()
    url = instance.db.url
    if url.startswith("sqlite"):
        shutil.copyfile(url[len("sqlite:///"):], where)
        return str(where)
    name = url.rsplit("/", 1)[1]
    copy = f"{name}_bak"
    with _admin(url).connect() as c:
        c.execute(text(f'CREATE DATABASE "{copy}" TEMPLATE "{name}"'))
    return copy


def restore(instance: Instance, saved: str) -> None:
    """Put the backup back in place of the database."""
    instance.db.dispose()
    url = instance.db.url
    if url.startswith("sqlite"):
        path = Path(url[len("sqlite:///"):])
        for extra in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            extra.unlink(missing_ok=True)
        shutil.copyfile(saved, path)
        return
    name = url.rsplit("/", 1)[1]
    with _admin(url).connect() as c:
        c.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{saved}"'))
        c.execute(text(f'DROP DATABASE "{saved}"'))


def _admin(url: str) -> Any:
    return create_engine(url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
