"""Scan refusals reported by stations: labels a desk refused (forged, foreign, damaged), kept as evidence.

Each report becomes one ``scan_refusal`` leaf of the log (chained to the item
it claimed to be, when that item exists), so that a forged label shown at a
county desk is on record even though no handover happened. Reports are
idempotent by (station, report id): a resent report is a ``duplicate`` with the
same index. The delivery is also noted in the audit trail, which is what the
duplicate check reads.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import select

from custody.events import HEX64, control_character
from store.accounts import AuditEntry
from store.instance import Instance
from store.ledger import Ledger
from store.models import Item

MAX_REPORTS = 200
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,79}\Z")
#: field -> (types allowed, longest text)
FIELDS: dict[str, tuple[tuple[type, ...], int]] = {
    "id": ((str,), 80), "session": ((str, type(None)), 64), "seen_at": ((str,), 40), "reason": ((str,), 64),
    "message": ((str, type(None)), 500), "text": ((str, type(None)), 4000), "text_sha256": ((str, type(None)), 64),
    "frame": ((str, int, type(None)), 200), "item": ((str, type(None)), 64),
}


def check_report(report: Any) -> str | None:
    """Why a report is malformed, or ``None``."""
    if not isinstance(report, dict):
        return "a refusal report is a JSON object"
    for name, (types, longest) in FIELDS.items():
        if name in ("id", "seen_at", "reason") and name not in report:
            return f"{name} is missing"
        value = report.get(name)
        if not isinstance(value, types) or isinstance(value, bool):
            return f"{name} has the wrong type"
        if isinstance(value, str) and len(value) > longest:
            return f"{name} is longer than {longest} characters"
        # the text of the refused label is evidence, kept as it was read (escaped in the leaf's JSON); the
        # rest is read into queries and pages (PostgreSQL refuses a NUL in a query)
        bad = control_character(value) if isinstance(value, str) and name != "text" else None
        if bad is not None:
            return f"{name} holds the control character {bad}"
    if not _ID.match(report["id"]):
        return "id must be letters, digits and ._:- (at most 80)"
    if report.get("text_sha256") is not None and not HEX64.match(report["text_sha256"]):
        return "text_sha256 must be a lowercase hex SHA-256"
    return None


def record_refusals(instance: Instance, ledger: Ledger, station: str, reports: list[Any],
                    now: datetime) -> list[dict[str, Any]]:
    exam = instance.current_exam()
    results: list[dict[str, Any] | None] = [None] * len(reports)
    problems = [check_report(r) for r in reports]
    # only well-formed reports are read into queries
    keys = {n: f"{station}/{r['id']}" for n, r in enumerate(reports) if problems[n] is None}
    with instance.db.session() as s:
        seen = {e.target: int(e.detail) for e in s.scalars(select(AuditEntry).where(
            AuditEntry.action == "scan_refusal", AuditEntry.target.in_(list(keys.values()) or [""])))}
        claimed = {reports[n].get("item") for n in keys if isinstance(reports[n].get("item"), str)}
        known = set(s.scalars(select(Item.item_id).where(Item.exam == exam, Item.item_id.in_(claimed or {""}))))
    fresh: list[tuple[int, dict[str, Any]]] = []
    for n, report in enumerate(reports):
        problem = problems[n]
        if problem:
            results[n] = {"status": "refused", "id": report.get("id") if isinstance(report, dict) else None,
                          "error": "malformed", "reason": problem}
        elif keys[n] in seen:
            results[n] = {"status": "duplicate", "id": report["id"], "index": seen[keys[n]]}
        elif any(keys[n] == keys[m] for m, _ in fresh):
            results[n] = {"status": "duplicate", "id": report["id"], "index": -1}
        else:
            leaf = {"type": "scan_refusal", "station": station, "report": report["id"],
                    **{k: report.get(k) for k in FIELDS if k not in ("id", "item")},
                    "claimed_item": report.get("item")}
            if report.get("item") in known:
                leaf["item"] = report["item"]
            fresh.append((n, leaf))
    if fresh:
        indexes = ledger.append_records([leaf for _, leaf in fresh])
        with instance.db.write_session() as s:
            for (n, _leaf), index in zip(fresh, indexes, strict=True):
                s.add(AuditEntry(at=now, username=station, role="station", action="scan_refusal",
                                 target=keys[n], detail=str(index), address=""))
                results[n] = {"status": "accepted", "id": reports[n]["id"], "index": index}
    first_index = {keys[n]: r["index"] for n, r in enumerate(results) if r and r["status"] == "accepted"}
    out = []
    for n, result in enumerate(results):
        assert result is not None
        if result["status"] == "duplicate" and result["index"] == -1:
            result["index"] = first_index[keys[n]]
        if "index" in result:
            result["leaf_hash"] = ledger.leaf(result["index"]).hash.hex()
            result["receipt"] = ledger.inclusion_proof(result["index"], extra=True)  # a receipt: with the leaf
        out.append(result)
    return out

