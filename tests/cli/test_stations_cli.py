"""`custody stations add/list`: register a station's key from the command line, refused cleanly when wrong."""

from __future__ import annotations

import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.cli.test_foundation_cli import exam, run  # noqa: F401 (fixtures)


def _public_hex() -> str:
    return Ed25519PrivateKey.generate().public_key().public_bytes_raw().hex()


def test_a_station_is_registered_listed_and_its_key_is_in_the_registry(exam) -> None:  # noqa: F811
    key = _public_hex()
    out = exam("stations", "add", "ST-360102", "--unit", "360102", "--name", "东湖区交接台", "--public-key", key).output
    kid = out.strip().rsplit(" ", 1)[1]
    listed = json.loads(exam("stations", "list", "--json").output)
    assert listed == [{"code": "ST-360102", "unit": "360102", "name": "东湖区交接台", "kid": kid,
                       "registered_at": listed[0]["registered_at"]}]
    keys = json.loads(exam("keys", "list", "--json").output)
    assert any(k["role"] == "station" and k["owner"] == "ST-360102" and k["kid"].startswith(kid) for k in keys)


def test_bad_registrations_are_refused_and_change_nothing(exam) -> None:  # noqa: F811
    key = _public_hex()
    exam("stations", "add", "ST-A", "--unit", "360102", "--public-key", key)
    cases = [
        (["ST-B", "--unit", "360102", "--public-key", "not-a-key"], 2, "32-byte"),
        (["ST-B", "--unit", "360102", "--public-key", "01" + "00" * 31], 2, "small-order point"),
        (["ST-B", "--unit", "NOPE", "--public-key", _public_hex()], 2, "not in the unit tree"),
        (["ST-A", "--unit", "360103", "--public-key", _public_hex()], 1, "already exists at unit 360102"),
        (["ST-B", "--unit", "360102", "--public-key", key], 1, "registered already"),
        (["bad code!", "--unit", "360102", "--public-key", _public_hex()], 2, "letters, digits"),
    ]
    for args, code, message in cases:
        result = exam("stations", "add", *args, ok=False)
        assert result.exit_code == code and message in result.output, (args, result.output)
    assert [s["code"] for s in json.loads(exam("stations", "list", "--json").output)] == ["ST-A"]
    # the registry holds one station key only
    keys = json.loads(exam("keys", "list", "--json").output)
    assert [k["owner"] for k in keys if k["role"] == "station"] == ["ST-A"]
