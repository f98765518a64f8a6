"""The JSON API under /api/v1, and the witnesses' plain-text checkpoint at /checkpoint.

Stations sign their requests (:mod:`web.station_auth`); people may use their
logged-in session for the read endpoints. Checkpoints, proofs, the log key and
the key bundle are public: they reveal no custody data and outsiders (the
province, auditors, witnesses) rely on them. See ``docs/api.md``.
"""

from __future__ import annotations

import json
from typing import Any

from apiflask import APIBlueprint
from apiflask.schemas import FileSchema
from flask import Response, current_app, jsonify, request
from sqlalchemy import select

from custody.errors import CustodyError
from custody.labels import ItemKind
from store.models import Item
from web.accounts import Principal
from web.api_schemas import (
    MAX_INDEX,
    CheckpointOut,
    ConsistencyQuery,
    CosignedOut,
    EventsOut,
    ExpectedOut,
    ExpectedQuery,
    InclusionQuery,
    ItemOut,
    KeyBundleOut,
    LogKeyRolloversOut,
    RefusalsOut,
)
from web.audit import audit
from web.auth import current_principal
from web.errors import abort_json
from web.expected import expected_items, label_hash
from web.keybundle import key_bundle
from web.logview import checkpoint_summary
from web.lookup import find_item, find_station
from web.refusals import MAX_REPORTS, record_refusals
from web.scope import scope_of, unit_tree
from web.state import state
from web.station_auth import StationAuthError, authenticate_station, has_signature
from web.timeline import verified_label

bp = APIBlueprint("api", __name__, url_prefix="/api/v1", tag="custody")
witness = APIBlueprint("witness", __name__, tag="witness")

TEXT = FileSchema(type="string", format="text")
SIGNED: list[str | dict[str, list[Any]]] = [{"StationSignature": []}]
SIGNED_OR_SESSION: list[str | dict[str, list[Any]]] = [{"StationSignature": []}, {"Session": []}]


def _signed_station() -> Principal:
    st = state()
    body = request.get_data(cache=True)  # 413 here, before reading, if the body is too large
    try:
        return authenticate_station(st.instance, request.headers, request.method, _signed_path(), body,
                                    now=st.now(), skew=current_app.config["STATION_CLOCK_SKEW"],
                                    first_time=st.nonces.first_time, stations=st.stations)
    except StationAuthError as exc:
        abort_json(401, str(exc))
        raise  # unreachable


def _signed_path() -> str:
    query = request.query_string.decode("latin-1")
    return request.path + ("?" + query if query else "")


def _json_body() -> Any:
    try:
        return json.loads(request.get_data(cache=True))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = f" at line {exc.lineno}, column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        abort_json(400, f"the body is not valid JSON{where}: {getattr(exc, 'msg', str(exc))}")
    except RecursionError:  # the decoder recurses per level: arrays in arrays, 100,000 deep
        abort_json(400, "the body is not valid JSON for custody: it is nested too deeply")


def _principal() -> Principal:
    if has_signature(request.headers):
        return _signed_station()
    principal = current_principal()
    if principal is None:
        abort_json(401, "sign the request with the station's key (see docs/api.md) or log in")
    assert principal is not None
    return principal


def _text(body: str, status: int = 200) -> Response:
    response = Response(body, status=status, mimetype="text/plain")
    response.headers["Cache-Control"] = "no-cache"
    return response


# --- stations -----------------------------------------------------------------------------------

@bp.post("/events")
@bp.output(EventsOut, description="One result per submission, in order")
@bp.doc(summary="Submit a batch of signed handover events",
        description="Signed by the station (X-Custody-* headers). Every event's `station` must be the "
                    "signing station, or the whole batch is refused (403) and nothing is stored. Events are "
                    "idempotent by (station, id): a replay is a `duplicate` with the same index and receipt.",
        security=SIGNED, responses=[400, 401, 403, 413])
def post_events() -> Any:
    principal = _signed_station()
    document = _json_body()
    if not isinstance(document, dict) or not isinstance(document.get("events"), list):
        abort_json(400, 'the body must be a JSON object {"events": [...]}')
    events = document["events"]
    limit = current_app.config["MAX_EVENTS_PER_REQUEST"]
    if not 1 <= len(events) <= limit:
        abort_json(400, f"a batch holds 1 to {limit} events, found {len(events)}")
    for n, submission in enumerate(events):
        event = submission.get("event") if isinstance(submission, dict) else None
        claimed = event.get("station") if isinstance(event, dict) else None
        if claimed is not None and claimed != principal.station:
            abort_json(403, f"event #{n} is for station {str(claimed)[:64]!r} but the request is signed by "
                            f"{principal.station}; a station submits only its own events. Nothing was stored.")
    st = state()
    results = st.ledger.submit(events, station=principal.station)
    return jsonify({"results": results, "size": _size_of(results) or st.ledger.size()})


def _size_of(results: list[dict[str, Any]]) -> int | None:
    """The tree size of the checkpoint the receipts prove against (its second line)."""
    for result in results:
        receipt = result.get("receipt")
        if isinstance(receipt, str) and "\n\n" in receipt:
            lines = receipt.split("\n\n", 1)[1].split("\n", 2)
            if len(lines) >= 2 and lines[1].isdigit():
                return int(lines[1])
    return None


@bp.post("/refusals")
@bp.output(RefusalsOut, description="One result per report, in order")
@bp.doc(summary="Report labels a station refused at its desk (evidence)",
        description="Signed by the station. Each report (a forged, foreign or unreadable label shown at the "
                    "desk) becomes a `scan_refusal` leaf; idempotent by (station, report id).",
        security=SIGNED, responses=[400, 401, 413])
def post_refusals() -> Any:
    principal = _signed_station()
    document = _json_body()
    reports = document.get("refusals") if isinstance(document, dict) else None
    if not isinstance(reports, list):
        abort_json(400, 'the body must be a JSON object {"refusals": [...]}')
    assert isinstance(reports, list)
    if not 1 <= len(reports) <= MAX_REPORTS:
        abort_json(400, f"a report holds 1 to {MAX_REPORTS} refusals, found {len(reports)}")
    st = state()
    assert principal.station is not None
    return jsonify({"results": record_refusals(st.instance, st.ledger, principal.station, reports, st.now())})


@bp.post("/cosignatures")
@bp.output(CosignedOut, description="The size of the checkpoint the cosignature was added to")
@bp.doc(summary="A witness returns the checkpoint with its cosignature",
        description="Body: the checkpoint note (text/plain) with the log's signature and the witness's "
                    "c2sp.org/tlog-cosignature line(s). Only cosignatures by a registered witness key over a "
                    "checkpoint this log signed are kept; anything else is refused with 403.",
        responses=[403, 413])
def post_cosignature() -> Any:
    from custody.errors import LogError
    from store.verification import add_cosignature

    body = request.get_data(cache=True)
    try:
        size = add_cosignature(state().instance, body)
    except LogError as exc:
        # Not a cosignature this log can accept (no registered witness, not our checkpoint, not a note).
        abort_json(403, f"cosignature not accepted: {exc}")
    summary = checkpoint_summary(state().ledger, state().instance)
    return jsonify({"size": size, "cosignatures": summary["cosignatures"] if summary and summary["size"] == size
                    else []})


@bp.get("/keys")
@bp.output(KeyBundleOut, description="The key bundle, signed by the log key")
@bp.doc(summary="The public key registry and revocations, signed",
        description="Every public key (labels, badges, log, stations, witnesses) with its validity and "
                    "revocation, signed by the log key over the RFC 8785 bytes of `bundle`. Public.")
def get_keys() -> Any:
    st = state()
    now = st.now()
    with st.instance.db.session() as s:
        from sqlalchemy import func

        from store.models import KeyRecord
        fingerprint = s.execute(select(func.count(KeyRecord.id), func.count(KeyRecord.revoked_at))).one()
    bundle = st.cached(("keys", tuple(fingerprint), now.replace(second=0, microsecond=0)),
                       lambda: key_bundle(st.instance, st.ledger, now))
    return jsonify(bundle)


@bp.get("/stations/<code>/expected")
@bp.input(ExpectedQuery, location="query")
@bp.output(ExpectedOut, description="Items the station should expect for this action")
@bp.doc(summary="The expected handover list of a station",
        description="Signed by that station, or with a logged-in session whose units include the station's.",
        security=SIGNED_OR_SESSION, responses=[400, 401, 404])
def get_expected(code: str, query_data: dict[str, Any]) -> Any:
    principal = _principal()
    st = state()
    if principal.role == "station" and principal.station != code:
        abort_json(404, f"no station {code[:64]} among yours")
    station = find_station(st.instance, code, scope_of(principal, st.instance))
    exam = st.exam()
    items = st.items(exam)
    found = expected_items(items, st.item_states(exam), station.unit, query_data["action"], unit_tree(st.instance))
    with st.instance.db.session() as s:
        ids = [f["item"] for f in found]
        labels: dict[str, str | None] = {}
        for start in range(0, len(ids), 500):
            labels.update(s.execute(select(Item.item_id, Item.label_text).where(
                Item.exam == exam, Item.item_id.in_(ids[start:start + 500]))).all())
    for entry in found:
        entry["label"] = label_hash(labels.get(entry["item"]))
    return jsonify({"station": station.code, "unit": station.unit, "action": query_data["action"], "items": found})


# --- items --------------------------------------------------------------------------------------

@bp.get("/items/<item_id>")
@bp.output(ItemOut, description="The item, its verified label, its custody state and every leaf about it")
@bp.doc(summary="An item's custody chain", security=SIGNED_OR_SESSION, responses=[401, 404])
def get_item(item_id: str) -> Any:
    principal = _principal()
    st = state()
    exam = st.exam()
    item = find_item(st.instance, exam, item_id, scope_of(principal, st.instance))
    audit(principal, "view_item", item.item_id, "api")
    label, error = verified_label(item, st.ledger)
    return jsonify({
        "item": {"id": item.item_id, "exam": item.exam, "kind": ItemKind(item.kind).slug, "subject": item.subject,
                 "destination": item.destination, "count": item.count, "seal": item.seal, "box": item.parent_box,
                 "label_text": item.label_text},
        "label": label.as_json() if label else {"valid": False, "error": error or "no label issued"},
        "state": st.item_states(exam).get(item.item_id),
        "history": st.ledger.item_history(exam, item.item_id),
    })


# --- the log ------------------------------------------------------------------------------------

@bp.get("/checkpoint")
@bp.output(CheckpointOut, description="The latest checkpoint and its cosignatures")
@bp.doc(summary="The latest signed checkpoint (JSON)", responses=[404])
def get_checkpoint() -> Any:
    st = state()
    summary = checkpoint_summary(st.ledger, st.instance)
    if summary is None:
        abort_json(404, "the log has no checkpoint yet")
    return jsonify(summary)


@witness.get("/checkpoint")
@witness.output(TEXT, content_type="text/plain", description="A c2sp.org/tlog-checkpoint signed note")
@witness.doc(summary="The latest checkpoint as text, for witnesses and monitors", responses=[404])
def checkpoint_text() -> Any:
    try:
        return _text(state().ledger.latest_checkpoint())
    except CustodyError:
        abort_json(404, "the log has no checkpoint yet")


@bp.get("/log-key")
@bp.output(TEXT, content_type="text/plain", description="<origin>+<key hash>+<base64 key>")
@bp.doc(summary="The log's signed-note verifier key")
def get_log_key() -> Any:
    return _text(state().ledger.log_key() + "\n")


@bp.get("/log-key/rollovers")
@bp.output(LogKeyRolloversOut, description="The log key now and the rollovers that lead to it")
@bp.doc(summary="The log key's rotations, each vouched for by the key before",
        description="A station or witness that pinned an older log key follows the rollovers from it, each signed "
                    "by the key before, to the key that signs now. Public.")
def get_log_key_rollovers() -> Any:
    ledger = state().ledger
    return jsonify({"log_key": ledger.log_key(), "rollovers": ledger.log_key_rollovers()})


@bp.get("/proofs/inclusion/<int:index>")
@bp.input(InclusionQuery, location="query")
@bp.output(TEXT, content_type="text/plain", description="A c2sp.org/tlog-proof@v1 text")
@bp.doc(summary="Inclusion proof of a leaf", responses=[400, 404])
def get_inclusion(index: int, query_data: dict[str, Any]) -> Any:
    if index > MAX_INDEX:
        abort_json(404, f"the log has no leaf {index}")
    return _text(state().ledger.inclusion_proof(index, query_data.get("size")))


@bp.get("/proofs/consistency")
@bp.input(ConsistencyQuery, location="query")
@bp.output(TEXT, content_type="text/plain", description="RFC 6962 consistency proof hashes, base64, one a line")
@bp.doc(summary="Consistency proof between two tree sizes", responses=[400, 404])
def get_consistency(query_data: dict[str, Any]) -> Any:
    ledger = state().ledger
    size = ledger.size()
    old, new = query_data["old"], query_data.get("new") or size
    if not old <= new <= size:
        # Nothing to prove: a tree the log does not have, or a newer tree smaller than the older one.
        abort_json(404, f"no consistency proof from size {old} to {new}: need old <= new <= {size} (the log's size)")
    return _text(ledger.consistency_proof(old, new))
