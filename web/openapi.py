"""Finishing touches on the OpenAPI document APIFlask generates from the views."""

from __future__ import annotations

from typing import Any

SUBMISSION = {
    "type": "object",
    "required": ["event", "kid", "sig"],
    "properties": {
        "event": {"type": "object", "description": "the handover event (see custody/events.py), as signed"},
        "kid": {"type": "string", "pattern": "^[0-9a-f]{16}$", "description": "the station key id"},
        "sig": {"type": "string", "description": "base64 Ed25519 signature over the event's RFC 8785 bytes"},
    },
}
EVENTS_BODY = {
    "required": True,
    "description": "A batch of signed events; at most 1 MiB and 1000 events.",
    "content": {"application/json": {"schema": {
        "type": "object", "required": ["events"],
        "properties": {"events": {"type": "array", "minItems": 1, "maxItems": 1000, "items": SUBMISSION}},
    }}},
}
REFUSALS_BODY = {
    "required": True,
    "description": "Refusal reports of one station; at most 200.",
    "content": {"application/json": {"schema": {
        "type": "object", "required": ["refusals"],
        "properties": {"refusals": {"type": "array", "minItems": 1, "maxItems": 200, "items": {
            "type": "object", "required": ["id", "seen_at", "reason"],
            "properties": {
                "id": {"type": "string"}, "session": {"type": ["string", "null"]}, "seen_at": {"type": "string"},
                "reason": {"type": "string"}, "message": {"type": ["string", "null"]},
                "text": {"type": ["string", "null"]}, "text_sha256": {"type": ["string", "null"]},
                "frame": {"type": ["string", "integer", "null"]}, "item": {"type": ["string", "null"]},
            }}}},
    }}},
}
COSIGNATURE_BODY = {
    "required": True,
    "description": "The checkpoint note with the witness's cosignature line(s).",
    "content": {"text/plain": {"schema": {"type": "string"}}},
}
SECURITY_SCHEMES = {
    "StationSignature": {
        "type": "apiKey", "in": "header", "name": "X-Custody-Signature",
        "description": "An Ed25519 signature by the station's registered key over the request, with the "
                       "headers X-Custody-Station, X-Custody-Timestamp and X-Custody-Nonce (docs/api.md).",
    },
    "Session": {"type": "apiKey", "in": "cookie", "name": "custody_session",
                "description": "A logged-in session of the web application."},
}


def finish_spec(spec: dict[str, Any]) -> dict[str, Any]:
    for path, body in (("/api/v1/events", EVENTS_BODY), ("/api/v1/refusals", REFUSALS_BODY),
                       ("/api/v1/cosignatures", COSIGNATURE_BODY)):
        operation = spec.get("paths", {}).get(path, {}).get("post")
        if operation is not None:
            operation["requestBody"] = body
    for path in spec.get("paths", {}).values():
        for operation in path.values():
            for response in operation.get("responses", {}).values():
                for media in response.get("content", {}).values():
                    schema = media.get("schema", {})
                    if schema.get("format") == "text":
                        del schema["format"]
    return spec
