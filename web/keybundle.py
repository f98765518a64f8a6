"""The key bundle stations cache: every public key with its validity and revocation, signed.

The bundle is signed by the log key (the same key that signs checkpoints and
verification reports) over the RFC 8785 bytes of ``bundle``; ``signature.kid``
is the key id of INTERFACES §1 and ``signature.key`` the log's signed-note
verifier key, which a station pins when it is installed.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from custody import ed25519
from custody.events import format_time
from custody.keyring import Role, key_id
from custody.log.jcs import canonical_json
from store.instance import Instance
from store.ledger import Ledger

FORMAT = "custody-key-bundle/v1"


def key_bundle(instance: Instance, ledger: Ledger, now: datetime) -> dict[str, Any]:
    body = {"format": FORMAT, "origin": instance.origin, "institute": instance.institute,
            "issued_at": format_time(now), "log_key": ledger.log_key(),
            "keys": [k.as_json() for k in instance.keys.keyring()]}
    private = instance.keys.private_key(Role.LOG_SIGNER, instance.institute, now)
    public = ledger.verifier().public_raw
    signature = private.sign(canonical_json(body))
    return {"bundle": body, "signature": {"alg": "Ed25519", "kid": key_id(public).hex(), "key": ledger.log_key(),
                                         "sig": base64.b64encode(signature).decode("ascii")}}


def verify_key_bundle(document: dict[str, Any], log_key: str) -> dict[str, Any]:
    """Check a bundle against the pinned log verifier key; returns the bundle body or raises ``ValueError``."""
    from custody.log.note import parse_verifier_key

    verifier = parse_verifier_key(log_key)
    body, signature = document.get("bundle"), document.get("signature")
    if not isinstance(body, dict) or not isinstance(signature, dict) or body.get("format") != FORMAT:
        raise ValueError("not a custody key bundle")
    try:
        valid = ed25519.verifies(verifier.public_raw, base64.b64decode(signature.get("sig", ""), validate=True),
                                 canonical_json(body))
    except ValueError:
        valid = False
    if not valid:
        raise ValueError("the key bundle's signature does not verify with the pinned log key") from None
    return body
