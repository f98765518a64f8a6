"""The station API: signed batches, receipts, refusals, limits; key bundle, expected lists, proofs."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from custody.events import Action
from custody.log.checkpoint import open_checkpoint
from custody.log.note import parse_verifier_key
from custody.log.proofs import parse_consistency_proof, verify_tlog_proof
from store.ledger import Ledger
from tests.store.ledger_helpers import Desk
from tests.web.conftest import make_app, post_signed, signed_headers
from web.keybundle import verify_key_bundle

T = datetime(2017, 6, 12, 2, 0, tzinfo=UTC)


@pytest.fixture
def station_world(tiny_exam):
    """A fresh tiny exam with labels in the log, stations registered, and the app on it."""
    city = Desk(tiny_exam, "3601", T - timedelta(days=10))
    county = Desk(tiny_exam, "360102", T - timedelta(days=10))
    ledger = Ledger(tiny_exam)
    ledger.record_labels("zk2017")  # the labels and the station keys, in the log before any event
    app = make_app(tiny_exam, LEDGER=ledger)
    return app, ledger, city, county


def _signer(desk: Desk):
    return desk.signers[desk.code]


def test_a_signed_batch_is_accepted_with_receipts_and_a_replay_is_a_duplicate(station_world) -> None:
    app, ledger, city, _ = station_world
    client = app.test_client()
    before = ledger.size()
    batch = {"events": city.receive_events(3, T)}
    response = post_signed(client, _signer(city), city.code, batch)
    assert response.status_code == 200, response.text
    results = response.json["results"]
    assert [r["status"] for r in results] == ["accepted"] * 3
    assert ledger.size() == before + 3 == response.json["size"]
    log_key = parse_verifier_key(ledger.log_key())
    for result in results:  # a receipt is a tlog-proof anyone can verify offline
        proof = verify_tlog_proof(result["receipt"], bytes.fromhex(result["leaf_hash"]), log_key)
        assert proof.index == result["index"]
    again = post_signed(client, _signer(city), city.code, batch)  # a new request (new nonce), same events
    assert [r["status"] for r in again.json["results"]] == ["duplicate"] * 3
    assert [r["index"] for r in again.json["results"]] == [r["index"] for r in results]
    assert ledger.size() == before + 3


def test_a_station_posting_another_stations_events_is_refused_and_nothing_is_stored(station_world) -> None:
    app, ledger, city, county = station_world
    client = app.test_client()
    before = ledger.size()
    own = city.receive_events(1, T)
    foreign = county.event("YW-X-K001", Action.RECEIVE, T, frm="3601", to="360102")
    response = post_signed(client, _signer(city), city.code, {"events": own + [foreign]})
    assert response.status_code == 403
    assert response.json["error"] == "forbidden"
    assert "ST-360102" in response.json["message"] and "Nothing was stored" in response.json["message"]
    assert ledger.size() == before  # not even a refusal leaf


def test_a_replayed_request_and_a_stale_or_forged_signature_are_refused(station_world) -> None:
    app, ledger, city, county = station_world
    client = app.test_client()
    body = json.dumps({"events": city.receive_events(1, T)}).encode()
    headers = {**signed_headers(_signer(city), city.code, "POST", "/api/v1/events", body),
               "Content-Type": "application/json"}
    assert client.post("/api/v1/events", data=body, headers=headers).status_code == 200
    replay = client.post("/api/v1/events", data=body, headers=headers)
    assert replay.status_code == 401 and "replayed" in replay.json["message"]
    stale = signed_headers(_signer(city), city.code, "POST", "/api/v1/events", body,
                           now=datetime.now(UTC) - timedelta(minutes=6))
    response = client.post("/api/v1/events", data=body, headers=stale)
    assert response.status_code == 401 and "clock" in response.json["message"]
    # Signed by the county's key but claiming to be the city's station.
    forged = signed_headers(_signer(county), city.code, "POST", "/api/v1/events", body)
    del forged["X-Custody-Key"]
    response = client.post("/api/v1/events", data=body, headers=forged)
    assert response.status_code == 401 and "does not verify" in response.json["message"]
    tampered = {**signed_headers(_signer(city), city.code, "POST", "/api/v1/events", body)}
    response = client.post("/api/v1/events", data=body.replace(b'"receive"', b'"store"'), headers=tampered)
    assert response.status_code == 401
    unsigned = client.post("/api/v1/events", json={"events": []})
    assert unsigned.status_code == 401 and unsigned.json["error"] == "unauthorized"


def test_a_revoked_station_key_can_no_longer_sign_requests(station_world) -> None:
    app, ledger, city, _ = station_world
    from tests.factories import TEST_SECRET  # noqa: F401  (the instance already holds it)

    instance = app.extensions["custody"].instance
    instance.keys.revoke(_signer(city).kid.hex(), datetime.now(UTC) - timedelta(seconds=1), "laptop stolen")
    response = post_signed(app.test_client(), _signer(city), city.code, {"events": city.receive_events(1, T)})
    assert response.status_code == 401 and "no valid, unrevoked key" in response.json["message"]


def test_a_station_gets_503_and_retry_after_while_the_server_stops(station_world) -> None:
    app, ledger, city, _ = station_world
    before = ledger.size()
    ledger.close()  # what custody serve does on its way out, while request threads may still run
    response = post_signed(app.test_client(), _signer(city), city.code, {"events": city.receive_events(1, T)})
    assert response.status_code == 503 and response.json["error"] == "ledger_closed"
    assert response.headers["Retry-After"] == "1" and ledger.size() == before


MALFORMED = [  # (case, body, what the message says)
    ("truncated", b'{"events": [', "not valid JSON at line 1"),
    ("not-utf8", b"\xff\xfe not utf-8", "not valid JSON"),
    ("array", b'[1, 2, 3]', "must be a JSON object"),
    ("empty", b'{"events": []}', "1 to 1000 events"),
    ("not-a-list", b'{"events": "all of them"}', "must be a JSON object"),
    ("deep", b'{"events": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}", "nested too deeply"),
]


def test_malformed_bodies_get_400_with_a_clear_message(station_world) -> None:
    app, ledger, city, _ = station_world
    before = ledger.size()
    for case, body, expected in MALFORMED:
        response = post_signed(app.test_client(), _signer(city), city.code, None, raw=body)
        assert response.status_code == 400, case
        assert expected in response.json["message"], case
        assert "Traceback" not in response.text
    assert ledger.size() == before


def test_malformed_submissions_inside_a_good_batch_are_refused_as_evidence(station_world) -> None:
    app, ledger, city, _ = station_world
    good = city.receive_events(1, T)[0]
    bad_sig = {**good, "sig": base64.b64encode(b"\0" * 64).decode()}
    response = post_signed(app.test_client(), _signer(city), city.code, {"events": [bad_sig, {"nonsense": 1}]})
    assert response.status_code == 200
    assert [r["status"] for r in response.json["results"]] == ["refused", "refused"]
    assert all(r["receipt"] for r in response.json["results"])  # the refusal itself is in the log


class CountingStream:
    """A request body of ``size`` bytes that counts how much of it the server reads."""

    def __init__(self, size: int):
        self.size = size
        self.position = 0
        self.read_bytes = 0

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = 0) -> int:
        self.position = offset if whence == 0 else self.size + offset if whence == 2 else self.position + offset
        return self.position

    def read(self, n: int = -1) -> bytes:
        left = self.size - self.position
        n = left if n is None or n < 0 else min(n, left)
        self.position += n
        self.read_bytes += n
        return b"{" * n

    def readline(self, n: int = -1) -> bytes:
        return self.read(n)


def test_a_50_mb_body_gets_413_without_being_read(station_world) -> None:
    app, ledger, city, _ = station_world
    before = ledger.size()
    for path in ("/api/v1/events", "/login"):
        stream = CountingStream(50 * 1024 * 1024)
        headers = signed_headers(_signer(city), city.code, "POST", path, b"")
        response = app.test_client().post(path, input_stream=stream, headers={
            **headers, "Content-Length": str(stream.size),
            "Content-Type": "application/json" if "api" in path else "application/x-www-form-urlencoded"})
        assert response.status_code == 413, path
        assert stream.read_bytes < 2 * 1024 * 1024, path
        if "api" in path:
            assert response.json["error"] == "request_entity_too_large"
        else:
            assert "请求过大" in response.text
    assert ledger.size() == before


def test_the_key_bundle_is_signed_by_the_log_key_and_lists_revocations(station_world) -> None:
    app, ledger, city, _ = station_world
    instance = app.extensions["custody"].instance
    kid = _signer(city).kid.hex()
    instance.keys.revoke(kid, T, "station replaced")
    document = app.test_client().get("/api/v1/keys").json
    body = verify_key_bundle(document, ledger.log_key())
    revoked = [k for k in body["keys"] if k["kid"] == kid]
    assert revoked and revoked[0]["revocation_reason"] == "station replaced"
    document["bundle"]["keys"] = [k for k in document["bundle"]["keys"] if k["kid"] != kid]
    with pytest.raises(ValueError, match="does not verify"):
        verify_key_bundle(document, ledger.log_key())


def test_the_expected_list_shows_what_is_on_its_way_to_the_station(station_world) -> None:
    app, ledger, city, county = station_world
    client = app.test_client()
    path = f"/api/v1/stations/{city.code}/expected?action=receive"
    response = client.get(path, headers=signed_headers(_signer(city), city.code, "GET", path, b""))
    assert response.status_code == 200, response.text
    expected = {i["item"] for i in response.json["items"]}
    assert "YW-X-K001" in expected and "YW-P-K001-01" not in expected  # the box stands for its bundles
    assert all(i["label"] and len(i["label"]) == 64 for i in response.json["items"])
    post_signed(client, _signer(city), city.code, {"events": [
        city.event("YW-X-K001", Action.RECEIVE, T, frm="36-YS", to="3601")]})
    response = client.get(path, headers=signed_headers(_signer(city), city.code, "GET", path, b""))
    assert "YW-X-K001" not in {i["item"] for i in response.json["items"]}
    # A station asks only for its own list.
    other = f"/api/v1/stations/{county.code}/expected"
    response = client.get(other, headers=signed_headers(_signer(city), city.code, "GET", other, b""))
    assert response.status_code == 404


def test_checkpoints_and_proofs_verify(station_world) -> None:
    app, ledger, city, _ = station_world
    client = app.test_client()
    post_signed(client, _signer(city), city.code, {"events": city.receive_events(2, T)})
    log_key = parse_verifier_key(client.get("/api/v1/log-key").text.strip())
    text = client.get("/checkpoint")
    assert text.status_code == 200 and text.mimetype == "text/plain"
    checkpoint = open_checkpoint(text.data, log_key).checkpoint
    summary = client.get("/api/v1/checkpoint").json
    assert summary["size"] == checkpoint.size and summary["note"] == text.text and summary["cosignatures"] == []
    proof = client.get(f"/api/v1/proofs/inclusion/{checkpoint.size - 1}")
    last = ledger.leaf(checkpoint.size - 1).hash
    assert verify_tlog_proof(proof.text, last, log_key).index == checkpoint.size - 1
    consistency = client.get(f"/api/v1/proofs/consistency?old=1&new={checkpoint.size}")
    assert consistency.status_code == 200 and parse_consistency_proof(consistency.text)
    assert client.get(f"/api/v1/proofs/inclusion/{checkpoint.size}").status_code == 404
    assert client.get(f"/api/v1/proofs/inclusion/{2**70}").status_code == 404
    assert client.get("/api/v1/proofs/consistency?old=5&new=2").status_code == 404
    assert client.get("/api/v1/proofs/consistency?old=abc").status_code == 400
    assert client.get("/api/v1/nowhere").json["error"] == "not_found"


def test_the_openapi_document_describes_the_api(station_world) -> None:
    app, *_ = station_world
    spec = app.test_client().get("/api/v1/openapi.json").json
    assert spec["openapi"].startswith("3.")
    paths = set(spec["paths"])
    assert {"/api/v1/events", "/api/v1/keys", "/api/v1/stations/{code}/expected", "/api/v1/items/{item_id}",
            "/api/v1/checkpoint", "/checkpoint", "/api/v1/proofs/inclusion/{index}",
            "/api/v1/proofs/consistency", "/api/v1/refusals", "/api/v1/cosignatures"} <= paths
    assert not any(p.startswith(("/login", "/dashboard", "/items")) for p in paths)  # pages are not API
    assert spec["paths"]["/api/v1/events"]["post"]["requestBody"]["required"] is True


def _post_refusals(client: Any, city: Any, reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """POST ``reports`` to /api/v1/refusals signed by ``city``'s station; the results (the answer must be 200)."""
    body = json.dumps({"refusals": reports}).encode()
    headers = {**signed_headers(_signer(city), city.code, "POST", "/api/v1/refusals", body),
               "Content-Type": "application/json"}
    response = client.post("/api/v1/refusals", data=body, headers=headers)
    assert response.status_code == 200, response.text
    return list(response.json["results"])


def test_stations_report_refused_scans_as_evidence_once(station_world) -> None:
    app, ledger, city, _ = station_world
    client = app.test_client()
    reports = [{"id": "ST-3601-R0000001", "session": "S1", "seen_at": "2017-06-12T02:00:00Z",
                "reason": "bad_signature", "message": "签名无效", "text": "CUS1:123", "text_sha256": "ab" * 32,
                "frame": 17, "item": "YW-X-K001"},
               {"id": "ST-3601-R0000002", "seen_at": "2017-06-12T02:00:05Z", "reason": "not_ours", "item": "FAKE-1"},
               {"id": "ST-3601-R0000003", "reason": "no seen_at"}]
    results = _post_refusals(client, city, reports)
    assert [r["status"] for r in results] == ["accepted", "accepted", "refused"]
    key = parse_verifier_key(ledger.log_key())
    for r in results[:2]:
        assert verify_tlog_proof(r["receipt"], bytes.fromhex(r["leaf_hash"]), key).index == r["index"]
    history = ledger.item_history("zk2017", "YW-X-K001")
    assert history[-1]["leaf"]["type"] == "scan_refusal" and history[-1]["leaf"]["station"] == "ST-3601"
    assert json.loads(ledger.leaf(results[1]["index"]).data)["claimed_item"] == "FAKE-1"
    size = ledger.size()
    again = _post_refusals(client, city, reports)
    assert [r["status"] for r in again] == ["duplicate", "duplicate", "refused"]
    assert [r["index"] for r in again[:2]] == [r["index"] for r in results[:2]] and ledger.size() == size


def test_a_refusal_report_with_a_control_character_is_refused_alone_and_its_label_text_kept(station_world) -> None:
    """A claimed item or an id with a NUL went into the reports' queries before they were checked: a 500 on
    PostgreSQL for the whole request, which the station sent again and again. The label text read off a
    forged QR may hold anything: it is evidence, kept as read."""
    app, ledger, city, _ = station_world
    client = app.test_client()
    reports = [{"id": "ST-3601-R0000011", "seen_at": "2017-06-12T02:00:00Z", "reason": "bad_signature",
                "item": "YW-X-K001\x00"},
               {"id": "ST-3601-R0000012\x00", "seen_at": "2017-06-12T02:00:01Z", "reason": "bad_signature"},
               {"id": "ST-3601-R0000013", "seen_at": "2017-06-12T02:00:02Z", "reason": "bad_signature",
                "message": "\x1b[2J", "item": "YW-X-K001"},
               {"id": "ST-3601-R0000014", "seen_at": "2017-06-12T02:00:03Z", "reason": "bad_signature",
                "text": "CUS1:\x00\x1bforged", "item": "YW-X-K001"}]
    results = _post_refusals(client, city, reports)
    assert [r["status"] for r in results] == ["refused", "refused", "refused", "accepted"]
    assert "item holds the control character U+0000" in results[0]["reason"]
    assert "message holds the control character U+001B" in results[2]["reason"]
    assert json.loads(ledger.leaf(results[3]["index"]).data)["text"] == "CUS1:\x00\x1bforged"


def test_a_witness_cosignature_is_kept_and_shown(station_world) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from custody.keyring import Role
    from custody.log.note import add_signature_lines, cosign, parse_unverified_note
    from keys.files import public_raw

    app, ledger, city, _ = station_world
    client = app.test_client()
    instance = app.extensions["custody"].instance
    witness = Ed25519PrivateKey.generate()
    note = client.get("/checkpoint").data
    body = parse_unverified_note(note).body
    line = cosign(body, "jiangxi.exam/witness", witness, 1497916800)
    signed = add_signature_lines(note, [line])
    refused = client.post("/api/v1/cosignatures", data=signed, content_type="text/plain")
    assert refused.status_code == 403 and "witness" in refused.json["message"]  # not registered yet
    instance.keys.register(public_raw(witness), Role.WITNESS, "jiangxi.exam/witness", T)
    accepted = client.post("/api/v1/cosignatures", data=signed, content_type="text/plain")
    assert accepted.status_code == 200, accepted.text
    [shown] = accepted.json["cosignatures"]
    assert (shown["name"], shown["timestamp"], shown["verified"]) == (
        "jiangxi.exam/witness", "2017-06-20T00:00:00+00:00", True)
    assert client.get("/checkpoint").data.endswith(line.encode())
    forged = add_signature_lines(note, [cosign(body, "jiangxi.exam/witness", Ed25519PrivateKey.generate(), 1)])
    assert client.post("/api/v1/cosignatures", data=forged, content_type="text/plain").status_code == 403
