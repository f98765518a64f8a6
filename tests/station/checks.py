"""Checks shared by the station tests."""

from __future__ import annotations

from typing import Any

from scanners.station.sender import verify_receipt


def assert_sent_once(station: Any, live_server: Any, ids: list[str]) -> None:
    """Every event of ``ids`` is in the server's log exactly once (one leaf per event id, and no other leaf of
    the station), and the outbox holds each as receipted with a receipt that verifies against the pinned key."""
    leaves = live_server.handover_leaves(station.config.code)
    assert sorted(leaf["event"]["id"] for leaf in leaves) == sorted(ids)
    events = station.outbox.events()
    assert [e.id for e in events] == ids
    by_id = {leaf["event"]["id"]: leaf for leaf in leaves}
    for e in events:
        assert e.state == "receipted" and e.receipt and e.leaf_index == by_id[e.id]["index"]
        settled = verify_receipt(e.submission, {"status": "accepted", "event_id": e.id, "index": e.leaf_index,
                                                "leaf_hash": e.leaf_hash, "receipt": e.receipt},
                                 station.config.log_key, live_server.ledger.origin)
        assert settled.state == "receipted"
