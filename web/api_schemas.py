"""The shapes of the HTTP API, for the OpenAPI document (APIFlask, marshmallow)."""

from __future__ import annotations

from apiflask import Schema
from apiflask.fields import Boolean, Dict, Integer, List, Nested, Raw, String
from apiflask.validators import Length, OneOf, Range

from custody.events import Action

MAX_INDEX = 2**63 - 1


class ErrorOut(Schema):
    error = String(required=True, metadata={"description": "a stable snake_case code, e.g. not_found"})
    message = String(required=True, metadata={"description": "what went wrong, for people"})
    detail = Raw(metadata={"description": "field-by-field problems, when there are some"})
    incident = String(metadata={"description": "the server log's id of an unexpected error"})


class EventsIn(Schema):
    events = List(Raw(), required=True, validate=Length(min=1, max=1000), metadata={
        "description": "submissions, each {event, kid, sig}: the event object, the station key id "
                       "(16 hex digits) and the base64 Ed25519 signature over the event's RFC 8785 bytes"})


class ResultOut(Schema):
    status = String(required=True, validate=OneOf(["accepted", "duplicate", "refused"]))
    event_id = String(allow_none=True)
    index = Integer(metadata={"description": "the leaf index (for refusals: the index of the evidence leaf)"})
    leaf_hash = String(metadata={"description": "hex SHA-256 leaf hash"})
    receipt = String(metadata={"description": "a c2sp.org/tlog-proof@v1 text proving the leaf is in the log"})
    error = String(metadata={"description": "refusal code"})
    reason = String(metadata={"description": "refusal reason"})


class EventsOut(Schema):
    results = List(Nested(ResultOut), required=True)
    size = Integer(required=True, metadata={
        "description": "the tree size of the checkpoint the receipts prove against (after this batch)"})


class RefusalResultOut(Schema):
    status = String(required=True, validate=OneOf(["accepted", "duplicate", "refused"]))
    id = String(allow_none=True)
    index = Integer()
    leaf_hash = String()
    receipt = String()
    error = String()
    reason = String()


class RefusalsOut(Schema):
    results = List(Nested(RefusalResultOut), required=True)


class KeyOut(Schema):
    kid = String(required=True)
    role = String(required=True)
    owner = String(required=True)
    public_key = String(required=True, metadata={"description": "base64 of the raw 32-byte Ed25519 key"})
    valid_from = String(required=True)
    valid_until = String(allow_none=True)
    revoked_at = String(allow_none=True)
    revocation_reason = String(allow_none=True)


class BundleBody(Schema):
    format = String(required=True)
    origin = String(required=True)
    institute = String(required=True)
    issued_at = String(required=True)
    log_key = String(required=True)
    keys = List(Nested(KeyOut), required=True)


class BundleSignature(Schema):
    alg = String(required=True)
    kid = String(required=True)
    key = String(required=True)
    sig = String(required=True)


class KeyBundleOut(Schema):
    bundle = Nested(BundleBody, required=True)
    signature = Nested(BundleSignature, required=True)


class LogKeyRolloversOut(Schema):
    log_key = String(required=True, metadata={"description": "the log's verifier key now"})
    rollovers = List(String(), required=True, metadata={
        "description": "every rotation of the log key, oldest first: a signed note by the old key naming the new "
                       "one (custody.log.rollover), for stations and witnesses that pinned an older key"})


class ExpectedQuery(Schema):
    action = String(load_default="receive", validate=OneOf([a.value for a in Action]))


class ExpectedItem(Schema):
    item = String(required=True)
    kind = String(required=True)
    subject = String(required=True)
    destination = String(required=True)
    count = Integer(required=True)
    seal = String(allow_none=True)
    box = String(allow_none=True)
    label = String(allow_none=True, metadata={"description": "hex SHA-256 of the issued label's COSE bytes"})
    status = String(required=True)
    holder = String(allow_none=True)
    heading = String(allow_none=True)


class ExpectedOut(Schema):
    station = String(required=True)
    unit = String(required=True)
    action = String(required=True)
    items = List(Nested(ExpectedItem), required=True)


class ItemOut(Schema):
    item = Dict(required=True)
    label = Dict(required=True)
    state = Dict(allow_none=True)
    history = List(Dict(), required=True)


class Cosignature(Schema):
    name = String(required=True)
    key_id = String(required=True)
    timestamp = String(allow_none=True)
    verified = Boolean(allow_none=True)


class CosignedOut(Schema):
    size = Integer(required=True)
    cosignatures = List(Nested(Cosignature), required=True)


class CheckpointOut(Schema):
    origin = String(required=True)
    size = Integer(required=True)
    root_hash = String(required=True)
    root_hash_hex = String(required=True)
    note = String(required=True)
    log_key = String(required=True)
    cosignatures = List(Nested(Cosignature), required=True)


class InclusionQuery(Schema):
    size = Integer(validate=Range(min=1, max=MAX_INDEX), metadata={
        "description": "prove against the checkpoint signed at this size (default: the latest)"})


class ConsistencyQuery(Schema):
    old = Integer(required=True, validate=Range(min=1, max=MAX_INDEX))
    new = Integer(validate=Range(min=1, max=MAX_INDEX), metadata={"description": "default: the current size"})
