"""The log as the dashboard and the API show it: the latest checkpoint, its witnesses, the last verification."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import inspect, select, text

from custody.errors import CustodyError
from custody.keyring import Role
from custody.log.checkpoint import open_checkpoint
from custody.log.note import NoteVerifier, cosigner_key, parse_unverified_note, parse_verifier_key
from store.instance import Instance
from store.ledger import Ledger
from store.models import KeyRecord


def checkpoint_summary(ledger: Ledger, instance: Instance) -> dict[str, Any] | None:
    """The latest checkpoint, verified with the log key, and every cosignature line on it.

    A cosignature is ``verified`` when a registered witness key of that name
    checks it, ``False`` when a registered key refuses it, ``None`` when the
    witness is not registered here.
    """
    try:
        note = ledger.latest_checkpoint()
    except CustodyError:
        return None
    log_key = ledger.verifier()
    checkpoint = open_checkpoint(note.encode(), log_key).checkpoint
    parsed = parse_unverified_note(note.encode())
    witnesses = _witness_verifiers(instance)
    cosignatures = []
    for sig in parsed.signatures:
        if sig.name == log_key.name and sig.key_id == log_key.key_id:
            continue
        entry: dict[str, Any] = {"name": sig.name, "key_id": f"{sig.key_id:08x}", "timestamp": None,
                                 "verified": None}
        if len(sig.signature) == 72:
            stamp = int.from_bytes(sig.signature[:8], "big")
            entry["timestamp"] = datetime.fromtimestamp(stamp, UTC).isoformat()
        verifier = witnesses.get((sig.name, sig.key_id))
        if verifier is not None:
            try:
                verifier.check(parsed.body, sig.signature)
                entry["verified"] = True
            except CustodyError:
                entry["verified"] = False
        cosignatures.append(entry)
    return {"origin": checkpoint.origin, "size": checkpoint.size,
            "root_hash": base64.b64encode(checkpoint.root_hash).decode("ascii"),
            "root_hash_hex": checkpoint.root_hash.hex(), "note": note, "log_key": log_key.key_text(),
            "cosignatures": cosignatures}


def _witness_verifiers(instance: Instance) -> dict[tuple[str, int], NoteVerifier]:
    with instance.db.session() as s:
        rows = s.scalars(select(KeyRecord).where(KeyRecord.role == Role.WITNESS.value)).all()
    out = {}
    for row in rows:
        try:
            v = parse_verifier_key(cosigner_key(row.owner, row.public_raw))
        except CustodyError:
            continue
        out[(v.name, v.key_id)] = v
    return out


def last_verification(instance: Instance) -> dict[str, Any] | None:
    """The newest nightly verification run, if that table exists and holds one."""
    engine = instance.db.engine
    if not inspect(engine).has_table("verification_runs"):
        return None
    with instance.db.session() as s:
        row = s.execute(text("SELECT finished_at, ok, mode, log_size, finding_count, report FROM verification_runs "
                             "ORDER BY id DESC LIMIT 1")).first()
    if row is None:
        return None
    finished = row[0]
    if isinstance(finished, str):
        finished = datetime.fromisoformat(finished)
    if isinstance(finished, datetime) and finished.tzinfo is None:
        finished = finished.replace(tzinfo=UTC)
    try:
        report = json.loads(row[5])
    except (TypeError, ValueError):
        report = None
    if not isinstance(report, dict):  # a damaged row (valid JSON that is not a report too): no summary
        report = {}
    summary = report.get("summary_zh") or report.get("summary") or ""
    summary_en = report.get("summary") or ""
    return {"finished_at": finished, "ok": bool(row[1]), "mode": row[2], "log_size": row[3],
            "findings": row[4], "summary_zh": summary, "summary": summary_en}
