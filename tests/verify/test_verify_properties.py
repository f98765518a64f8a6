"""Hypothesis: any single-row change in log_leaves, log_nodes or log_checkpoints is detected.

One simulated exam per database; each example changes one row (a flipped bit
of a leaf's bytes or hash, another value in one of its columns, a flipped bit of
a node, one character of a signed checkpoint, or the row deleted), runs a full
verification, expects a failure, and puts the row back.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, insert, select, update

from store.models import LogCheckpoint, LogLeaf, LogNode

LEAF_CHANGES = ["flip-data", "flip-hash", "delete", "type", "item", "station", "event_key"]
NODE_CHANGES = ["flip-hash", "delete"]
CHECKPOINT_CHANGES = ["edit-note", "delete"]

change = st.one_of(
    st.tuples(st.just("log_leaves"), st.sampled_from(LEAF_CHANGES), st.integers(0, 10**6), st.integers(0, 10**6)),
    st.tuples(st.just("log_nodes"), st.sampled_from(NODE_CHANGES), st.integers(0, 10**6), st.integers(0, 255)),
    st.tuples(st.just("log_checkpoints"), st.sampled_from(CHECKPOINT_CHANGES), st.integers(0, 10**6),
              st.integers(0, 10**6)),
)


def _flip(data: bytes, at: int) -> bytes:
    b = bytearray(data)
    b[at % len(b)] ^= 1 << (at // len(b) % 8)
    return bytes(b)


def _row(s: Any, model: Any, pick: int) -> Any:
    count = s.scalar(select(func.count()).select_from(model))
    order = (model.level, model.idx) if model is LogNode else \
        ((model.size,) if model is LogCheckpoint else (model.idx,))
    return s.scalars(select(model).order_by(*order).offset(pick % count).limit(1)).one()


def _apply(instance: Any, table: str, how: str, pick: int, where: int) -> tuple[Any, dict[str, Any]]:
    model = {"log_leaves": LogLeaf, "log_nodes": LogNode, "log_checkpoints": LogCheckpoint}[table]
    with instance.db.write_session() as s:
        row = _row(s, model, pick)
        saved = {c.key: getattr(row, c.key) for c in model.__table__.columns}
        key = {k: saved[k] for k in (("level", "idx") if model is LogNode else
                                     ("size",) if model is LogCheckpoint else ("idx",))}
        cond = [getattr(model, k) == v for k, v in key.items()]
        if how == "delete":
            s.execute(delete(model).where(*cond))
        elif how == "flip-data":
            s.execute(update(model).where(*cond).values(data=_flip(saved["data"], where)))
        elif how == "flip-hash":
            s.execute(update(model).where(*cond).values(hash=_flip(saved["hash"], where)))
        elif how == "edit-note":
            note = saved["note"]
            at = where % len(note)
            s.execute(update(model).where(*cond).values(note=note[:at] + ("A" if note[at] != "A" else "B") +
                                                        note[at + 1:]))
        else:  # another value in one column of a leaf row
            value = saved[how]
            s.execute(update(model).where(*cond).values(**{how: ("Z" + value)[:24] if value else "ZZ"}))
    return model, saved


def _restore(instance: Any, model: Any, saved: dict[str, Any]) -> None:
    keys = ("level", "idx") if model is LogNode else ("size",) if model is LogCheckpoint else ("idx",)
    with instance.db.write_session() as s:
        s.execute(delete(model).where(*[getattr(model, k) == saved[k] for k in keys]))
        s.execute(insert(model).values(**saved))


def test_any_single_row_change_is_detected(simulated) -> None:
    baseline = simulated.verify()
    assert baseline.ok

    examples = int(os.environ.get("CUSTODY_VERIFY_EXAMPLES", "22"))  # more for a long run; fixed seed by default

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck),
              derandomize="CUSTODY_VERIFY_EXAMPLES" not in os.environ)
    @given(change)
    def one(case: tuple[str, str, int, int]) -> None:
        table, how, pick, where = case
        model, saved = _apply(simulated.instance, table, how, pick, where)
        try:
            outcome = simulated.verify(full=True)
            assert not outcome.ok, f"{case} went unnoticed"
            assert outcome.report["findings"], case
        finally:
            _restore(simulated.instance, model, saved)

    one()
    assert simulated.verify(full=True).ok  # every row put back: the log holds again
