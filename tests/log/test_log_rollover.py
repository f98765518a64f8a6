"""Log key rollovers: the old key vouches for the new one; a party that pinned a key follows them from it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody.log.checkpoint import Checkpoint
from custody.log.note import sign_note, verifier_key
from custody.log.rollover import RolloverError, follow_rollovers, sign_rollover

ORIGIN = "test.exam/zk2017"
AT = datetime(2017, 6, 20, 8, 0, tzinfo=UTC)


def _keys(n: int) -> tuple[list[Ed25519PrivateKey], list[str]]:
    private = [Ed25519PrivateKey.generate() for _ in range(n)]
    return private, [verifier_key(ORIGIN, k.public_key().public_bytes_raw()) for k in private]


def test_a_chain_of_rollovers_is_followed_from_the_key_held() -> None:
    private, keys = _keys(4)
    notes = [sign_rollover(ORIGIN, keys[i + 1], AT, private[i]) for i in range(3)]
    assert notes[0].startswith("custody log key rollover v1\ntest.exam/zk2017\n" + keys[1] + "\n2017-06-20T08:00:00Z\n")
    assert follow_rollovers(keys[0], notes) == keys
    assert follow_rollovers(keys[2], notes) == keys[2:]  # those before the key held are skipped
    assert follow_rollovers(keys[3], notes) == keys[3:]
    assert follow_rollovers(keys[0], []) == keys[:1]


def test_a_rollover_not_signed_by_the_key_held_leads_nowhere() -> None:
    private, keys = _keys(3)
    forger, forged_key = _keys(1)
    # a forger's "rollover" to its own key, and one signed by a key that was never held
    notes = [sign_rollover(ORIGIN, forged_key[0], AT, forger[0]), sign_rollover(ORIGIN, keys[2], AT, private[1])]
    assert follow_rollovers(keys[0], notes) == keys[:1]
    # a note claiming the held key's name with another key's signature is not followed either
    tampered = sign_rollover(ORIGIN, keys[1], AT, private[0]).replace(keys[1], forged_key[0])
    assert follow_rollovers(keys[0], [tampered]) == keys[:1]


def test_a_rollover_of_another_log_or_a_checkpoint_is_refused_not_followed() -> None:
    private, keys = _keys(2)
    other = "other.exam/zk2017"
    with pytest.raises(RolloverError, match="other.exam"):
        follow_rollovers(keys[0], [sign_rollover(other, verifier_key(other, b"\x01" * 32), AT, private[0])])
    checkpoint = sign_note(Checkpoint(ORIGIN, 5, b"\x00" * 32).body(), ORIGIN, private[0]).decode()
    with pytest.raises(RolloverError, match="not a log key rollover"):  # the log key's other notes are no rollover
        follow_rollovers(keys[0], [checkpoint])
    with pytest.raises(ValueError):
        sign_rollover(ORIGIN, keys[1], datetime(2017, 6, 20), private[0])  # a time with no zone


def test_the_notes_of_a_rollovers_answer_and_nothing_of_anything_else() -> None:
    from custody.log.rollover import rollovers_of

    assert rollovers_of({"log_key": "k", "rollovers": ["a", 3, None, "b"]}) == ["a", "b"]
    for answer in ({"rollovers": "a"}, {"log_key": "k"}, ["a"], None, "a"):
        assert rollovers_of(answer) == []
