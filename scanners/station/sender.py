"""Sending the outbox: batches, retries with backoff and jitter, verified receipts.

:meth:`Sender.send_due` posts pending events oldest first, in batches of at
most ``batch_size``. For each result it checks the receipt *before* storing
it (:func:`verify_receipt`): the tlog-proof verifies against the pinned log
key and origin, its extra data is the leaf, the leaf hashes to the announced
hash, and the leaf holds exactly our signed event (same JCS bytes, key id and
signature). A ``duplicate`` whose leaf holds *another* event with our id (a
station restored from an old backup reusing numbers) is a ``conflict``, never
taken as sent. A network error, an HTTP error or a receipt that does not
verify leaves the batch pending and schedules the next attempt with
exponential backoff and jitter; a ``refused`` event (the server logged the
refusal as evidence) is settled as refused and shown to the user.

Idempotency: the server keys events by (station, event id); resending is
always safe and never makes a second leaf.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from custody.errors import CustodyError
from custody.log.jcs import canonical_json
from custody.log.merkle import leaf_hash as merkle_leaf_hash
from custody.log.note import parse_verifier_key
from custody.log.proofs import verify_tlog_proof
from scanners.station.client import StationClient, TransportError
from scanners.station.errors import ReceiptError
from scanners.station.faults import pause_point
from scanners.station.outbox import Backoff, Outbox, OutboxEvent, Settled

#: How a refused event and an id conflict are named in a report's errors (the station window tells them apart).
REFUSED, CONFLICT = " refused by the server: ", "the log already holds another event with id"


@dataclass
class SendReport:
    attempted: int = 0
    accepted: int = 0
    duplicate: int = 0
    refused: int = 0
    conflict: int = 0
    errors: list[str] = field(default_factory=list)
    pending: int = 0
    retry_in: float | None = None
    #: events whose receipt did not verify (kept pending): the server or the network is not to be trusted
    bad_receipts: int = 0

    @property
    def receipted(self) -> int:
        return self.accepted + self.duplicate

    def as_json(self) -> dict[str, Any]:
        return {"attempted": self.attempted, "accepted": self.accepted, "duplicate": self.duplicate,
                "refused": self.refused, "conflict": self.conflict, "pending": self.pending,
                "bad_receipts": self.bad_receipts,
                "retry_in": None if self.retry_in is None else round(self.retry_in, 1), "errors": self.errors}


def _leaf_from_receipt(receipt: str, leaf_hash_hex: str, index: int, log_key: str, origin: str) -> dict[str, Any]:
    try:
        expected_hash = bytes.fromhex(leaf_hash_hex)
        proof = verify_tlog_proof(receipt, expected_hash, parse_verifier_key(log_key), origin=origin)
    except (CustodyError, ValueError) as exc:
        raise ReceiptError(f"the receipt does not verify against the pinned log key: {exc}") from None
    if proof.index != index:
        raise ReceiptError(f"the receipt proves leaf {proof.index}, the server announced {index}")
    if proof.extra is None or merkle_leaf_hash(proof.extra) != expected_hash:
        raise ReceiptError("the receipt's leaf bytes do not hash to the announced leaf hash")
    try:
        leaf = json.loads(proof.extra)
    except ValueError:
        raise ReceiptError("the receipt's leaf is not JSON") from None
    if not isinstance(leaf, dict) or canonical_json(leaf) != proof.extra:
        raise ReceiptError("the receipt's leaf is not an RFC 8785 canonical JSON object")
    return leaf


def verify_receipt(submission: dict[str, Any], result: dict[str, Any], log_key: str, origin: str) -> Settled:
    """Judge one server result for one submitted event; raise :class:`ReceiptError` if it proves nothing."""
    event_id = submission["event"]["id"]
    status = result.get("status")
    if result.get("event_id") not in (event_id, None):
        raise ReceiptError(f"result for {result.get('event_id')!r} where {event_id} was sent")
    try:
        index, digest, receipt = int(result["index"]), str(result["leaf_hash"]), str(result["receipt"])
    except (KeyError, TypeError, ValueError):
        raise ReceiptError(f"the {status!r} result for {event_id} has no index, leaf hash and receipt") from None
    leaf = _leaf_from_receipt(receipt, digest, index, log_key, origin)
    if status in ("accepted", "duplicate"):
        ours = (leaf.get("type") == "handover" and leaf.get("event") == submission["event"]
                and canonical_json(leaf["event"]) == canonical_json(submission["event"])
                and leaf.get("kid") == submission["kid"] and leaf.get("sig") == submission["sig"])
        if ours:
            return Settled(event_id, "receipted", status, index, digest, receipt)
        if status == "duplicate" and leaf.get("type") == "handover":
            return Settled(event_id, "conflict", status, index, digest, receipt,
                           error=f"{CONFLICT} {event_id} (leaf {index}); this "
                                 "station's sequence was reused (restored from an old backup?)")
        raise ReceiptError(f"the receipt for {event_id} proves a leaf that does not hold our event")
    if status == "refused":
        presented = hashlib.sha256(canonical_json(submission)).hexdigest()
        if leaf.get("type") != "refusal" or leaf.get("presented_sha256") != presented:
            raise ReceiptError(f"the refusal receipt for {event_id} does not hold our submission")
        reason = f"{result.get('error', 'refused')}: {result.get('reason', '')}"
        return Settled(event_id, "refused", status, index, digest, receipt, error=reason[:500])
    raise ReceiptError(f"unknown result status {status!r} for {event_id}")


def verify_refusal_receipt(report: dict[str, Any], result: dict[str, Any], station: str, log_key: str,
                           origin: str) -> str:
    """Check the server's answer to one refusal report; return the receipt, or raise :class:`ReceiptError`.

    The receipt must prove a ``scan_refusal`` leaf of this station holding this
    report (its id, reason and the SHA-256 of the text that was shown).
    """
    try:
        index, digest, receipt = int(result["index"]), str(result["leaf_hash"]), str(result["receipt"])
    except (KeyError, TypeError, ValueError):
        raise ReceiptError(f"the result for refusal {report['id']} has no index, leaf hash and receipt") from None
    leaf = _leaf_from_receipt(receipt, digest, index, log_key, origin)
    ours = (leaf.get("type") == "scan_refusal" and leaf.get("station") == station
            and leaf.get("report") == report["id"] and leaf.get("reason") == report["reason"]
            and leaf.get("text_sha256") == report.get("text_sha256"))
    if not ours:
        raise ReceiptError(f"the receipt for refusal {report['id']} proves a leaf that does not hold our report")
    return receipt


class Sender:
    def __init__(self, outbox: Outbox, client: StationClient, log_key: str, *, batch_size: int = 100,
                 backoff: Backoff | None = None, clock: Callable[[], datetime]):
        self.outbox = outbox
        self.client = client
        self.log_key = log_key
        self.origin = parse_verifier_key(log_key).name
        self.batch_size = batch_size
        self.backoff = backoff or Backoff()
        self.clock = clock

    def send_due(self, *, force: bool = False, max_batches: int = 1000) -> SendReport:
        """Send what is due (everything pending with ``force``) until done or an error; never raises for
        the network or the server: the report says what happened and when the next attempt is."""
        report = SendReport()
        sent_ids: set[str] = set()
        for _ in range(max_batches):
            batch = [e for e in self.outbox.due(self.clock().timestamp(), self.batch_size, force=force)
                     if e.id not in sent_ids]
            if not batch:
                break
            sent_ids.update(e.id for e in batch)
            if not self._send_batch(batch, report):
                break
        report.pending = self.outbox.counts()["pending"]
        return report

    def _fail(self, batch: list[OutboxEvent], error: str, report: SendReport) -> bool:
        report.errors.append(error)
        report.retry_in = self.outbox.retry_later([e.id for e in batch], self.clock().timestamp(), error,
                                                  self.backoff)
        return False

    def _send_batch(self, batch: list[OutboxEvent], report: SendReport) -> bool:
        report.attempted += len(batch)
        pause_point("before_send")
        try:
            response = self.client.post_events([e.submission for e in batch])
        except TransportError as exc:
            return self._fail(batch, str(exc), report)
        pause_point("after_response")
        if response.status != 200:
            return self._fail(batch, f"server answered {response.status}: {response.error_message()}", report)
        try:
            results = response.json()["results"]
            if not isinstance(results, list) or len(results) != len(batch):
                raise ValueError(f"{len(results)} results for {len(batch)} events")
        except (ValueError, KeyError, TypeError) as exc:
            return self._fail(batch, f"the server's answer is not a result list: {exc}", report)
        settled: list[Settled] = []
        problems: list[str] = []
        for event, result in zip(batch, results, strict=True):
            try:
                settled.append(verify_receipt(event.submission, result, self.log_key, self.origin))
            except ReceiptError as exc:
                problems.append(f"{event.id}: {exc}")
        self.outbox.settle(settled, self.clock())
        for s in settled:
            if s.state == "receipted":
                report.accepted += s.status == "accepted"
                report.duplicate += s.status == "duplicate"
            elif s.state == "refused":
                report.refused += 1
                report.errors.append(f"{s.id}{REFUSED}{s.error}")
            else:
                report.conflict += 1
                report.errors.append(f"{s.id}: {s.error}")
        if problems:
            unsettled = {p.split(":", 1)[0] for p in problems}
            report.bad_receipts += len(unsettled)
            return self._fail([e for e in batch if e.id in unsettled], "; ".join(problems)[:500], report)
        return True
